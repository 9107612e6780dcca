package emu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestMeasureStrayDecode (-long) measures what a CPU that lands on a wrong
// address runs into: the decoder's verdicts for sequences starting at every
// byte offset of the embedded slices' code (a return or resume inside an
// instruction) and for random bytes, and the valid instructions the
// interpreter does not implement, most frequent first. It guides which
// instructions to implement next; it asserts nothing but that decoding
// holds together.
func TestMeasureStrayDecode(t *testing.T) {
	if !*longTests {
		t.Skip("-long only: a measurement")
	}
	elfs, err := filepath.Glob(filepath.Join("..", "scenarios", "*", "*.elf"))
	if err != nil || len(elfs) == 0 {
		t.Fatalf("no slice ELFs: %v", err)
	}
	type tally struct {
		verdicts map[string]int
		missing  map[string]int
		example  map[string]string
	}
	newTally := func() *tally {
		return &tally{map[string]int{}, map[string]int{}, map[string]string{}}
	}
	count := func(tl *tally, code []byte) {
		in, err := decodeInst(code, snippetCodeBase)
		switch {
		case err != nil:
			x, xerr := x86asm.Decode(code, 64)
			if xerr != nil || x.Op == 0 {
				tl.verdicts["undecoded"]++
				return
			}
			tl.verdicts["unsupported"]++
			tl.missing[x.Op.String()]++
			if _, ok := tl.example[x.Op.String()]; !ok {
				tl.example[x.Op.String()] = fmt.Sprintf("% x", code[:x.Len])
			}
		case in.sem.op == opUD:
			tl.verdicts["#UD"]++
		case in.sem.op == opGP:
			tl.verdicts["#GP"]++
		default:
			tl.verdicts["ok"]++
		}
	}
	report := func(name string, tl *tally) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %v\n", name, tl.verdicts)
		var ops []string
		for op := range tl.missing {
			ops = append(ops, op)
		}
		sort.Slice(ops, func(i, j int) bool {
			if tl.missing[ops[i]] != tl.missing[ops[j]] {
				return tl.missing[ops[i]] > tl.missing[ops[j]]
			}
			return ops[i] < ops[j]
		})
		for i, op := range ops {
			if i == 40 {
				break
			}
			fmt.Fprintf(&b, "  %6d %-12s e.g. %s\n", tl.missing[op], op, tl.example[op])
		}
		t.Log(b.String())
	}

	slices := newTally()
	for _, path := range elfs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := LoadImage(filepath.Base(path), raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range img.Sections {
			if s.Perm&PermX == 0 || s.Data == nil {
				continue
			}
			for off := range s.Data {
				count(slices, s.Data[off:min(off+15, len(s.Data))])
			}
		}
	}
	report("every offset of the slices' code", slices)

	random := newTally()
	r := rand.New(rand.NewPCG(1, 2))
	var buf [15]byte
	for range 200000 {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		count(random, buf[:])
	}
	report("random bytes", random)
}

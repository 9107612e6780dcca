package analyze_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// verdict is what a result says: the verdict and each finding.
func verdict(r *analyze.Result) string {
	var fs []string
	for _, f := range r.Findings {
		fs = append(fs, f.Analyzer+": "+f.Message)
	}
	sort.Strings(fs)
	return r.Verdict + "\n" + strings.Join(fs, "\n")
}

// recordSmall records the first 4,000 instructions of text-poke-bp
// (a budget stop: the verdict is incomplete, which mutants must keep or
// explain like any other) in batches of 512 rows, and returns the file.
func recordSmall(t testing.TB) []byte {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 3, MaxInsns: 4000}, BatchRows: 512}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// allocs is the process's heap allocation count so far.
func allocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestMutations flips bytes and rewrites fields of a recorded trace and
// analyzes each mutant: never a panic, never more than a memory cap, and
// either the same verdict or an error or warning that says the file is
// corrupt or truncated (issue 17: 24 silent diffs in 4,500 mutants, ~150
// corrupt batches read as "truncated" and clean).
func TestMutations(t *testing.T) {
	data := recordSmall(t)
	dir := t.TempDir()
	analyzeBytes := func(d []byte) (*analyze.Result, error) {
		p := filepath.Join(dir, "m.arrow")
		if err := os.WriteFile(p, d, 0o644); err != nil {
			t.Fatal(err)
		}
		return analyze.AnalyzeFile(p, analyze.All())
	}
	before := allocs()
	clean, err := analyzeBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	// What analyzing one mutant may allocate: twice the clean trace's
	// cost plus 64 MiB (the reader's cap on one buffer), far below what
	// the defects of issue 17 cost (0.5-5 GB).
	allocCap := 2*(allocs()-before) + 64<<20
	want := verdict(clean)
	n := 300
	if testing.Short() {
		n = 60
	}
	rng := rand.New(rand.NewPCG(17, uint64(len(data))))
	type mutant struct {
		name string
		d    []byte
	}
	var mutants []mutant
	for i := 0; i < n; i++ {
		d := bytes.Clone(data)
		switch i % 6 {
		case 0, 1, 2: // one byte flipped anywhere
			off := rng.IntN(len(d))
			d[off] ^= byte(1 << rng.IntN(8))
			mutants = append(mutants, mutant{fmt.Sprintf("flip %d", off), d})
		case 3: // a byte flipped in the last 4 KiB (the footer)
			off := len(d) - 1 - rng.IntN(min(4096, len(d)))
			d[off] ^= byte(1 + rng.IntN(255))
			mutants = append(mutants, mutant{fmt.Sprintf("footer byte %d", off), d})
		case 4: // an int64 field rewritten: a length, an offset, a count
			off := rng.IntN(len(d)-8) &^ 7
			v := []uint64{0, 1 << 63, ^uint64(0), 0xffffffff, uint64(rng.Uint32())}[rng.IntN(5)]
			binary.LittleEndian.PutUint64(d[off:], v)
			mutants = append(mutants, mutant{fmt.Sprintf("u64 %#x at %d", v, off), d})
		case 5: // cut short
			cut := rng.IntN(len(d))
			mutants = append(mutants, mutant{fmt.Sprintf("cut at %d", cut), d[:cut]})
		}
	}
	counts := map[string]int{}
	for _, m := range mutants {
		before := allocs()
		res, err := analyzeBytes(m.d)
		if a := allocs() - before; a > allocCap {
			runtime.GC()
			t.Errorf("%s: analyzing allocated %d MiB", m.name, a>>20)
		}
		switch {
		case err != nil:
			if !errors.Is(err, format.ErrCorrupt) && !errors.Is(err, format.ErrTruncated) {
				t.Errorf("%s: error %v says neither corrupt nor truncated", m.name, err)
			}
			counts["error"]++
		case res.Truncated:
			if !strings.Contains(strings.Join(res.Warnings, " "), "truncated") || res.Verdict == analyze.VerdictClean {
				t.Errorf("%s: truncated file judged %s with warnings %q", m.name, res.Verdict, res.Warnings)
			}
			counts["truncated"]++
		case verdict(res) != want:
			t.Errorf("%s: verdict changed silently:\n%s\nwant\n%s", m.name, verdict(res), want)
		default:
			counts["same"]++
		}
	}
	t.Logf("%d mutants of a %d-byte trace: %v", len(mutants), len(data), counts)
}

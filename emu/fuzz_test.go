package emu

import (
	"slices"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/internal/memstat"
)

// Fuzz limits: what one input may cost. An image may map up to
// MaxMappedBytes of sections and MaxPercpuBytes per CPU (two CPUs here),
// plus its own bytes a few times over (debug/elf's section and symbol
// copies); a hostile file used to cost a terabyte.
const (
	fuzzImageAlloc    = MaxMappedBytes + 2*MaxPercpuBytes + 64<<20
	fuzzImagePerByte  = 64
	fuzzDecodePerByte = 64      // a decision is at least one byte
	fuzzAllocBase     = 8 << 20 // any input (and noise: see memstat.Within)
	fuzzTimeLimit     = 10 * time.Second
)

// FuzzLoadImage: no ELF makes LoadImage or building a machine on it panic,
// allocate past the loader's limits or run long; a loaded image boots and
// runs a few hundred instructions under its budget without a panic. A
// longer run: go test ./emu -run '^$' -fuzz FuzzLoadImage -fuzztime 10m.
func FuzzLoadImage(f *testing.F) {
	raw := builtinELF(f)
	f.Add(raw)
	// The first seed mutated most: the slice with its 3 MiB .bss (task
	// stacks) cut to a page, so each run maps little.
	small := slices.Clone(raw)
	patchSection(f, small, ".bss", 0, nil, u64p(pageSize))
	f.Add(small)
	text := uint64(0xffffffff81000000)
	for _, edit := range []func([]byte) []byte{
		func(b []byte) []byte { patchSection(f, b, percpuSection, 8, nil, u64p(1<<40)); return b },
		func(b []byte) []byte { patchSection(f, b, ".bss", 0, nil, u64p(1<<30)); return b },
		func(b []byte) []byte { patchSection(f, b, ".data", 0, u64p(text+0x800), nil); return b },
		func(b []byte) []byte { patchSection(f, b, ".bss", 0, u64p(0xfffffffffffff000), u64p(0x2000)); return b },
		func(b []byte) []byte { return b[:len(b)/2] },
		func([]byte) []byte { return elf32Header() },
		func([]byte) []byte { return nil },
	} {
		f.Add(edit(slices.Clone(raw)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		limit := uint64(fuzzImageAlloc + fuzzImagePerByte*len(raw))
		alloc, ok := memstat.Within(limit, func() {
			img, err := LoadImage("f.elf", raw)
			if (img == nil) == (err == nil) {
				t.Fatalf("LoadImage = %v, %v", img, err)
			}
			if err != nil {
				if _, ok := err.(*FormatError); !ok {
					t.Fatalf("error %T %v is not a *FormatError", err, err)
				}
				return
			}
			m, err := New(img, Config{CPUs: 2, MaxInsns: 500})
			if err != nil {
				return
			}
			res := m.Run(NewRandomSource(1, Schedule{QuantumMin: 1, QuantumMax: 16, TimerRate: 0.05, NMIRate: 0.05}))
			if res.Stop == StopNone || res.Insns > 500 {
				t.Fatalf("run ended %v after %d instructions (budget 500)", res.Stop, res.Insns)
			}
		})
		if d := time.Since(start); d > fuzzTimeLimit {
			t.Fatalf("took %v on %d bytes", d, len(raw))
		}
		if !ok {
			t.Fatalf("allocated %d bytes on %d bytes of input (limit %d)", alloc, len(raw), limit)
		}
	})
}

// FuzzDecodeDecisions: no byte string makes the decision-log decoder
// panic or allocate more than a bound linear in its length; what it
// accepts re-encodes to a log that decodes the same. A longer run: go test
// ./emu -run '^$' -fuzz FuzzDecodeDecisions -fuzztime 10m.
func FuzzDecodeDecisions(f *testing.F) {
	f.Add(EncodeDecisions([]Decision{{Kind: DecStep, CPU: 3, N: 64}, {Kind: DecIRQ, CPU: 1, Vector: VecTimer}, {Kind: DecNMI, CPU: 63}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{byte(DecStep), 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Add([]byte{byte(DecIRQ)})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ds []Decision
		var err error
		start := time.Now()
		limit := uint64(fuzzAllocBase + fuzzDecodePerByte*len(b))
		alloc, ok := memstat.Within(limit, func() { ds, err = DecodeDecisions(b) })
		if d := time.Since(start); d > fuzzTimeLimit {
			t.Fatalf("took %v on %d bytes", d, len(b))
		}
		if !ok {
			t.Fatalf("allocated %d bytes on %d bytes of input (limit %d)", alloc, len(b), limit)
		}
		if err != nil {
			return
		}
		if len(ds) > len(b) {
			t.Fatalf("%d decisions from %d bytes", len(ds), len(b))
		}
		again, err := DecodeDecisions(EncodeDecisions(ds))
		if err != nil || !slices.Equal(again, ds) {
			t.Fatalf("re-encoded log decodes to %v, %v; want %v", again, err, ds)
		}
	})
}

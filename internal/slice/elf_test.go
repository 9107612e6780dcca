package slice_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestOpenBuiltins: every built-in slice opens with its sections placed as
// docs/slice-abi.md says (text r-x, data rw-, 4 KiB apart, no reserved
// range), a per-CPU template, a vector table and pt_start.
func TestOpenBuiltins(t *testing.T) {
	elfs, err := fs.Glob(scenarios.FS, "*/*.elf")
	if err != nil || len(elfs) == 0 {
		t.Fatalf("no built-in ELFs: %v", err)
	}
	for _, name := range elfs {
		t.Run(name, func(t *testing.T) {
			raw, err := fs.ReadFile(scenarios.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			e, err := slice.Open(raw)
			if err != nil {
				t.Fatal(err)
			}
			if e.Percpu == nil || !e.HasVectors || len(e.Vectors)%slice.VectorEntrySize != 0 {
				t.Errorf("per-CPU template %d bytes, vector table %v (%d bytes)", len(e.Percpu), e.HasVectors, len(e.Vectors))
			}
			for _, s := range e.Sections {
				want := slice.PermR
				switch {
				case strings.HasPrefix(s.Name, ".text"):
					want = slice.PermRX
				case s.Name == ".data" || s.Name == ".bss":
					want = slice.PermRW
				}
				if s.Perm != want {
					t.Errorf("section %s: %v, want %v", s.Name, s.Perm, want)
				}
			}
			syms, err := e.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			tab := slice.NewTable(syms)
			if s, ok := tab.Lookup("pt_start"); !ok || s.PerCPU || !s.Func {
				t.Errorf("pt_start: %+v, %v", s, ok)
			}
			if s, ok := tab.Lookup(slice.ISTSymbol); !ok || !s.PerCPU || s.Size != 8*(slice.MaxIST+1) {
				t.Errorf("%s: %+v, %v", slice.ISTSymbol, s, ok)
			}
		})
	}
}

// TestOpenRefuses: what slice.Open refuses without parsing further (the
// section-level refusals are exercised through emu.LoadImage and
// replay.NewState).
func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"not ELF", []byte("#!/bin/sh\n"), "not an ELF file"},
		{"too large", make([]byte, slice.MaxImageBytes+1), "a slice may have at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := slice.Open(tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

package emu

import "golang.org/x/arch/x86/x86asm"

// inst is one decoded instruction, cached per CPU per address and shared
// by the machine's CPUs (decodeAt). The machine
// owns the header fields; the interpreter owns sem (see decode.go/exec*.go).
// An inst is immutable once built and may be shared by CPUs that fetched the
// same bytes at the same address.
type inst struct {
	addr uint64
	len  uint8
	raw  [15]byte
	op   x86asm.Op

	// Machine-owned annotations, set when the inst is put in a cache.
	native uint16 // 1+index of the native service whose entry is addr; 0 if none
	watch  bool   // an injection rule watches this address
	// special: native != 0 || watch (the step loop's one test).
	special bool

	sem semantics // interpreter-owned pre-decoded operands
}

// Bytes returns the instruction's encoding.
func (in *inst) Bytes() []byte { return in.raw[:in.len] }

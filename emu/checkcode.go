package emu

import (
	"errors"

	"golang.org/x/arch/x86/x86asm"
)

// CodeClass says what the interpreter does with an instruction.
type CodeClass uint8

const (
	// CodeOK: the interpreter implements the instruction.
	CodeOK CodeClass = iota
	// CodeFault: the bytes decode to a fault, #UD (UD0/UD1/UD2, bytes that
	// are no instruction in 64-bit mode, LOCK where it is not allowed) or
	// #GP(0) (longer than 15 bytes, SDM Vol. 2 §2.3.11).
	CodeFault
	// CodeUnsupported: a valid instruction the interpreter does not
	// implement, or bytes it cannot decode; a run reaching it stops
	// "unsupported".
	CodeUnsupported
)

// CodeInsn is one instruction as the interpreter decodes it.
type CodeInsn struct {
	Len    int       // bytes, where the next instruction starts; 0 when the bytes cannot be decoded at all
	Class  CodeClass // implemented, fault or unsupported
	Text   string    // GNU (AT&T) syntax, e.g. "ud2", "lock orl $0x0,(%rsp)"; "(bad)" when undecodable
	Reason string    // for CodeUnsupported: why
	// NeedsIBT: CodeOK only on a machine with quirks.ibt (RDMSR, WRMSR:
	// the one MSR is IA32_S_CET, ibt.go); without it a run reaching the
	// instruction stops "unsupported".
	NeedsIBT bool
}

// CheckCode decodes the instruction at the start of code, fetched from
// addr, with the decoder the machine runs (decodeInst), for tools that
// vet a slice before running it (patchtrace build).
func CheckCode(code []byte, addr uint64) CodeInsn {
	text := "(bad)"
	xlen := 0
	if x, err := x86asm.Decode(code, 64); err == nil && x.Op != 0 && x.Len > 0 {
		text = x86asm.GNUSyntax(x, addr, nil)
		xlen = x.Len
	}
	in, err := decodeInst(code, addr)
	if err != nil {
		ci := CodeInsn{Len: xlen, Class: CodeUnsupported, Text: text, Reason: err.Error()}
		var ue *UnsupportedError
		if errors.As(err, &ue) {
			ci.Reason = ue.Reason
			if ue.Undecoded {
				ci.Len = 0
			}
		}
		return ci
	}
	ci := CodeInsn{Len: int(in.len), Class: CodeOK, Text: text}
	if in.sem.op == opUD || in.sem.op == opGP {
		// A fault has no length to the machine (it never steps past
		// it); x86asm's, when it has one, is where a sweep resumes.
		ci.Class = CodeFault
		if xlen > 0 {
			ci.Len = xlen
		}
	}
	if in.sem.op == opRdmsr || in.sem.op == opWrmsr {
		ci.NeedsIBT = true
	}
	if xlen != ci.Len && ci.Class == CodeOK {
		// endbr64, a hint NOP or an alias x86asm does not know.
		if in.sem.op == opNop {
			ci.Text = "nop"
		}
	}
	return ci
}

// IsService reports whether name is the symbol of a native service
// (docs/slice-abi.md): the functions whose body the emulator provides,
// which are the only ones a slice may fill with ud2.
func IsService(name string) bool {
	for sv := SvcTextPoke; sv < maxServices; sv++ {
		if serviceSymbols[sv] == name {
			return true
		}
	}
	return false
}

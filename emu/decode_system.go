package emu

import "golang.org/x/arch/x86/x86asm"

// movSys decodes the MOV forms with a segment or debug register operand.
// sys is false for every other MOV (decoded by twoOp). Only SS among the
// segment registers is modelled (SDM Vol. 2 MOV: 8E /2 loads SS, 8C /2
// stores it); a MOV to CS is #UD (SDM Vol. 2 MOV: "the destination operand
// cannot be CS") and the others are valid instructions the machine does not
// implement. Debug registers (SDM Vol. 2 MOV—Move to/from Debug Registers):
// DR0-DR3, DR6, DR7; the operand is always the 64-bit register.
func (d *decoder) movSys() (sys bool, reason string) {
	x, s := d.x, d.s
	a0, a1 := x.Args[0], x.Args[1]
	if r, ok := a0.(x86asm.Reg); ok && isSegReg(r) {
		switch r {
		case x86asm.SS:
			s.op = opMovToSS
			if _, ok := d.rmArg(a1); !ok {
				return true, "operands"
			}
			s.size = 2
			return true, ""
		case x86asm.CS:
			s.op = opUD
			return true, ""
		}
		return true, "segment register " + r.String() + " is not modelled"
	}
	if r, ok := a1.(x86asm.Reg); ok && isSegReg(r) {
		if r != x86asm.SS {
			return true, "segment register " + r.String() + " is not modelled"
		}
		s.op = opMovFromSS
		sz, ok := d.rmArg(a0)
		if !ok {
			return true, "operands"
		}
		s.size = sz
		return true, ""
	}
	if r, ok := a0.(x86asm.Reg); ok && r >= x86asm.DR0 && r <= x86asm.DR7 {
		s.op, s.sub = opMovToDR, uint8(r-x86asm.DR0)
		if _, ok := d.rmArg(a1); !ok {
			return true, "operands"
		}
		return true, ""
	}
	if r, ok := a1.(x86asm.Reg); ok && r >= x86asm.DR0 && r <= x86asm.DR7 {
		s.op, s.sub = opMovFromDR, uint8(r-x86asm.DR0)
		if _, ok := d.rmArg(a0); !ok {
			return true, "operands"
		}
		return true, ""
	}
	if r, ok := a0.(x86asm.Reg); ok && r >= x86asm.CR0 && r <= x86asm.CR15 {
		return true, "control registers are not modelled"
	}
	if r, ok := a1.(x86asm.Reg); ok && r >= x86asm.CR0 && r <= x86asm.CR15 {
		return true, "control registers are not modelled"
	}
	return false, ""
}

func isSegReg(r x86asm.Reg) bool { return r >= x86asm.ES && r <= x86asm.GS }

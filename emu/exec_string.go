package emu

// String instructions: MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS with optional
// REP/REPE/REPNE (SDM Vol. 2 MOVS/MOVSB/..., REP/REPE/REPZ/REPNE/REPNZ).
//
// The source is [RSI] (a GS override adds the GS base), the destination
// [RDI]; both step by the operand size, backwards when DF=1. A repeated
// instruction runs to completion within one exec: each iteration commits
// its registers, so a fault in iteration k leaves the state after k-1
// iterations with RIP still at the instruction, which is what hardware
// does and what makes it restartable.
func (c *CPU) execString(in *inst) bool {
	s := &in.sem
	size := int(s.size)
	step := uint64(s.size)
	if c.RFLAGS&FlagDF != 0 {
		step = -step
	}
	var seg uint64
	if s.mf&mGS != 0 {
		seg = c.GSBase
	}
	rep := s.sub != repNone
	for {
		if rep && c.R[RCX] == 0 {
			return true
		}
		switch s.op {
		case opMovs:
			v, ok := c.read(seg+c.R[RSI], size)
			if !ok || !c.write(c.R[RDI], size, v) {
				return false
			}
			c.R[RSI] += step
			c.R[RDI] += step
		case opStos:
			if !c.write(c.R[RDI], size, c.R[RAX]) {
				return false
			}
			c.R[RDI] += step
		case opLods:
			v, ok := c.read(seg+c.R[RSI], size)
			if !ok {
				return false
			}
			c.setReg(RAX, 0, s, v)
			c.R[RSI] += step
		case opCmps:
			a, ok := c.read(seg+c.R[RSI], size)
			if !ok {
				return false
			}
			b, ok := c.read(c.R[RDI], size)
			if !ok {
				return false
			}
			r := (a - b) & s.mask
			c.RFLAGS = c.RFLAGS&^FlagsArith | subFlags(a, b, r, s.top) | szp(r, s.top)
			c.R[RSI] += step
			c.R[RDI] += step
		case opIns:
			// SDM Vol. 2 INS: [RDI] := the port's value; no device
			// answers here (decode.go, IN/OUT): all ones.
			if !c.write(c.R[RDI], size, ^uint64(0)) {
				return false
			}
			c.R[RDI] += step
		case opOuts:
			// SDM Vol. 2 OUTS: the port gets [RSI] (read, so it may
			// fault); no device takes it.
			if _, ok := c.read(seg+c.R[RSI], size); !ok {
				return false
			}
			c.R[RSI] += step
		case opScas:
			b, ok := c.read(c.R[RDI], size)
			if !ok {
				return false
			}
			a := c.R[RAX] & s.mask
			r := (a - b) & s.mask
			c.RFLAGS = c.RFLAGS&^FlagsArith | subFlags(a, b, r, s.top) | szp(r, s.top)
			c.R[RDI] += step
		}
		if !rep {
			return true
		}
		c.R[RCX]--
		if s.op == opCmps || s.op == opScas {
			zf := c.RFLAGS&FlagZF != 0
			if s.sub == repE && !zf || s.sub == repNE && zf {
				return true
			}
		}
	}
}

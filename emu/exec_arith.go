package emu

import "math/bits"

// Integer arithmetic: the ALU group, INC/DEC/NEG/NOT, MUL/IMUL/DIV/IDIV and
// the sign-extension conversions.

// alu computes a op b for the ALU kinds (SDM Vol. 2 ADD, OR, ADC, SBB, AND,
// SUB, XOR, CMP, TEST) at the operand size of s and returns the result
// (masked) and the new RFLAGS. a and b may carry garbage above the operand
// size. AND/OR/XOR/TEST clear CF and OF; their AF is undefined and is
// cleared here.
func alu(s *semantics, a, b, fl uint64) (r, f uint64) {
	top := s.top
	switch s.sub {
	case aluAdd:
		r = (a + b) & s.mask
		f = addFlags(a, b, r, top)
	case aluAdc:
		r = (a + b + fl&FlagCF) & s.mask
		f = addFlags(a, b, r, top)
	case aluSub, aluCmp:
		r = (a - b) & s.mask
		f = subFlags(a, b, r, top)
	case aluSbb:
		r = (a - b - fl&FlagCF) & s.mask
		f = subFlags(a, b, r, top)
	case aluAnd, aluTest:
		r = a & b & s.mask
	case aluOr:
		r = (a | b) & s.mask
	case aluXor:
		r = (a ^ b) & s.mask
	}
	return r, fl&^FlagsArith | f | szp(r, top)
}

// execUnary: SDM Vol. 2 INC, DEC (CF unaffected), NEG (CF = source != 0,
// as for 0 - source), NOT (no flags).
func (c *CPU) execUnary(in *inst) bool {
	s := &in.sem
	a, addr, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	fl := c.RFLAGS
	var r uint64
	switch s.sub {
	case unInc:
		r = (a + 1) & s.mask
		fl = fl&^FlagsArith | fl&FlagCF | addFlags(a, 1, r, s.top)&^FlagCF | szp(r, s.top)
	case unDec:
		r = (a - 1) & s.mask
		fl = fl&^FlagsArith | fl&FlagCF | subFlags(a, 1, r, s.top)&^FlagCF | szp(r, s.top)
	case unNeg:
		r = -a & s.mask
		fl = fl&^FlagsArith | subFlags(0, a, r, s.top) | szp(r, s.top)
	case unNot:
		r = ^a & s.mask
	}
	if !c.storeRM(in, addr, r) {
		return false
	}
	c.RFLAGS = fl
	return true
}

// execMulDiv: the one-operand forms with the implicit accumulator
// (SDM Vol. 2 MUL, IMUL, DIV, IDIV).
//
//	size  MUL/IMUL product   DIV/IDIV dividend -> quotient, remainder
//	1     AX                 AX        -> AL, AH
//	2     DX:AX              DX:AX     -> AX, DX
//	4     EDX:EAX            EDX:EAX   -> EAX, EDX
//	8     RDX:RAX            RDX:RAX   -> RAX, RDX
//
// MUL/IMUL set CF=OF when the high half is significant and leave SF, ZF, AF
// and PF undefined (unchanged here). DIV/IDIV leave all six undefined
// (unchanged here) and raise #DE on a zero divisor or a quotient that does
// not fit.
func (c *CPU) execMulDiv(in *inst) bool {
	s := &in.sem
	src, _, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	rax, rdx := c.R[RAX], c.R[RDX]
	var lo, hi uint64 // result halves: product low/high or quotient/remainder
	var of bool
	switch s.sub {
	case mdMul:
		switch s.size {
		case 1:
			p := (rax & 0xff) * src
			c.R[RAX] = rax&^0xffff | p&0xffff
			of = p>>8 != 0
		case 2:
			p := (rax & 0xffff) * src
			lo, hi, of = p&0xffff, p>>16, p>>16 != 0
		case 4:
			p := (rax & 0xffffffff) * src
			lo, hi, of = p&0xffffffff, p>>32, p>>32 != 0
		default:
			hi, lo = bits.Mul64(rax, src)
			of = hi != 0
		}
	case mdImul:
		switch s.size {
		case 1:
			p := int64(int8(rax)) * int64(int8(src))
			c.R[RAX] = rax&^0xffff | uint64(p)&0xffff
			of = p != int64(int8(p))
		case 2:
			p := int64(int16(rax)) * int64(int16(src))
			lo, hi, of = uint64(p)&0xffff, uint64(p)>>16&0xffff, p != int64(int16(p))
		case 4:
			p := int64(int32(rax)) * int64(int32(src))
			lo, hi, of = uint64(p)&0xffffffff, uint64(p)>>32, p != int64(int32(p))
		default:
			hi, lo = imul64(rax, src)
			of = hi != uint64(int64(lo)>>63)
		}
	case mdDiv:
		if src == 0 {
			c.setFault(VecDE, 0, false)
			return false
		}
		switch s.size {
		case 1:
			n := rax & 0xffff
			q := n / src
			if q > 0xff {
				c.setFault(VecDE, 0, false)
				return false
			}
			c.R[RAX] = rax&^0xffff | (n%src)<<8 | q
			return true
		case 2:
			n := (rdx&0xffff)<<16 | rax&0xffff
			lo, hi = n/src, n%src
			if lo > 0xffff {
				c.setFault(VecDE, 0, false)
				return false
			}
		case 4:
			n := (rdx&0xffffffff)<<32 | rax&0xffffffff
			lo, hi = n/src, n%src
			if lo > 0xffffffff {
				c.setFault(VecDE, 0, false)
				return false
			}
		default:
			if rdx >= src {
				c.setFault(VecDE, 0, false)
				return false
			}
			lo, hi = bits.Div64(rdx, rax, src)
		}
	case mdIdiv:
		var q, r int64
		d := int64(signExtend(src, s.size))
		if d == 0 {
			c.setFault(VecDE, 0, false)
			return false
		}
		switch s.size {
		case 1:
			n := int64(int16(rax))
			q, r = n/d, n%d
			if q != int64(int8(q)) {
				c.setFault(VecDE, 0, false)
				return false
			}
			c.R[RAX] = rax&^0xffff | uint64(r&0xff)<<8 | uint64(q&0xff)
			return true
		case 2:
			n := int64(int32(uint32(rdx&0xffff)<<16 | uint32(rax&0xffff)))
			q, r = n/d, n%d
			if q != int64(int16(q)) {
				c.setFault(VecDE, 0, false)
				return false
			}
		case 4:
			n := int64(rdx<<32 | rax&0xffffffff)
			// MinInt64 / -1 wraps in Go; its quotient 2^63 does not fit
			// in 32 bits either, so the range check catches it.
			if n == -1<<63 && d == -1 {
				c.setFault(VecDE, 0, false)
				return false
			}
			q, r = n/d, n%d
			if q != int64(int32(q)) {
				c.setFault(VecDE, 0, false)
				return false
			}
		default:
			uq, ur, ok := idiv128(rdx, rax, src)
			if !ok {
				c.setFault(VecDE, 0, false)
				return false
			}
			q, r = int64(uq), int64(ur)
		}
		lo, hi = uint64(q), uint64(r)
	}
	if s.size >= 2 {
		t := semantics{size: s.size, mask: s.mask}
		c.setReg(RAX, 0, &t, lo)
		c.setReg(RDX, 0, &t, hi)
	}
	if s.sub <= mdImul {
		c.RFLAGS &^= FlagCF | FlagOF
		if of {
			c.RFLAGS |= FlagCF | FlagOF
		}
	}
	return true
}

// imul64 returns the signed 128-bit product of a and b.
func imul64(a, b uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(a, b)
	hi -= a>>63*b + b>>63*a
	return hi, lo
}

// idiv128 divides the signed 128-bit hi:lo by the signed d. ok is false when
// the quotient does not fit in 64 bits (d != 0 is the caller's).
func idiv128(hi, lo, d uint64) (q, r uint64, ok bool) {
	neg := int64(hi) < 0
	if neg {
		var b uint64
		lo, b = bits.Sub64(0, lo, 0)
		hi, _ = bits.Sub64(0, hi, b)
	}
	dneg := int64(d) < 0
	ad := d
	if dneg {
		ad = -d
	}
	if hi >= ad {
		return 0, 0, false
	}
	uq, ur := bits.Div64(hi, lo, ad)
	if neg != dneg {
		if uq > 1<<63 {
			return 0, 0, false
		}
		uq = -uq
	} else if uq > 1<<63-1 {
		return 0, 0, false
	}
	if neg {
		ur = -ur
	}
	return uq, ur, true
}

// execImul: the two- and three-operand IMUL (SDM Vol. 2 IMUL): r := rm * r
// or r := rm * imm, truncated; CF=OF set when the truncation lost
// significant bits. SF, ZF, AF, PF are undefined (unchanged here).
func (c *CPU) execImul(in *inst) bool {
	s := &in.sem
	a, _, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	b := c.R[s.r&15]
	if s.mf&mImm != 0 {
		b = s.imm
	}
	var r uint64
	var of bool
	switch s.size {
	case 2:
		p := int64(int16(a)) * int64(int16(b))
		r, of = uint64(p), p != int64(int16(p))
	case 4:
		p := int64(int32(a)) * int64(int32(b))
		r, of = uint64(p), p != int64(int32(p))
	default:
		var hi uint64
		hi, r = imul64(a, b)
		of = hi != uint64(int64(r)>>63)
	}
	c.setReg(s.r, 0, s, r)
	c.RFLAGS &^= FlagCF | FlagOF
	if of {
		c.RFLAGS |= FlagCF | FlagOF
	}
	return true
}

// execCbw: CBW/CWDE/CDQE sign-extend the lower half of the accumulator into
// all of it; CWD/CDQ/CQO fill DX/EDX/RDX with the accumulator's sign
// (SDM Vol. 2 CBW/CWDE/CDQE, CWD/CDQ/CQO).
func (c *CPU) execCbw(in *inst) bool {
	s := &in.sem
	if s.op == opCbw {
		c.setReg(RAX, 0, s, signExtend(c.R[RAX], s.size/2))
		return true
	}
	c.setReg(RDX, 0, s, uint64(int64(signExtend(c.R[RAX], s.size))>>63))
	return true
}

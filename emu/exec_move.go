package emu

import "math/bits"

// Data movement beyond plain MOV (which is inlined in exec): MOVZX/MOVSX/
// MOVSXD, XCHG, XADD, CMPXCHG, CMOVcc, SETcc, BSWAP, XLAT, CMPXCHG8B/16B,
// IN, OUT.

// execMovx: SDM Vol. 2 MOVZX, MOVSX/MOVSXD. The source has ssize bytes.
func (c *CPU) execMovx(in *inst) bool {
	s := &in.sem
	v, _, ok := c.loadRM(in, s.ssize)
	if !ok {
		return false
	}
	if s.op == opMovsx {
		v = signExtend(v, s.ssize)
	}
	c.setReg(s.r, s.rsh, s, v)
	return true
}

// execXchg: SDM Vol. 2 XCHG. With a memory operand the exchange is locked
// implicitly; an emulated step is atomic, so that needs nothing more.
func (c *CPU) execXchg(in *inst) bool {
	s := &in.sem
	rv := c.R[s.r&15] >> s.rsh
	v, addr, ok := c.loadRM(in, s.size)
	if !ok || !c.storeRM(in, addr, rv) {
		return false
	}
	c.setReg(s.r, s.rsh, s, v)
	return true
}

// execXadd: SDM Vol. 2 XADD: TEMP := SRC + DEST; SRC := DEST; DEST := TEMP,
// flags as ADD. With one register as both operands, it gets the sum.
func (c *CPU) execXadd(in *inst) bool {
	s := &in.sem
	src := c.R[s.r&15] >> s.rsh
	dst, addr, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	t := (src + dst) & s.mask
	f := c.RFLAGS&^FlagsArith | addFlags(src, dst, t, s.top) | szp(t, s.top)
	if s.mf&mMem != 0 {
		if !c.write(addr, int(s.size), t) {
			return false
		}
		c.setReg(s.r, s.rsh, s, dst)
	} else {
		c.setReg(s.r, s.rsh, s, dst)
		c.setReg(s.rm, s.rmsh, s, t)
	}
	c.RFLAGS = f
	return true
}

// execCmpxchg: SDM Vol. 2 CMPXCHG. Flags as CMP accumulator, DEST. Equal:
// DEST := SRC. Not equal: accumulator := DEST, and a memory destination is
// written back with its own value (the processor always writes it, so a
// read-only destination faults either way). A register destination is left
// alone on failure (in 64-bit mode a 32-bit one is not zero-extended then),
// and the accumulator is left alone on success.
func (c *CPU) execCmpxchg(in *inst) bool {
	s := &in.sem
	dst, addr, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	acc := c.R[RAX] & s.mask
	r := (acc - dst) & s.mask
	f := c.RFLAGS&^FlagsArith | subFlags(acc, dst, r, s.top) | szp(r, s.top)
	if acc == dst {
		if !c.storeRM(in, addr, c.R[s.r&15]>>s.rsh) {
			return false
		}
	} else {
		if s.mf&mMem != 0 && !c.write(addr, int(s.size), dst) {
			return false
		}
		c.setReg(RAX, 0, s, dst)
	}
	c.RFLAGS = f
	return true
}

// execCmov: SDM Vol. 2 CMOVcc. The source is read (and may fault) whatever
// the condition; with a 32-bit operand the destination's upper half is
// cleared even when the condition is false.
func (c *CPU) execCmov(in *inst) bool {
	s := &in.sem
	v, _, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	if !cond(c.RFLAGS, s.sub) {
		v = c.R[s.r&15]
	}
	c.setReg(s.r, s.rsh, s, v)
	return true
}

// execSetcc: SDM Vol. 2 SETcc: the byte operand := 1 if the condition holds,
// else 0.
func (c *CPU) execSetcc(in *inst) bool {
	s := &in.sem
	var v uint64
	if cond(c.RFLAGS, s.sub) {
		v = 1
	}
	if s.mf&mMem != 0 {
		return c.write(c.ea(in), 1, v)
	}
	c.setReg(s.rm, s.rmsh, s, v)
	return true
}

// execBswap: SDM Vol. 2 BSWAP (32- or 64-bit register).
func (c *CPU) execBswap(in *inst) bool {
	s := &in.sem
	v := c.R[s.r&15]
	if s.size == 8 {
		v = bits.ReverseBytes64(v)
	} else {
		v = uint64(bits.ReverseBytes32(uint32(v)))
	}
	c.setReg(s.r, 0, s, v)
	return true
}

// execMoveRare executes XLAT, CMPXCHG8B/16B, IN and OUT.
func (c *CPU) execMoveRare(in *inst) bool {
	s := &in.sem
	switch s.op {
	case opXlat:
		// SDM Vol. 2 XLAT: AL := [RBX + ZeroExtend(AL)]; with 0x67 the sum
		// is an EBX-based 32-bit address.
		a := c.R[RBX] + c.R[RAX]&0xff
		if s.mf&mAddr32 != 0 {
			a = uint64(uint32(a))
		}
		if s.mf&mGS != 0 {
			a += c.GSBase
		}
		v, ok := c.read(a, 1)
		if !ok {
			return false
		}
		c.R[RAX] = c.R[RAX]&^0xff | v
	case opCmpxchg8b:
		return c.execCmpxchg8b(in)
	case opIn:
		// No device answers: all ones (decode.go, IN/OUT).
		c.setReg(RAX, 0, s, ^uint64(0))
	case opOut:
	}
	return true
}

// execCmpxchg8b: SDM Vol. 2 CMPXCHG8B/CMPXCHG16B. EDX:EAX (RDX:RAX) is
// compared with the memory operand; if equal, ZF := 1 and ECX:EBX
// (RCX:RBX) is stored, else ZF := 0 and the operand is loaded into EDX:EAX
// (RDX:RAX). The destination is written in both cases (with its own value
// when they differ), so a read-only operand faults either way. CMPXCHG16B
// needs a 16-byte-aligned operand: #GP(0) otherwise. The other flags are
// unchanged.
func (c *CPU) execCmpxchg8b(in *inst) bool {
	s := &in.sem
	a := c.ea(in)
	if s.sub == 0 {
		m, ok := c.read(a, 8)
		if !ok {
			return false
		}
		acc := c.R[RDX]<<32 | c.R[RAX]&0xffffffff
		if m == acc {
			if !c.write(a, 8, c.R[RCX]<<32|c.R[RBX]&0xffffffff) {
				return false
			}
			c.RFLAGS |= FlagZF
			return true
		}
		if !c.write(a, 8, m) {
			return false
		}
		c.R[RAX], c.R[RDX] = m&0xffffffff, m>>32
		c.RFLAGS &^= FlagZF
		return true
	}
	if a&15 != 0 {
		c.setFault(VecGP, 0, true)
		return false
	}
	lo, ok := c.read(a, 8)
	if !ok {
		return false
	}
	hi, ok := c.read(a+8, 8)
	if !ok {
		return false
	}
	nlo, nhi := lo, hi
	eq := lo == c.R[RAX] && hi == c.R[RDX]
	if eq {
		nlo, nhi = c.R[RBX], c.R[RCX]
	}
	// Aligned: both halves are on one page, so the second store cannot
	// fault once the first succeeded.
	if !c.write(a, 8, nlo) || !c.write(a+8, 8, nhi) {
		return false
	}
	if eq {
		c.RFLAGS |= FlagZF
	} else {
		c.R[RAX], c.R[RDX] = lo, hi
		c.RFLAGS &^= FlagZF
	}
	return true
}

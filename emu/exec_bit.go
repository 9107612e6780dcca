package emu

import "math/bits"

// Bit operations: BT/BTS/BTR/BTC, BSF/BSR, TZCNT/LZCNT, POPCNT.

// execBt: SDM Vol. 2 BT, BTS, BTR, BTC. CF := the selected bit, which
// BTS/BTR/BTC then set/clear/complement. ZF is unaffected; OF, SF, AF, PF
// are undefined (unchanged here).
//
// With an immediate offset, or a register destination, the offset is taken
// modulo the operand width. With a memory destination and a register
// offset, the offset is a signed bit index from the operand's address: the
// accessed operand is at address + (offset >> log2(width)) * size
// (SDM Vol. 1 §3.6.1, "bit string").
func (c *CPU) execBt(in *inst) bool {
	s := &in.sem
	width := uint64(s.size) * 8
	var off uint64
	if s.mf&mImm != 0 {
		off = s.imm
	} else {
		off = c.R[s.r&15] & s.mask
	}
	var v, addr uint64
	if s.mf&mMem != 0 {
		addr = c.ea(in)
		if s.mf&mImm == 0 {
			so := int64(signExtend(off, s.size))
			addr += uint64((so >> uint(bits.TrailingZeros64(width))) * int64(s.size))
		}
		var ok bool
		v, ok = c.read(addr, int(s.size))
		if !ok {
			return false
		}
	} else {
		v = c.R[s.rm&15] & s.mask
	}
	bit := off & (width - 1)
	cf := v >> bit & 1
	switch s.sub {
	case btBts:
		v |= 1 << bit
	case btBtr:
		v &^= 1 << bit
	case btBtc:
		v ^= 1 << bit
	}
	if s.sub != btBt && !c.storeRM(in, addr, v) {
		return false
	}
	c.RFLAGS = c.RFLAGS&^FlagCF | cf
	return true
}

// execBscan: SDM Vol. 2 BSF, BSR (ZF := source == 0; the destination is
// left unchanged then, as hardware does; CF, OF, SF, AF, PF undefined,
// unchanged here), TZCNT, LZCNT (CF := source == 0, ZF := result == 0; OF,
// SF, AF, PF undefined, unchanged here) and POPCNT (ZF := source == 0, the
// other five cleared).
func (c *CPU) execBscan(in *inst) bool {
	s := &in.sem
	v, _, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	width := uint64(s.size) * 8
	fl := c.RFLAGS
	var r uint64
	switch s.sub {
	case scBsf, scBsr:
		fl &^= FlagZF
		if v == 0 {
			c.RFLAGS = fl | FlagZF
			return true
		}
		if s.sub == scBsf {
			r = uint64(bits.TrailingZeros64(v))
		} else {
			r = uint64(63 - bits.LeadingZeros64(v))
		}
	case scTzcnt, scLzcnt:
		if s.sub == scTzcnt {
			r = uint64(bits.TrailingZeros64(v))
			if v == 0 {
				r = width
			}
		} else {
			r = uint64(bits.LeadingZeros64(v)) - (64 - width)
		}
		fl &^= FlagCF | FlagZF
		if v == 0 {
			fl |= FlagCF
		}
		if r == 0 {
			fl |= FlagZF
		}
	case scPopcnt:
		r = uint64(bits.OnesCount64(v))
		fl &^= FlagsArith
		if v == 0 {
			fl |= FlagZF
		}
	}
	c.setReg(s.r, 0, s, r)
	c.RFLAGS = fl
	return true
}

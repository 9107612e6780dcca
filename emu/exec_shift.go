package emu

// Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD, SHRD.

// shiftCount masks a shift count as the hardware does (SDM Vol. 2
// SAL/SAR/SHL/SHR: "The count is masked to 5 bits, or 6 bits with a 64-bit
// operand").
func shiftCount(c *CPU, s *semantics) uint64 {
	n := s.imm
	if s.mf&mCL != 0 {
		n = c.R[RCX]
	}
	if s.size == 8 {
		return n & 63
	}
	return n & 31
}

// execShift: SDM Vol. 2 SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR.
//
// A masked count of 0 leaves the flags alone; the destination is still
// written back (a 32-bit register is zero-extended, as on hardware).
func (c *CPU) execShift(in *inst) bool {
	s := &in.sem
	n := shiftCount(c, s)
	a, addr, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	r, f := shift(s, a, n, c.RFLAGS)
	if !c.storeRM(in, addr, r) {
		return false
	}
	c.RFLAGS = f
	return true
}

// shift computes a shift or rotate of a (masked to the operand size) by the
// masked count n and returns the result and RFLAGS.
//
// Flags (undefined ones are computed as noted, tests mask them):
//
//	SHL  CF = last bit out = a>>(bits-n); OF (n=1) = MSB(r) ^ CF
//	SHR  CF = a>>(n-1);                   OF (n=1) = MSB(a)
//	SAR  CF = a>>(n-1) (sign-filled);     OF (n=1) = 0
//	     SF ZF PF from r; AF undefined (unchanged)
//	ROL  CF = LSB(r); OF (n=1) = MSB(r) ^ CF
//	ROR  CF = MSB(r); OF (n=1) = MSB(r) ^ MSB-1(r)
//	RCL  rotate CF:a left by n mod (bits+1); OF (n=1) = MSB(r) ^ CF
//	RCR  OF (n=1) = MSB(a) ^ CF before; rotate a:CF right by n mod (bits+1)
//
// A rotate's OF for counts above 1 follows the n=1 formula.
func shift(s *semantics, a, n, fl uint64) (r, f uint64) {
	if n == 0 {
		return a, fl
	}
	m, top := s.mask, s.top
	bits := uint64(top) + 1
	a &= m
	var cf, of uint64
	switch s.sub {
	case shShl, shSal:
		r = a << n & m
		cf = a >> (bits - n) & 1 // bits-n wraps for n > bits: Go gives 0, as the hardware
		of = (r>>top ^ cf) & 1
	case shShr:
		r = a >> n
		cf = a >> (n - 1) & 1
		of = a >> top & 1
	case shSar:
		sx := int64(a<<(63-top)) >> (63 - top)
		r = uint64(sx>>n) & m
		cf = uint64(sx>>(n-1)) & 1
	case shRol, shRor:
		k := n % bits
		if s.sub == shRol {
			r = (a<<k | a>>(bits-k)) & m
			cf = r & 1
			of = (r>>top ^ cf) & 1
		} else {
			r = (a>>k | a<<(bits-k)) & m
			cf = r >> top & 1
			of = (r>>top ^ r>>(top-1)) & 1
		}
		return r, fl&^(FlagCF|FlagOF) | cf | of<<11
	case shRcl, shRcr:
		k := n
		if bits < 32 {
			k = n % (bits + 1)
		}
		cin := fl & FlagCF
		cf = cin
		if s.sub == shRcr {
			of = (a>>top ^ cin) & 1
		}
		if k != 0 {
			if s.sub == shRcl {
				// Rotate the (bits+1)-bit value CF:a left by k.
				r = (a<<k | cin<<(k-1) | a>>(bits+1-k)) & m
				cf = a >> (bits - k) & 1
			} else {
				// Rotate a:CF right by k.
				r = (a>>k | cin<<(bits-k) | a<<(bits+1-k)) & m
				cf = a >> (k - 1) & 1
			}
		} else {
			r = a
		}
		if s.sub == shRcl {
			of = (r>>top ^ cf) & 1
		}
		return r, fl&^(FlagCF|FlagOF) | cf | of<<11
	}
	return r, fl&^(FlagCF|FlagOF|FlagSF|FlagZF|FlagPF) | cf | of<<11 | szp(r, top)
}

// execShxd: SDM Vol. 2 SHLD, SHRD. The destination (rm) is shifted with
// bits from the source register (r) filling in. A count above the operand
// width (16-bit operands only) leaves the result and flags undefined; this
// computes them as a shift of the 32-bit source:destination concatenation.
func (c *CPU) execShxd(in *inst) bool {
	s := &in.sem
	n := shiftCount(c, s)
	a, addr, ok := c.loadRM(in, s.size)
	if !ok {
		return false
	}
	if n == 0 {
		return c.storeRM(in, addr, a)
	}
	b := c.R[s.r&15] & s.mask
	m, top := s.mask, s.top
	bits := uint64(top) + 1
	var r, cf uint64
	if s.sub == 0 { // SHLD
		if bits == 16 {
			v := a<<32 | b<<16 | a // a:b:a, so counts up to 31 have bits to draw from
			r = v << n >> 32 & m
			cf = v << (n - 1) >> 47 & 1
		} else {
			r = (a<<n | b>>(bits-n)) & m
			cf = a >> (bits - n) & 1
		}
	} else { // SHRD
		if bits == 16 {
			v := a<<32 | b<<16 | a // ... then take from the right of a:b:a
			r = v >> n & m
			cf = v >> (n - 1) & 1
		} else {
			r = (a>>n | b<<(bits-n)) & m
			cf = a >> (n - 1) & 1
		}
	}
	of := (r ^ a) >> top & 1
	if !c.storeRM(in, addr, r) {
		return false
	}
	c.RFLAGS = c.RFLAGS&^(FlagCF|FlagOF|FlagSF|FlagZF|FlagPF) | cf | of<<11 | szp(r, top)
	return true
}

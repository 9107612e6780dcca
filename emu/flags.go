package emu

// Arithmetic flags (SDM Vol. 1 §3.4.3.1, Appendix A "EFLAGS Cross-Reference").
//
// The interpreter computes flags from an instruction's operands and result
// with a few bit operations, and PF from a 256-entry table of the result's
// low byte: eagerly, except for the ALU forms CPU.run executes, whose flags
// wait in CPU.lf until something reads them (lazyFlags). What
// each instruction writes, and what it leaves undefined, is tabled here by
// flag class; tests mask undefined flags with undefinedFlags.

// parityTab[b] is FlagPF if byte b has an even number of set bits
// (SDM Vol. 1 §3.4.3.1: PF is computed from the least-significant byte).
var parityTab = func() (t [256]uint8) {
	for i := range t {
		n := 0
		for b := i; b != 0; b >>= 1 {
			n += b & 1
		}
		if n%2 == 0 {
			t[i] = uint8(FlagPF)
		}
	}
	return t
}()

// szp returns SF, ZF and PF for the result r, already masked to the
// operand size whose sign bit is top.
func szp(r uint64, top uint8) uint64 {
	f := uint64(parityTab[uint8(r)]) | (r>>top&1)<<7
	if r == 0 {
		f |= FlagZF
	}
	return f
}

// addFlags returns CF, AF and OF for r = a + b (+ carry-in), r masked; a
// and b only need their low top+1 bits right.
//
// The carry out of bit top is majority(a, b, carry-in) = a&b | (a|b)&^r at
// that bit; AF is the carry into bit 4, a^b^r; OF is set when both inputs
// have the same sign and the result's differs.
func addFlags(a, b, r uint64, top uint8) uint64 {
	cf := (a&b | (a|b)&^r) >> top & 1
	of := ((a ^ r) & (b ^ r)) >> top & 1
	return cf | (a^b^r)&FlagAF | of<<11
}

// subFlags returns CF, AF and OF for r = a - b (- borrow-in), r masked.
// The borrow out of bit top is ^a&b | (^a|b)&r at that bit; OF is set when
// the inputs' signs differ and the result's sign differs from a's.
func subFlags(a, b, r uint64, top uint8) uint64 {
	cf := (^a&b | (^a|b)&r) >> top & 1
	of := ((a ^ b) & (a ^ r)) >> top & 1
	return cf | (a^b^r)&FlagAF | of<<11
}

// condTab[i] has bit cc set when condition cc (SDM Vol. 1 Appendix B,
// Table B-1: O NO B AE E NE BE A S NS P NP L GE LE G) holds for the flag
// combination i, where i packs CF, PF, ZF, SF, OF into bits 0-4.
var condTab = func() (t [32]uint16) {
	for i := range t {
		cf, pf, zf, sf, of := i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0, i&16 != 0
		base := [8]bool{of, cf, zf, cf || zf, sf, pf, sf != of, zf || sf != of}
		for cc := 0; cc < 16; cc++ {
			if base[cc>>1] != (cc&1 != 0) {
				t[i] |= 1 << cc
			}
		}
	}
	return t
}()

// cond evaluates condition code cc against RFLAGS f.
func cond(f uint64, cc uint8) bool {
	i := f&1 | f>>1&2 | f>>4&4 | f>>4&8 | f>>7&16
	return condTab[i&31]>>(cc&15)&1 != 0
}

// flagClass groups instructions by how they treat the arithmetic flags.
type flagClass uint8

const (
	fcNone   flagClass = iota // no flag is written (MOV, LEA, NOT, Jcc, ...)
	fcArith                   // ADD ADC SUB SBB CMP NEG XADD CMPXCHG CMPS SCAS: all six exact
	fcLogic                   // AND OR XOR TEST: CF=OF=0, SF ZF PF from the result, AF undefined
	fcIncDec                  // INC DEC: like ADD/SUB 1 but CF is preserved
	fcShift                   // SHL SHR SAR: see undefinedFlagsCount
	fcRotate                  // ROL ROR RCL RCR: CF, and OF only for a count of 1
	fcShxd                    // SHLD SHRD
	fcMul                     // MUL IMUL: CF=OF=high half significant; SF ZF AF PF undefined
	fcDiv                     // DIV IDIV: all six undefined
	fcBt                      // BT BTS BTR BTC: CF = the bit; ZF kept; OF SF AF PF undefined
	fcBscan                   // BSF BSR: ZF = (source == 0); the others undefined
	fcTzcnt                   // TZCNT LZCNT: CF = (source == 0), ZF = (result == 0); the others undefined
	fcPopcnt                  // POPCNT: ZF = (source == 0), the others cleared
	fcCF                      // CLC STC CMC
	fcSahf                    // SAHF: SF ZF AF PF CF from AH
	fcAll                     // POPFQ IRETQ: every writable flag from memory
	fcZF                      // CMPXCHG8B CMPXCHG16B: ZF only
	numFlagClasses
)

// flagTable lists, per class, the flags the instruction writes and the
// subset the SDM leaves undefined (SDM Vol. 1 Appendix A, Table A-2, and
// each instruction's "Flags Affected").
var flagTable = [numFlagClasses]struct{ writes, undefined uint64 }{
	fcNone:   {0, 0},
	fcArith:  {FlagsArith, 0},
	fcLogic:  {FlagsArith, FlagAF},
	fcIncDec: {FlagsArith &^ FlagCF, 0},
	fcShift:  {FlagsArith, FlagAF | FlagOF}, // with an unknown count; see undefinedFlagsCount
	fcRotate: {FlagCF | FlagOF, FlagOF},
	fcShxd:   {FlagsArith, FlagAF | FlagOF},
	fcMul:    {FlagsArith, FlagSF | FlagZF | FlagAF | FlagPF},
	fcDiv:    {FlagsArith, FlagsArith},
	fcBt:     {FlagCF | FlagOF | FlagSF | FlagAF | FlagPF, FlagOF | FlagSF | FlagAF | FlagPF},
	fcBscan:  {FlagsArith, FlagCF | FlagOF | FlagSF | FlagAF | FlagPF},
	fcTzcnt:  {FlagsArith, FlagOF | FlagSF | FlagAF | FlagPF},
	fcPopcnt: {FlagsArith, 0},
	fcCF:     {FlagCF, 0},
	fcZF:     {FlagZF, 0},
	fcSahf:   {FlagSF | FlagZF | FlagAF | FlagPF | FlagCF, 0},
	fcAll:    {flagsWritable, 0},
}

// writtenFlags returns the flags in may write.
func writtenFlags(in *inst) uint64 { return flagTable[in.sem.fc].writes }

// undefinedFlags returns the RFLAGS bits whose value after in the SDM
// leaves undefined, so that tests comparing against hardware mask them.
// op is in.sem.op. For shifts and rotates by CL the count is not known
// here and the answer assumes the worst (a count other than 0 and 1);
// undefinedFlagsCount gives the exact set for a known count.
func undefinedFlags(op semOp, in *inst) uint64 {
	s := &in.sem
	switch s.fc {
	case fcShift, fcRotate, fcShxd:
		if op != s.op {
			break
		}
		if s.mf&mCL == 0 {
			return undefinedFlagsCount(in, s.imm)
		}
		u := flagTable[s.fc].undefined
		if s.fc == fcShift && s.size < 4 && s.sub != shSar {
			u |= FlagCF
		}
		if s.fc == fcShxd {
			u = FlagsArith
		}
		return u
	}
	return flagTable[s.fc].undefined
}

// undefinedFlagsCount is undefinedFlags for a shift or rotate whose count
// operand (the immediate or CL) is count. For other instructions it is
// undefinedFlags.
//
//   - A masked count of 0 changes no flag (SDM Vol. 2 SAL/SAR/SHL/SHR,
//     ROL/ROR/RCL/RCR, SHLD, SHRD: "If the count is 0, the flags are not
//     affected"), so nothing is undefined.
//   - OF is defined only for a masked count of 1; AF is undefined for
//     every non-zero count of SHL/SHR/SAR/SHLD/SHRD.
//   - SHL/SHR: CF is undefined when the count is at least the operand
//     width (possible for 8- and 16-bit operands, whose count is masked to
//     5 bits).
//   - SHLD/SHRD: when the count exceeds the operand width (16-bit only)
//     the destination and all flags are undefined.
func undefinedFlagsCount(in *inst, count uint64) uint64 {
	s := &in.sem
	bits := uint64(s.size) * 8
	switch s.fc {
	case fcShift, fcRotate, fcShxd:
	default:
		return undefinedFlags(s.op, in)
	}
	if s.size == 8 {
		count &= 63
	} else {
		count &= 31
	}
	if count == 0 {
		return 0
	}
	var u uint64
	if count != 1 {
		u |= FlagOF
	}
	switch s.fc {
	case fcShift:
		u |= FlagAF
		if count >= bits && s.sub != shSar {
			u |= FlagCF
		}
	case fcShxd:
		u |= FlagAF
		if count > bits {
			u = FlagsArith
		}
	}
	return u
}

// lazyFlags holds the arithmetic flags of the last ALU instruction
// (ADD OR ADC SBB AND SUB XOR CMP TEST) as what alu computes them from:
// the operands a and b, the masked result r, and kind: lazyOn | the
// aluOp<<8 | the sign bit's index (0: none pending). While one is
// pending, RFLAGS's six arithmetic bits are stale; only CPU.run sets one,
// and it materializes it before it returns, so every other reader of
// RFLAGS sees them whole.
type lazyFlags struct {
	a, b, r uint64
	kind    uint16
}

const lazyOn = 1 << 15

// setLazy makes r = a op b the pending flags.
func (c *CPU) setLazy(s *semantics, a, b, r uint64) {
	c.lf.a, c.lf.b, c.lf.r = a, b, r
	c.lf.kind = s.lazy // lazyOn | s.sub<<8 | s.top
}

// aluResult is alu's result r (masked) without the flags.
func (c *CPU) aluResult(s *semantics, a, b uint64) uint64 {
	switch s.sub {
	case aluAdd:
		return (a + b) & s.mask
	case aluSub, aluCmp:
		return (a - b) & s.mask
	case aluAnd, aluTest:
		return a & b & s.mask
	case aluXor:
		return (a ^ b) & s.mask
	}
	return c.aluRare(s, a, b)
}

// aluRare is aluResult for OR, ADC and SBB (the last two read CF).
//
//go:noinline
func (c *CPU) aluRare(s *semantics, a, b uint64) uint64 {
	switch s.sub {
	case aluOr:
		return (a | b) & s.mask
	case aluAdc:
		return (a + b + c.flags()&FlagCF) & s.mask
	}
	return (a - b - c.flags()&FlagCF) & s.mask
}

// flags returns RFLAGS, materializing lazy arithmetic flags.
func (c *CPU) flags() uint64 {
	if c.lf.kind != 0 {
		c.materialize()
	}
	return c.RFLAGS
}

// materialize writes the lazy arithmetic flags into RFLAGS: what alu
// returns for the same operands (ADC and SBB as ADD and SUB of a result
// that includes the carry; the logical forms CF=OF=AF=0).
//
//go:noinline
func (c *CPU) materialize() {
	l := &c.lf
	top := uint8(l.kind)
	var f uint64
	switch uint8(l.kind>>8) &^ (lazyOn >> 8) {
	case aluAdd, aluAdc:
		f = addFlags(l.a, l.b, l.r, top)
	case aluSub, aluCmp, aluSbb:
		f = subFlags(l.a, l.b, l.r, top)
	}
	c.RFLAGS = c.RFLAGS&^FlagsArith | f | szp(l.r, top)
	l.kind = 0
}

// condSlow evaluates condition code cc against c's flags. CPU.run reads
// E and NE from lazy flags itself; the other conditions after SUB, CMP and
// the logical forms are read from the lazy operands too (lazyCond), and
// the rest from materialized flags.
//
//go:noinline
func (c *CPU) condSlow(cc uint8) bool {
	if c.lf.kind != 0 {
		if t, ok := c.lf.cond(cc); ok {
			return t
		}
	}
	return cond(c.flags(), cc)
}

// cond evaluates condition code cc (SDM Vol. 1 Appendix B, Table B-1)
// from the lazy flags of SUB or CMP (an unsigned or signed comparison of
// the operands at the operand size) or of AND, OR, XOR and TEST (CF = OF
// = 0), without materializing them; ok is false for the others and for
// O, NO, P and NP after SUB or CMP, P and NP after a logical form.
func (l *lazyFlags) cond(cc uint8) (t, ok bool) {
	top := uint8(l.kind) & 63
	zf, sf := l.r == 0, l.r>>top&1 != 0
	switch uint8(l.kind>>8) &^ (lazyOn >> 8) {
	case aluSub, aluCmp:
		sh := 63 - top
		ua, ub := l.a<<sh>>sh, l.b<<sh>>sh
		sa, sb := int64(l.a<<sh)>>sh, int64(l.b<<sh)>>sh
		switch cc >> 1 {
		case 1: // B: CF
			t = ua < ub
		case 2: // E: ZF
			t = zf
		case 3: // BE: CF or ZF
			t = ua <= ub
		case 4: // S: SF
			t = sf
		case 6: // L: SF != OF
			t = sa < sb
		case 7: // LE: ZF or SF != OF
			t = sa <= sb
		default: // O, P
			return false, false
		}
	case aluAnd, aluTest, aluOr, aluXor:
		switch cc >> 1 {
		case 0, 1: // O, B: OF = CF = 0
			t = false
		case 2, 3: // E, BE: ZF (CF = 0)
			t = zf
		case 4, 6: // S, L: SF (OF = 0)
			t = sf
		case 7: // LE: ZF or SF
			t = zf || sf
		default: // P
			return false, false
		}
	default:
		return false, false
	}
	return t != (cc&1 != 0), true
}

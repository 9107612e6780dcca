package emu

// System and flag-control instructions: INT3, INT1, IRETQ, STI, CLI, HLT,
// CPUID, MOV to/from SS and debug registers, CLC, STC, CMC, CLD, STD,
// SAHF, LAHF. Those that need the step loop say so in c.exit.

// execSystem executes s.op; see the cases for SDM references.
func (c *CPU) execSystem(in *inst, next uint64) bool {
	s := &in.sem
	switch s.op {
	case opInt3:
		// SDM Vol. 2 INT3: a trap; the saved RIP is after the 0xCC.
		c.RIP = next
		c.exit = exitInt3
		return false
	case opIretq:
		// SDM Vol. 2 IRET/IRETQ in 64-bit mode (Operation: IA-32e-MODE,
		// PROTECTED-MODE-RETURN at CPL 0): pop RIP, CS, RFLAGS, RSP, SS
		// (all five, even without a privilege change: Vol. 3 §6.14.3).
		// CS and SS are the low 16 bits of their slots. Everything is read
		// and checked before anything changes, so a fault leaves RIP at the
		// IRETQ and RSP at the frame (a fault, SDM Vol. 3 §6.5); checkIret
		// has the checks, in the SDM's order. RSP is loaded as popped:
		// IRET does not check it (a later stack access faults).
		sp := c.R[RSP]
		var v [5]uint64
		w := uint64(s.size) // 8 for IRETQ, 4 for IRETD (zero-extended slots)
		for i := range v {
			x, ok := c.read(sp+w*uint64(i), int(w))
			if !ok {
				c.stackFault()
				return false
			}
			v[i] = x
		}
		cs, ss := uint16(v[1]), uint16(v[4])
		if f := checkIret(v[0], cs, ss); f != nil {
			if f.unsupported != "" {
				c.exit, c.unsup = exitUnsupported, f.unsupported
				return false
			}
			c.setFault(f.vector, f.errCode, true)
			return false
		}
		c.RIP = v[0]
		c.RFLAGS = v[2]&flagsWritable | flagRes1
		c.R[RSP] = v[3]
		c.SS = ss
		c.exit = exitIret
		return false
	case opInt1:
		// SDM Vol. 2 INT1 (ICEBP, F1): a #DB trap, delivered like a
		// hardware debug exception; the saved RIP is after the F1, and no
		// DR6 bit is set (SDM Vol. 3 §17.2.3: "INT1 ... does not set any
		// bits in DR6").
		c.RIP = next
		c.exit = exitInt1
		return false
	case opMovToSS:
		// SDM Vol. 2 MOV (to SS, 64-bit mode): the selector is checked as
		// checkSS says at CPL 0; a load opens the MOV SS shadow (SDM Vol.
		// 3 §6.8.3: interrupts, NMIs and debug exceptions, single-step
		// included, are held until after the next instruction).
		sel, _, ok := c.loadRM(in, 2)
		if !ok {
			return false
		}
		if f := checkSS(uint16(sel), 0); f != nil {
			c.setFault(f.vector, f.errCode, true)
			return false
		}
		c.SS = uint16(sel)
		c.exit = exitMovSS
	case opMovFromSS:
		// SDM Vol. 2 MOV (from a segment register): a 16-bit store to
		// memory; a 32- or 64-bit register destination is zero-extended.
		if s.mf&mMem != 0 {
			return c.write(c.ea(in), 2, uint64(c.SS))
		}
		c.setReg(s.rm, 0, s, uint64(c.SS))
	case opMovFromDR:
		// SDM Vol. 2 MOV—Move to/from Debug Registers, at CPL 0 with
		// CR4.DE = 0: DR4 and DR5 alias DR6 and DR7 (Vol. 3 §17.2.2).
		c.R[s.rm&15] = c.debugReg(s.sub)
	case opMovToDR:
		v := c.R[s.rm&15]
		n := s.sub
		switch n {
		case 4, 5:
			n += 2
		}
		if n >= 6 && v>>32 != 0 {
			// #GP(0): a 1 in bits 63:32 of DR6 or DR7.
			c.setFault(VecGP, 0, true)
			return false
		}
		// Reserved bits read as the SDM fixes them (Vol. 3 §17.2.3,
		// §17.2.4): DR6 keeps B0-B3, BD, BS, BT (bit 11 BLD and bit 16
		// RTM read 1: neither is advertised); DR7 bit 10 reads 1, bits 11,
		// 12, 14 and 15 read 0.
		switch n {
		case 6:
			c.DR6 = v&0xe00f | dr6Init
		case 7:
			if v&dr7Enables != 0 {
				c.exit, c.unsup = exitUnsupported, "MOV to DR7 enables a hardware breakpoint or general detect: not modelled"
				return false
			}
			c.DR7 = v&0xffff23ff | dr7Init
		default:
			c.DR[n&3] = v
		}
	case opSti:
		// SDM Vol. 2 STI: IF := 1. If IF was 0, interrupts stay blocked
		// until after the next instruction (the STI shadow).
		if c.RFLAGS&FlagIF == 0 {
			c.exit = exitSTI
		}
		c.RFLAGS |= FlagIF
	case opCli:
		c.RFLAGS &^= FlagIF
	case opHlt:
		// SDM Vol. 2 HLT: RIP moves past it; the CPU waits for an
		// interrupt.
		c.RIP = next
		c.exit = exitHlt
		return false
	case opCpuid:
		c.cpuid()
		c.exit = exitSerialize // SDM Vol. 3 §10.3 (§8.3): CPUID is serializing
	case opRdmsr:
		return c.rdmsr()
	case opWrmsr:
		return c.wrmsr()
	case opClc:
		c.RFLAGS &^= FlagCF
	case opStc:
		c.RFLAGS |= FlagCF
	case opCmc:
		c.RFLAGS ^= FlagCF
	case opCld:
		c.RFLAGS &^= FlagDF
	case opStd:
		c.RFLAGS |= FlagDF
	case opSahf:
		// SDM Vol. 2 SAHF: SF ZF AF PF CF := AH bits 7 6 4 2 0.
		const m = FlagSF | FlagZF | FlagAF | FlagPF | FlagCF
		c.RFLAGS = c.RFLAGS&^m | c.R[RAX]>>8&m
	case opLahf:
		// SDM Vol. 2 LAHF: AH := SF:ZF:0:AF:0:PF:1:CF.
		const m = FlagSF | FlagZF | FlagAF | FlagPF | FlagCF
		c.R[RAX] = c.R[RAX]&^0xff00 | (c.RFLAGS&m|flagRes1)<<8
	}
	return true
}

// CPUID values (SDM Vol. 2 CPUID). They are fixed, so runs are
// deterministic, and advertise only what the interpreter implements:
//
//	leaf        EAX         EBX            ECX                  EDX
//	0           7 (max)     "Patc"         "ceVM"               "hTra"   vendor "PatchTraceVM"
//	1           0x00000600  APIC ID<<24    POPCNT (23), CMPXCHG16B (13)  CMOV (15), CX8 (8)
//	7, ECX=0    0           BMI1 (bit 3: TZCNT)  0              CET_IBT (20), with Quirks.IBT only
//	0x80000000  0x80000001  0              0                    0
//	0x80000001  0           0              LAHF-SAHF (0), LZCNT (5)  NX (20), LM (29)
//
// Every other leaf (and sub-leaf of 7) returns zeros. The upper halves of
// RAX, RBX, RCX and RDX are cleared.
func (c *CPU) cpuid() {
	leaf, sub := uint32(c.R[RAX]), uint32(c.R[RCX])
	var a, b, cx, d uint32
	switch leaf {
	case 0:
		a = 7
		b = le32("Patc")
		d = le32("hTra")
		cx = le32("ceVM")
	case 1:
		a = 0x600
		b = uint32(c.ID&0xff) << 24
		cx = 1<<23 | 1<<13
		d = 1<<15 | 1<<8
	case 7:
		if sub == 0 {
			b = 1 << 3
			if c.cet {
				d = 1 << 20 // CET_IBT (ibt.go): only with Quirks.IBT
			}
		}
	case 0x80000000:
		a = 0x80000001
	case 0x80000001:
		cx = 1<<0 | 1<<5
		d = 1<<20 | 1<<29
	}
	c.R[RAX], c.R[RBX], c.R[RCX], c.R[RDX] = uint64(a), uint64(b), uint64(cx), uint64(d)
}

func le32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// debugReg reads DRn (DR4 and DR5 alias DR6 and DR7: SDM Vol. 3 §17.2.2,
// CR4.DE = 0).
func (c *CPU) debugReg(n uint8) uint64 {
	switch n {
	case 4, 6:
		return c.DR6
	case 5, 7:
		return c.DR7
	}
	return c.DR[n&3]
}

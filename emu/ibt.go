package emu

// Supervisor Indirect Branch Tracking (CET-IBT), SDM Vol. 1 chapter
// "Control-flow Enforcement Technology (CET)", section "Indirect Branch
// Tracking", and Vol. 2 ENDBR64, as Quirks.IBT turns it on. The machine
// runs at CPL 0 in 64-bit mode only, so the one tracker is IA32_S_CET's:
//
//   - An indirect near CALL or JMP (FF /2, FF /4, through a register or
//     memory) moves it to WAIT_FOR_ENDBRANCH, unless it carries the
//     NOTRACK prefix (3E) and Quirks.IBTNoTrack (NO_TRACK_EN) is set.
//     Direct branches, Jcc, RET and IRETQ leave it alone.
//   - In WAIT_FOR_ENDBRANCH the next instruction must be ENDBR64
//     (F3 0F 1E FA), which moves it back to IDLE; anything else, ENDBR32
//     included (it is a NOP in 64-bit mode), raises #CP with error code 3
//     (ENDBRANCH) at that instruction, a fault: the saved RIP is the
//     target. It ranks with the faults of fetching the next instruction
//     (Vol. 3 Table 6-2, priority 7): a single-step trap, an NMI or a
//     maskable interrupt pending at that boundary is delivered first, and
//     a fetch #PF at the target comes first too (the machine has to fetch
//     the bytes to see them), but it precedes everything the instruction
//     itself would raise: an int3 at the target gives #CP, not #BP.
//   - Delivery through the vector table (exceptions, NMI, interrupts) is
//     an indirect branch to the handler: the tracker waits for ENDBR64 at
//     the handler's first instruction, which is why Linux puts ENDBR at
//     every IDT entry (base/entry.S does under the pt_ibt.h knob). IRETQ
//     does not restore the interrupted context's tracker: an event taken
//     between a branch and its target ends that branch's wait (FRED's
//     frames save it; the legacy IDT frame has no place for it).
//
// IA32_S_CET itself is modelled below (RDMSR, WRMSR): tracking can be
// switched off and on per CPU.
//
// Not modelled: user mode and IA32_U_CET, the legacy code-page bitmap
// (LEG_IW_EN), SUPPRESS/SUPPRESS_DIS, far CALL/JMP (the machine decodes
// no far indirect branch), shadow stacks. A native service's entry is a
// landing point, as the kernel function it stands for would begin with
// ENDBR64.

const (
	ibtOn      uint8 = 1 // IA32_S_CET.ENDBR_EN (setSCET)
	ibtNoTrack uint8 = 2 // IA32_S_CET.NO_TRACK_EN, with ENDBR_EN only

	// CPEndbranch is #CP's error code for a missing ENDBRANCH (SDM Vol. 3
	// "Interrupt 21—Control Protection Exception (#CP)").
	CPEndbranch = 3
)

// ibtBranch runs after an indirect near CALL or JMP in has completed
// (RIP at its target): the tracker waits for ENDBR64 unless NOTRACK
// applies. brk ends a run of common steps, so the next instruction is
// fetched by the general step, which checks it (ibtCheck).
func (c *CPU) ibtBranch(in *inst) {
	if c.ibt&ibtNoTrack != 0 && hasNoTrack(in) {
		return
	}
	c.ibtWait, c.attention, c.brk = true, true, true
}

// hasNoTrack reports whether in's legacy prefixes include 3E (the DS
// segment override, read as NOTRACK on an indirect CALL or JMP).
func hasNoTrack(in *inst) bool {
	for _, b := range in.raw[:in.len] {
		switch b {
		case 0x3e:
			return true
		case 0x26, 0x2e, 0x36, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3:
			continue
		}
		if b&0xf0 == 0x40 {
			continue // REX
		}
		return false // the opcode
	}
	return false
}

// isEndbr64 reports whether in is ENDBR64 (exactly F3 0F 1E FA).
func (in *inst) isEndbr64() bool {
	return in.len == 4 && [4]byte(in.raw[:4]) == endbr64
}

// ibtCheck judges the instruction fetched while the tracker waits: the
// tracker goes back to IDLE either way, and anything but ENDBR64 (or a
// native service's entry) raises #CP(ENDBRANCH) at it. It reports
// whether it delivered the #CP.
func (m *Machine) ibtCheck(c *CPU, in *inst) bool {
	c.ibtWait = false
	c.updateAttention()
	if in.isEndbr64() || in.native != 0 {
		return false
	}
	m.deliver(c, VecCP, true, CPEndbranch, 0)
	return true
}

// IA32_S_CET (MSR 6A2H), SDM Vol. 4 Table 2-2 and Vol. 1 "CET": with
// Quirks.IBT the CPU enumerates CET_IBT (CPUID.(EAX=7,ECX=0):EDX[20]) and
// has the MSR, per CPU, starting as the quirks say (ENDBR_EN, NO_TRACK_EN
// if IBTNoTrack). RDMSR and WRMSR of it switch tracking off and on, as
// Linux's ibt_save()/ibt_restore() do around boot-time patching (commit
// ebebe30794d3, "x86/ibt: Keep IBT disabled during alternative
// patching"). Without Quirks.IBT, RDMSR and WRMSR stay unimplemented (the
// run stops on them), as before.
const (
	msrSCET = 0x6a2

	sCETShStkEn   = 1 << 0         // SH_STK_EN: CET_SS is not enumerated, #GP
	sCETWrShStkEn = 1 << 1         // WR_SHSTK_EN: likewise
	sCETEndbrEn   = 1 << 2         // ENDBR_EN
	sCETLegIwEn   = 1 << 3         // LEG_IW_EN: not modelled
	sCETNoTrackEn = 1 << 4         // NO_TRACK_EN
	sCETSupprDis  = 1 << 5         // SUPPRESS_DIS: not modelled
	sCETReserved  = 0xf << 6       // bits 9:6, #GP
	sCETSuppress  = 1 << 10        // SUPPRESS: not modelled
	sCETTracker   = 1 << 11        // TRACKER: 1 is WAIT_FOR_ENDBRANCH
	sCETLegBitmap = ^uint64(0xfff) // EB_LEG_BITMAP_BASE: not modelled
)

// setSCET makes v IA32_S_CET's value. The tracker is the MSR's TRACKER
// bit: while ENDBR_EN is set it is the live one (ibtWait; EndbranchEnabled
// in the SDM's pseudocode gates both moving it on a branch and checking
// it), so a WRMSR of TRACKER = 1 with ENDBR_EN makes the next instruction
// need ENDBR64, as the XRSTORS of a saved tracker does; while ENDBR_EN is
// clear it is only stored, and indirect branches and deliveries leave it
// alone (c.ibt is 0, so nothing waits).
func (c *CPU) setSCET(v uint64) {
	c.sCET = v
	c.ibt, c.ibtWait = 0, false
	if v&sCETEndbrEn != 0 {
		c.ibt = ibtOn
		if v&sCETNoTrackEn != 0 {
			c.ibt |= ibtNoTrack
		}
		if v&sCETTracker != 0 {
			c.ibtWait, c.brk = true, true
		}
		c.sCET &^= sCETTracker // live in ibtWait
	}
	c.updateAttention()
}

// msrIndex returns ECX (RDMSR and WRMSR ignore RCX's upper half) and ""
// if the machine models that MSR, else why not (the run stops on it).
func (c *CPU) msrIndex() (uint32, string) {
	if !c.cet {
		return 0, "not implemented"
	}
	if i := uint32(c.R[RCX]); i != msrSCET {
		return i, "only MSR IA32_S_CET (6A2H) is modelled"
	}
	return msrSCET, ""
}

// rdmsr: SDM Vol. 2 RDMSR, EDX:EAX := IA32_S_CET (upper halves of RAX and
// RDX cleared). RDMSR runs with the tracker IDLE (it is not ENDBR64), so
// TRACKER reads 0 while ENDBR_EN is set.
func (c *CPU) rdmsr() bool {
	if _, why := c.msrIndex(); why != "" {
		c.exit, c.unsup = exitUnsupported, why
		return false
	}
	v := c.sCET
	if c.ibtWait {
		v |= sCETTracker
	}
	c.R[RAX], c.R[RDX] = v&0xffffffff, v>>32
	return true
}

// wrmsr: SDM Vol. 2 WRMSR, IA32_S_CET := EDX:EAX, serializing (Vol. 3
// §10.3). #GP(0) for a reserved bit (9:6), a shadow-stack enable (CET_SS
// is not enumerated) or SUPPRESS with TRACKER (Vol. 1 CET: the two
// together are invalid); the bits of what the machine does not model
// (legacy bitmap, suppression) stop the run.
func (c *CPU) wrmsr() bool {
	if _, why := c.msrIndex(); why != "" {
		c.exit, c.unsup = exitUnsupported, why
		return false
	}
	v := c.R[RDX]<<32 | c.R[RAX]&0xffffffff
	switch {
	case v&(sCETReserved|sCETShStkEn|sCETWrShStkEn) != 0,
		v&(sCETSuppress|sCETTracker) == sCETSuppress|sCETTracker:
		c.setFault(VecGP, 0, true)
		return false
	case v&(sCETLegIwEn|sCETSupprDis|sCETSuppress|sCETLegBitmap) != 0:
		c.exit, c.unsup = exitUnsupported, "IA32_S_CET legacy bitmap and suppression (LEG_IW_EN, SUPPRESS_DIS, SUPPRESS, EB_LEG_BITMAP_BASE) are not modelled"
		return false
	}
	c.setSCET(v)
	c.exit = exitSerialize
	return true
}

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
// Not modelled: user mode and IA32_U_CET, the legacy code-page bitmap
// (LEG_IW_EN), SUPPRESS/SUPPRESS_DIS, far CALL/JMP (the machine decodes
// no far indirect branch), shadow stacks. A native service's entry is a
// landing point, as the kernel function it stands for would begin with
// ENDBR64.

const (
	ibtOn      uint8 = 1 // IA32_S_CET.ENDBR_EN
	ibtNoTrack uint8 = 2 // IA32_S_CET.NO_TRACK_EN

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

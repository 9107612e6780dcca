package emu

import (
	"errors"

	"golang.org/x/arch/x86/x86asm"
)

// runCPU runs up to n steps on c. A step is one instruction, one event
// delivery, or (for a halted CPU) nothing. It returns early when the CPU
// halts with nothing to wake it or the machine stops.
func (m *Machine) runCPU(c *CPU, n int) {
	// Every instruction counted while c runs is c's: its count is added
	// once here rather than per instruction.
	start := m.insns
	m.steps(c, n)
	c.stats.Insns += m.insns - start
}

func (m *Machine) steps(c *CPU, n int) {
	sink := m.sink
	for ; n > 0; n-- {
		if sink == nil && (!c.attention || c.held()) && c.RFLAGS&FlagTF == 0 {
			// The common steps, alone: nothing to deliver, no STI shadow,
			// no single-step, no recording, and fetch hits decodes that
			// are not special. Exactly what the general step below does
			// then; the first step that is anything else comes here.
			var stop bool
			if n, stop = m.fastSteps(c, n); stop || n == 0 {
				return
			}
		}
		shadowed := false // this instruction runs in the STI shadow
		ibt := false      // the IBT tracker waits for ENDBR64 (cpu.ibtWait)
		if c.attention {
			switch m.boundary(c) {
			case bdDelivered:
				if m.stop != StopNone {
					return // the delivery oopsed (no gate, a triple fault) or hit the budget
				}
				continue
			case bdCut:
				m.cut = true
				return
			case bdIdle:
				return
			case bdShadow:
				shadowed = true
			}
			if m.stop != StopNone {
				return
			}
			ibt = c.ibtWait // nothing was delivered before the next fetch
		}
		var in *inst
		if dp := c.currentPage(); dp != nil { // fetch's hit, inline
			in = dp.insts[c.RIP&pageMask]
		}
		if in == nil {
			var ok bool
			var err error
			in, ok, err = c.fetch()
			if !ok {
				if err != nil {
					m.fail(err)
					return
				}
				m.fault(c) // #PF on fetch: delivered with RIP at the instruction
				if m.stop != StopNone {
					return
				}
				continue
			}
		}
		if in.special && in.watch && c.injectedAt != c.RIP && m.watchHit(c) {
			c.injectedAt = c.RIP
			continue // deliver before this instruction
		}
		if ibt && m.ibtCheck(c, in) {
			if m.stop != StopNone {
				return
			}
			continue // #CP delivered at this instruction
		}
		if in.special {
			if in.native != 0 {
				if shadowed {
					c.shadow, c.ssShadow = false, false
					c.updateAttention()
				}
				tf := c.RFLAGS&FlagTF != 0
				if m.regs {
					// The service row carries what the service changed
					// (RAX, RSP: its return).
					c.beginDefer()
					m.service(c, ServiceID(in.native))
					m.endDefer(c)
				} else {
					m.service(c, ServiceID(in.native))
				}
				m.insns++
				if m.stop != StopNone || m.budgetOut() {
					return
				}
				if tf {
					c.singleStep() // a native stub steps as one instruction
				}
				continue
			}
			if c.injectedAt == c.RIP {
				// The instruction a rule fired at runs now; a later
				// arrival counts again (the handler's IRETQ back to it
				// does not). Only a watched address is ever injectedAt,
				// and every decode there is special.
				c.injectedAt = 0
			}
		}
		if shadowed {
			// The shadow covers exactly this instruction (SDM Vol. 2 STI,
			// Vol. 3 §6.8.3).
			c.shadow, c.ssShadow = false, false
			c.updateAttention()
		}
		// TF as the instruction starts decides whether it single-steps
		// (SDM Vol. 3 §17.3.1.4): the POPF or IRETQ that sets TF does not
		// trap, the instruction after it does; one that clears TF still
		// does.
		tf := c.RFLAGS&FlagTF != 0
		if sink != nil {
			m.execRecorded(c, in)
		} else {
			c.exec(in)
		}
		m.insns++
		if c.exit != exitNone {
			x := c.exit
			m.afterExit(c, in)
			if m.stop != StopNone {
				return
			}
			if x == exitFault || x == exitInt3 || x == exitInt1 {
				// A faulting instruction did not complete: no trap (it
				// single-steps when it re-executes). INT3 and INT1 deliver
				// with TF cleared and no single-step trap of their own
				// (SDM Vol. 3 §17.3.1.4: INT n/INTO clear TF, "the
				// processor clears the TF flag before calling the
				// exception handler").
				tf = false
			}
		}
		if tf {
			c.singleStep()
		}
		if m.budgetOut() {
			return
		}
	}
}

// held reports whether boundary, looking at c (whose attention is set),
// would deliver nothing and change nothing: no text_poke byte, STI or MOV
// SS shadow, halt or single-step is pending, and the pending NMI and
// maskable interrupts are held (NMIs blocked or not yet enabled, IF
// clear). The general step then only runs the instruction, as a common
// step does: a CPU with interrupts off and a timer or IPI pending (4.8 %
// of text-poke-bp's instructions, in the int3 and IPI handlers and the
// patcher's critical sections) runs them as common steps. What could
// release them (STI, POPF, IRETQ, a delivery, a raise by a service or a
// watched address) ends a run of common steps (CPU.brk, special decodes),
// after which fastRuns looks again.
func (c *CPU) held() bool {
	return !c.shadow && !c.halted && !c.dbPend && c.poke == nil && !c.ibtWait &&
		(!c.nmiPend || c.nmiBlock || !c.booted) &&
		(c.irqs == 0 || c.RFLAGS&FlagIF == 0)
}

// fastSteps runs common steps on c while there are any of the n left,
// and returns how many are left and whether the run must stop. A common
// step is one the general step in steps would take as: nothing to deliver
// (no attention, or all of it held), no single-step (TF clear), no sink, and fetch's hit on a
// decode that is not special. It executes exactly the instructions the
// general step would, but takes as unchanged between two instructions
// what only an exit or c.brk can change (attention, TF, the decode page's
// bytes), validating the decode page once while RIP stays on it, and
// counts the instructions and the budget once per run of them.
//
// The arithmetic flags stay lazy (CPU.lf) from one run to the next; they
// are materialized before an exit is handled and before fastSteps
// returns.
func (m *Machine) fastSteps(c *CPU, n int) (int, bool) {
	n, stop := m.fastRuns(c, n)
	if c.lf.kind != 0 {
		c.materialize()
	}
	return n, stop
}

func (m *Machine) fastRuns(c *CPU, n int) (int, bool) {
	for n > 0 && (!c.attention || c.held()) && c.RFLAGS&FlagTF == 0 {
		// fetch's hit (currentPage), checked once per page.
		dp := c.currentPage()
		if dp == nil {
			return n, false
		}
		if m.insns >= m.insnLimit {
			return n, false // the general step runs it and stops on the budget
		}
		// Run at most k instructions: the steps left, within the budget.
		k := n
		if left := m.insnLimit - m.insns; uint64(k) > left {
			k = int(left)
		}
		in := dp.insts[c.RIP&pageMask]
		if in == nil || in.special {
			return n, false
		}
		c.brk = false
		done, last := c.run(dp, in, k)
		m.insns += uint64(done)
		n -= done
		if c.exit != exitNone {
			if c.lf.kind != 0 {
				c.materialize() // afterExit may deliver: the frame holds RFLAGS
			}
			m.afterExit(c, last)
			if m.stop != StopNone {
				return n, true
			}
		}
		if m.budgetOut() {
			return n, true
		}
		// Validate again: the exit, brk or a new page may have changed
		// anything.
	}
	return n, false
}

// execRecorded executes in on c with a sink: the insn event (with the
// registers the instruction changed, when recording them), then its loads
// and stores in the order it made them.
func (m *Machine) execRecorded(c *CPU, in *inst) {
	if m.insn != nil {
		m.execInsnSink(c, in)
		return
	}
	// A record only insn events use: only its insn fields are ever
	// written, so the rest stay zero without clearing the whole event
	// per instruction.
	e := &c.insnEv
	e.Kind, e.CPU, e.RIP, e.Len, e.Bytes = EvInsn, uint16(c.ID), c.RIP, in.len, in.raw
	e.Op, e.RSP, e.Flags = uint16(in.op), c.R[RSP], c.RFLAGS
	if !m.regs {
		e.RegMask = 0
		m.emit(c, e)
		c.exec(in)
		return
	}
	// The insn event waits until the instruction is done (its register
	// deltas are known only then); its loads and stores wait in c.pend
	// meanwhile, and follow it.
	c.beginDefer()
	c.exec(in)
	c.deferring = false
	c.regDelta(e)
	m.emit(c, e)
	m.flush(c)
}

// execInsnSink is execRecorded for an InsnSink: the same events, the insn
// event as a call (what emit would stamp it with: the next sequence
// number, the CPU's task and depth as they are then).
func (m *Machine) execInsnSink(c *CPU, in *inst) {
	rip, rsp, flags := c.RIP, c.R[RSP], c.RFLAGS
	if !m.regs {
		seq := m.seq
		m.seq++
		m.insn.Insn(seq, uint16(c.ID), c.task, c.depth, rip, in.len, &in.raw, uint16(in.op), rsp, flags, 0, nil)
		c.exec(in)
		return
	}
	c.beginDefer()
	c.exec(in)
	c.deferring = false
	e := &c.insnEv
	c.regDelta(e)
	seq := m.seq
	m.seq++
	m.insn.Insn(seq, uint16(c.ID), c.task, c.depth, rip, in.len, &in.raw, uint16(in.op), rsp, flags, e.RegMask, &e.Regs)
	m.flush(c)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (m *Machine) budgetOut() bool {
	if m.insns >= m.insnLimit {
		m.halt(StopBudget, "instruction budget exhausted")
		return true
	}
	return false
}

type bdResult uint8

const (
	bdRun       bdResult = iota // execute the next instruction
	bdShadow                    // execute the next instruction; it is in the STI shadow
	bdDelivered                 // an event was delivered (a step was used)
	bdCut                       // a text_poke byte was stored, more follow (a step was used): the quantum ends
	bdIdle                      // halted with nothing deliverable
)

// singleStep makes a single-step #DB pending: a trap delivered at the next
// instruction boundary (SDM Vol. 3 §17.3.1.4, §6.15 Interrupt 1), unless a
// MOV SS shadow holds it one more instruction.
func (c *CPU) singleStep() {
	c.dbPend = true
	c.attention = true
}

// boundary applies the instruction-boundary rules in the priority order of
// SDM Vol. 3 §6.9, Table 6-2: a single-step #DB trap from the previous
// instruction (priority 4) first, then NMI (5) unless blocked, then
// maskable interrupts (6) when IF=1. The STI shadow holds maskable
// interrupts (and NMIs, unless Quirks.NMIInSTIShadow) for one instruction;
// the MOV SS shadow holds all three (SDM Vol. 3 §6.8.3: "inhibits
// interrupts, debug exceptions, and single-step trap exceptions ... until
// the instruction boundary following the next instruction"). Delivering
// any event ends the shadow (deliver clears it); otherwise the shadow lasts
// until the next instruction has executed, however many times the boundary
// is looked at before (an injection rule firing at that instruction looks
// again). A held single-step trap is not lost: it is delivered after the
// shadowed instruction, or, if that instruction raised an exception, before
// the first instruction of its handler (as pending debug exceptions are,
// SDM Vol. 3 §6.8.3; the MOV SS + INT3 case of CVE-2018-8897).
func (m *Machine) boundary(c *CPU) bdResult {
	inhibit := c.shadow
	defer c.updateAttention()
	if c.poke != nil {
		// A byte-granular text_poke: one byte is this step, and the
		// quantum ends between two bytes (after the last there is nothing
		// to see half-done).
		if m.regs {
			// The last byte returns from text_poke: its store carries
			// RAX and RSP.
			c.beginDefer()
			m.pokeStep(c)
			m.endDefer(c)
		} else {
			m.pokeStep(c)
		}
		if c.poke != nil {
			return bdCut
		}
		return bdDelivered
	}
	if c.dbPend && !c.ssShadow {
		// SDM Vol. 3 §17.2.3: BS reports the single-step; the other DR6
		// bits keep what they held.
		c.dbPend = false
		c.halted = false
		c.DR6 |= dr6BS
		m.deliver(c, VecDB, false, 0, c.DR6)
		return bdDelivered
	}
	if c.nmiPend && !c.nmiBlock && c.booted && (!inhibit || m.cfg.Quirks.NMIInSTIShadow && !c.ssShadow) {
		c.nmiPend = false
		c.halted = false
		m.deliver(c, VecNMI, false, 0, 0)
		return bdDelivered
	}
	if c.irqs != 0 && c.RFLAGS&FlagIF != 0 && !inhibit {
		for i, v := range irqVectors {
			if c.irqs&(1<<i) != 0 {
				c.irqs &^= 1 << i
				c.halted = false
				m.deliver(c, v, false, 0, 0)
				return bdDelivered
			}
		}
	}
	if c.halted {
		return bdIdle
	}
	if inhibit {
		return bdShadow
	}
	return bdRun
}

// runnable reports whether stepping c can do anything.
func (c *CPU) runnable() bool {
	if !c.halted || c.dbPend {
		return true
	}
	if c.nmiPend && !c.nmiBlock && c.booted {
		return true
	}
	return c.irqs != 0 && c.RFLAGS&FlagIF != 0
}

// afterExit handles what exec flagged.
func (m *Machine) afterExit(c *CPU, in *inst) {
	x := c.exit
	c.exit = exitNone
	switch x {
	case exitFault:
		if c.fault.noncanon && in.sem.mf&(mMem|mBase|mGS) == mMem|mBase && (in.sem.base&15 == RSP || in.sem.base&15 == RBP) {
			// A memory operand based on RSP or RBP is a stack-segment
			// reference (SDM Vol. 1 §3.7.4, Table 3-5; no segment
			// override): non-canonical is #SS(0) (SDM Vol. 3 §6.15
			// Interrupt 12).
			c.fault.vector = VecSS
		}
		m.fault(c)
	case exitUnsupported:
		m.fail(m.wrapErr(c, &UnsupportedError{Addr: in.addr, Bytes: append([]byte(nil), in.raw[:in.len]...), Reason: c.unsup}))
	case exitInt3:
		m.deliver(c, VecBP, false, 0, 0)
	case exitInt1:
		m.deliver(c, VecDB, false, 0, c.DR6)
	case exitMovSS:
		c.shadow, c.ssShadow = true, true
	case exitIret:
		c.nmiBlock = false
		if c.depth > 0 {
			c.depth--
		}
		if m.sink != nil {
			e := c.event(EvIret)
			e.RIP = in.addr
			e.Handler = c.RIP
			e.RSP = c.R[RSP]
			e.Flags = c.RFLAGS
			if m.regs {
				// As on the IRETQ's insn row: RSP and RFLAGS if the
				// return changed them.
				if c.R[RSP] != c.r0[RSP] {
					e.RegMask |= 1 << regBit[RSP]
					e.Regs[regBit[RSP]] = c.R[RSP]
				}
				if c.RFLAGS != c.f0 {
					e.RegMask |= 1 << RegFlags
					e.Regs[RegFlags] = c.RFLAGS
				}
			}
			m.emit(c, e)
		}
		c.serialize(SerIret)
	case exitSTI:
		c.shadow = true
		c.booted = true
	case exitHlt:
		c.halted = true
		if m.sink != nil {
			m.emit(c, c.event(EvHalt))
		}
	case exitSerialize:
		if in.sem.op == opWrmsr {
			// WRMSR serializes too (SDM Vol. 3 §10.3), but the trace's
			// causes name none for it (format.Causes): the stale decodes
			// go without an event.
			c.resync()
			break
		}
		c.serialize(SerCPUID)
	}
	c.updateAttention()
}

// fault delivers the exception recorded in c.fault (RIP is the faulting
// instruction's).
func (m *Machine) fault(c *CPU) {
	f := c.fault
	c.exit = exitNone
	m.deliver(c, f.vector, f.hasErr, f.errCode, f.addr)
}

// deliver performs an exception/interrupt delivery through the vector table
// (SDM Vol. 3 §6.14.2, 64-bit mode: the stack is aligned to 16 and SS:RSP is
// always pushed). A vector with no entry is an oops that stops the run; a
// fault while pushing the frame is handled as SDM Vol. 3 Table 6-5 says
// (deliverFault).
func (m *Machine) deliver(c *CPU, v Vector, hasErr bool, errCode, cr2 uint64) {
	m.delivered++
	g := m.img.gates[v]
	if g == nil {
		m.oops(c, v, errCode, cr2, "no handler for "+v.gateName())
		return
	}
	sp := c.R[RSP]
	if g.IST != 0 {
		ist, ok := m.istTop(c, g.IST)
		if !ok {
			m.oops(c, v, errCode, cr2, "IST stack pointer unreadable")
			return
		}
		sp = ist
	}
	sp &^= 15
	// Same-privilege delivery pushes SS unchanged (64-bit mode: SS is
	// pushed unconditionally; it is only nulled on a privilege change,
	// SDM Vol. 3 §6.14.4); CS is always the kernel's.
	frame := [6]uint64{uint64(c.SS), c.R[RSP], c.RFLAGS, selKernelCS, c.RIP, errCode}
	n := 5
	if hasErr {
		n = 6
	}
	stackTop := sp
	for i := 0; i < n; i++ {
		sp -= 8
		if !c.write(sp, 8, frame[i]) {
			c.exit = exitNone
			c.stackFault() // the frame goes through SS: non-canonical is #SS(0)
			m.deliverFault(c, v)
			return
		}
	}
	c.lastVec, c.lastFrameRIP = v, c.RIP
	// SDM Vol. 3 §6.12.1 ("Flag Usage By Exception- or Interrupt-Handler
	// Procedure") and §17.3.1.4: delivery through an interrupt
	// or trap gate clears TF (after pushing RFLAGS), so a handler is not
	// single-stepped; IRETQ restores it from the frame.
	flags := c.RFLAGS &^ FlagTF
	if g.Type == GateInterrupt {
		flags &^= FlagIF
	}
	if m.sink != nil {
		e := c.event(EvTrap)
		if m.regs {
			e.RegMask = 1 << regBit[RSP]
			e.Regs[regBit[RSP]] = sp
			if flags != c.RFLAGS {
				e.RegMask |= 1 << RegFlags
				e.Regs[RegFlags] = flags
			}
		}
		e.Vector = v
		e.Handler = g.Handler
		e.RSP = sp
		e.IST = g.IST
		e.Flags = c.RFLAGS
		e.ErrCode = errCode
		e.Addr = cr2
		e.Size = uint32(stackTop - sp)
		m.emit(c, e)
	}
	c.R[RSP] = sp
	c.RIP = g.Handler
	c.shadow, c.ssShadow = false, false // delivering an event ends the STI or MOV SS shadow
	c.RFLAGS = flags
	if v == VecNMI {
		c.nmiBlock = true
	}
	if c.ibt != 0 {
		// Delivery through the vector table is an indirect branch to the
		// handler, which must begin with ENDBR64 (ibt.go).
		c.ibtWait = true
	}
	if c.depth < 255 {
		c.depth++
	}
	c.stats.Traps[v]++
	c.updateAttention()
}

// Exception classes for double faults (SDM Vol. 3 §6.15 Interrupt 8,
// Table 6-4).
const (
	excBenign       = iota // #DB NMI #BP #OF #BR #UD #NM #MF #AC #MC, interrupts
	excContributory        // #DE #TS #NP #SS #GP
	excPageFault           // #PF
)

func (v Vector) excClass() int {
	switch v {
	case VecDE, VecTS, VecNP, VecSS, VecGP:
		return excContributory
	case VecPF:
		return excPageFault
	}
	return excBenign
}

// deliverFault handles the exception in c.fault, raised while pushing the
// frame for first, as SDM Vol. 3 §6.15 Interrupt 8, Table 6-5 says: a
// contributory exception after a contributory one, or a contributory
// exception or #PF after a #PF, is a double fault (#DF, error code 0,
// delivered through its own gate: an IST one survives a dead stack); a
// fault while delivering #DF is a triple fault, which shuts the CPU down
// (an oops here); any other pair is handled serially: the second exception
// is delivered instead of the first (whose delivery never happened), with
// the same saved RIP.
func (m *Machine) deliverFault(c *CPU, first Vector) {
	f := c.fault
	if first == VecDF {
		m.oops(c, VecDF, f.errCode, f.addr, "triple fault: "+f.vector.Name()+" while pushing the #DF frame (the CPU shuts down)")
		return
	}
	a, b := first.excClass(), f.vector.excClass()
	if a == excContributory && b == excContributory || a == excPageFault && b != excBenign {
		m.deliver(c, VecDF, true, 0, 0)
		return
	}
	m.deliver(c, f.vector, f.hasErr, f.errCode, f.addr)
}

func (m *Machine) oops(c *CPU, v Vector, errCode, addr uint64, msg string) {
	text := m.img.Describe(c.RIP)
	full := "oops: " + msg + " at " + text
	if m.sink != nil {
		e := c.event(EvFault)
		e.Vector = v
		e.ErrCode = errCode
		e.Addr = addr
		e.Msg = full
		m.emit(c, e)
	}
	m.halt(StopOops, "cpu"+itoa(c.ID)+": "+full)
}

func (m *Machine) fail(err error) {
	if m.err == nil {
		m.err = err
	}
	var u *UnsupportedError
	if errors.As(err, &u) {
		m.halt(StopUnsupported, err.Error())
		return
	}
	m.halt(StopError, err.Error())
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}

// watchHit counts an arrival at a watched address and raises the rules that
// fire. It reports whether anything was raised.
func (m *Machine) watchHit(c *CPU) bool {
	raised := false
	for _, i := range m.watches[c.RIP] {
		r := &m.cfg.Inject[i]
		if r.CPU != c.ID {
			continue
		}
		m.hits[i]++
		if r.Hit == 0 || m.hits[i] == r.Hit {
			m.raise(c, r.Vector, nil)
			raised = true
		}
	}
	return raised
}

// OpName returns the mnemonic of an x86asm.Op stored in Event.Op.
func OpName(op uint16) string { return x86asm.Op(op).String() }

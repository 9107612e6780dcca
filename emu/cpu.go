package emu

// Register indexes into CPU.R, in the hardware encoding order (SDM Vol. 2
// §2.1.5, Table 2-2: the ModRM/REX register numbers). x86asm.RAX..R15 map
// onto these by regIndex.
const (
	RAX = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

// RFLAGS bits (SDM Vol. 1 §3.4.3, Figure 3-8).
//
//	 11 10  9  8  7  6  5  4  3  2  1  0
//	+--+--+--+--+--+--+--+--+--+--+--+--+
//	|OF|DF|IF|TF|SF|ZF| 0|AF| 0|PF| 1|CF|
//	+--+--+--+--+--+--+--+--+--+--+--+--+
const (
	FlagCF   uint64 = 1 << 0
	flagRes1 uint64 = 1 << 1 // reserved, always 1
	FlagPF   uint64 = 1 << 2
	FlagAF   uint64 = 1 << 4
	FlagZF   uint64 = 1 << 6
	FlagSF   uint64 = 1 << 7
	FlagTF   uint64 = 1 << 8
	FlagIF   uint64 = 1 << 9
	FlagDF   uint64 = 1 << 10
	FlagOF   uint64 = 1 << 11

	// FlagsArith are the six status flags the ALU writes.
	FlagsArith = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
	// flagsWritable are the bits POPF/IRETQ may change at CPL 0 in this
	// machine (no AC/ID/VM/RF/NT emulation).
	flagsWritable = FlagsArith | FlagTF | FlagIF | FlagDF
)

// exitKind tells the step loop that the instruction just executed needs the
// machine's attention. exec sets c.exit; zero means "nothing special", which
// is the only case on the hot path.
type exitKind uint8

const (
	exitNone        exitKind = iota
	exitFault                // c.fault describes an exception; architectural state is as before the instruction
	exitInt3                 // INT3 executed: RIP is past the 0xCC, deliver #BP as a trap
	exitIret                 // IRETQ popped RIP/CS/RFLAGS/RSP/SS: unblock NMIs, serialize
	exitSTI                  // STI set IF from 0 to 1: open the one-instruction interrupt shadow
	exitHlt                  // HLT: wait for an interrupt
	exitSerialize            // a serializing instruction (CPUID)
	exitMovSS                // MOV SS loaded SS: open the one-instruction MOV SS shadow
	exitInt1                 // INT1 executed: RIP is past the 0xF1, deliver #DB as a trap
	exitUnsupported          // a valid instruction asked for what the machine does not model (c.unsup says what); nothing changed
)

// faultInfo describes an exception raised by an instruction (a fault: the
// saved RIP is the faulting instruction's).
type faultInfo struct {
	vector  Vector
	errCode uint64
	hasErr  bool
	addr    uint64 // CR2 for #PF
	access  Access // what the access tried to do, for #PF
	// noncanon: a memory access to a non-canonical address raised #GP(0);
	// a stack reference turns it into #SS(0) (stackFault).
	noncanon bool
}

// CPU is one emulated x86-64 logical processor in 64-bit mode at CPL 0.
// Its fields are used directly by the interpreter; nothing outside emu
// touches them (read a copy via Machine.Regs).
type CPU struct {
	R      [16]uint64 // general-purpose registers, hardware order (RAX..R15)
	RIP    uint64
	RFLAGS uint64
	GSBase uint64
	// SS is the stack-segment selector: what delivery pushes, IRETQ and
	// MOV SS load (gdt.go). CS is always selKernelCS (CPL 0, 64-bit mode).
	SS uint16
	// DR6 is the debug status register (SDM Vol. 3 §17.2.3): BS is set
	// when a single-step #DB is delivered; nothing clears it but software.
	// DR0-DR3 and DR7 hold what software wrote; no breakpoint they could
	// enable is modelled, so enabling one ends the run unsupported.
	DR6 uint64
	DR  [4]uint64
	DR7 uint64

	// lastVec and lastFrameRIP are the vector and pushed RIP of the last
	// delivery; oopsIP the value of the last pt_marker(MarkerOopsIP, ip)
	// (die()'s regs->ip). A panic names the place from them.
	lastVec      Vector
	lastFrameRIP uint64
	oopsIP       uint64

	ID int
	m  *Machine

	// Set by exec when the instruction needs the step loop; see exitKind.
	exit exitKind
	// brk tells the step loop's run of common steps (fastSteps) to look
	// again at what it otherwise assumes unchanged between instructions:
	// set by every fault (setFault, pageFault: an exit, which CPU.run
	// sees as brk alone, since every other exit comes from an instruction
	// execCold runs), by every instruction execCold runs but the plain
	// ones and those that change only the arithmetic flags (coldGoesOn;
	// the others may change RFLAGS.TF or IF or exit), by
	// a store to a frame some CPU decoded from (the decodes on it may have
	// changed) and by every store or read the machine is told about
	// (commitWrite, readEvents: a watched read may raise an event).
	brk   bool
	fault faultInfo
	lf    lazyFlags // CPU.run's lazy arithmetic flags (flags.go)
	unsup string    // for exitUnsupported

	cpuState // machine-owned state (interrupts, caches, scheduling): machine.go
}

// setFault records an exception raised by the current instruction.
func (c *CPU) setFault(v Vector, errCode uint64, hasErr bool) {
	c.exit, c.brk = exitFault, true
	c.fault = faultInfo{vector: v, errCode: errCode, hasErr: hasErr}
}

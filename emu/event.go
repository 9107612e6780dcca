package emu

// EventKind says what an Event records. The values are stable: a trace
// stores them under the names of format.Kinds, the one declaration of the
// trace's vocabulary; emu does not import format, and record's
// TestEnumTwins checks that every value and name here equals its twin there
// (as for ServiceID, SerializeCause, Vector, Perm and StopReason).
type EventKind uint8

const (
	EvInsn        EventKind = 1  // an instruction retired (or faulted: see Fault kind)
	EvWrite       EventKind = 2  // a memory store (one per access, <= 8 bytes)
	EvPercpuRead  EventKind = 3  // a load from a declared per-CPU slot
	EvTrap        EventKind = 4  // exception/interrupt/NMI delivered
	EvIret        EventKind = 5  // IRETQ returned from a trap frame
	EvPerm        EventKind = 6  // page permission change (or map/unmap)
	EvSerialize   EventKind = 7  // the CPU serialized (CPUID, IRETQ, ...)
	EvSwitch      EventKind = 8  // the slice's scheduler switched tasks
	EvService     EventKind = 9  // a native kernel service ran
	EvMarker      EventKind = 10 // a scenario marker
	EvFault       EventKind = 11 // a fault with no handler (oops), panic, BUG
	EvInject      EventKind = 12 // an interrupt/NMI was raised (made pending) on a CPU
	EvHalt        EventKind = 13 // the CPU halted (HLT) waiting for an interrupt
	EvLoad        EventKind = 14 // a data read (one per access, <= 8 bytes)
	maxEventKinds           = 15
)

var eventKindNames = [...]string{
	EvInsn: "insn", EvWrite: "write", EvPercpuRead: "percpu_read", EvTrap: "trap",
	EvIret: "iret", EvPerm: "perm", EvSerialize: "serialize", EvSwitch: "switch",
	EvService: "service", EvMarker: "marker", EvFault: "fault", EvInject: "inject",
	EvHalt: "halt", EvLoad: "load",
}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "kind?"
}

// EventKinds lists every kind in numeric order.
func EventKinds() []EventKind {
	ks := make([]EventKind, 0, maxEventKinds-1)
	for k := EvInsn; k < maxEventKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// Event is one thing the machine did. It is a flat record: fields a kind does
// not use are zero (and null in a trace). The machine reuses one Event per CPU,
// so a Sink must copy what it keeps before returning.
//
// Which fields each kind fills is declared once, by the trace's column table
// (format.Columns, printed in docs/trace-format.md): a field fills the column
// of its name in snake case, except Flags (column rflags), Args (arg0..arg3)
// and Percpu (whether percpu_cpu and percpu_off are set). Seq, CPU, Task,
// Depth and RIP are common to every kind.
type Event struct {
	Seq   uint64
	Kind  EventKind
	CPU   uint16
	Task  uint32 // the task the CPU was running (set by the slice's switch marker)
	Depth uint8  // trap nesting depth on this CPU: 0 = task context
	RIP   uint64

	Len   uint8
	Bytes [15]byte
	Op    uint16 // x86asm.Op of the instruction
	RSP   uint64
	Flags uint64

	Addr      uint64
	Size      uint32
	Old, New  uint64
	Alias     bool   // the store went through the text-poke alias mapping
	AliasAddr uint64 // the alias virtual address written
	Percpu    bool   // Addr is inside a CPU's per-CPU area
	PercpuCPU uint16 // whose area
	PercpuOff uint32 // offset within the per-CPU section (= the per-CPU symbol's value)

	Vector  Vector
	Handler uint64
	IST     uint8
	ErrCode uint64

	PermOld, PermNew Perm
	Cause            SerializeCause
	Service          ServiceID
	Args             [4]uint64
	Ret              uint64
	Msg              string

	// Register deltas: bit i of RegMask set means register RegNames[i]
	// changed and Regs[i] is its value after the event. Set on insn rows
	// (what the instruction changed), trap (RSP, RFLAGS), iret, service
	// (RAX, RSP), the last store of a byte-granular text_poke (its
	// return), and every register on each CPU's start serialize event.
	RegMask uint32
	Regs    [NumRegs]uint64
}

// NumRegs is the number of registers in Event.Regs.
const NumRegs = 17

// RegNames names Event.Regs in order (the trace's format.RegNames: record's
// TestEnumTwins checks they agree).
var RegNames = [NumRegs]string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rflags"}

// RegFlags is the index of RFLAGS in Event.Regs; RegIndex maps the
// others to CPU.R (hardware order).
const RegFlags = 16

// RegIndex[i] is the CPU.R index of Event.Regs[i] for i < RegFlags.
var RegIndex = [RegFlags]int{RAX, RBX, RCX, RDX, RSI, RDI, RBP, RSP, R8, R9, R10, R11, R12, R13, R14, R15}

// SerializeCause says why a CPU serialized; a trace stores it under the
// names of format.Causes (record's TestEnumTwins checks that the two agree).
type SerializeCause uint8

const (
	SerIret  SerializeCause = 1 // IRETQ
	SerCPUID SerializeCause = 2 // CPUID
	SerStart SerializeCause = 3 // CPU start
)

func (s SerializeCause) String() string {
	switch s {
	case SerIret:
		return "iretq"
	case SerCPUID:
		return "cpuid"
	case SerStart:
		return "start"
	}
	return "cause?"
}

// Sink receives the machine's events in sequence order. A nil Sink costs
// nothing: the machine does not build events then. Event must not retain e.
type Sink interface {
	Event(e *Event)
}

// An InsnSink is a Sink that takes insn events, the most frequent, as a
// call with their fields instead of an Event (the recorder's path to the
// trace writer: no Event is filled and read back per instruction). The
// machine calls Insn exactly where it would call Event with the insn
// event, in the same sequence order; every other event still goes
// through Event.
type InsnSink interface {
	Sink
	// Insn is an EvInsn event: bytes holds the instruction in its first
	// n bytes (the rest is not meaningful), regs the registers in regMask
	// (Event.Regs order; the others are not meaningful).
	Insn(seq uint64, cpu uint16, task uint32, depth uint8, rip uint64, n uint8, bytes *[15]byte, op uint16, rsp, flags uint64,
		regMask uint32, regs *[NumRegs]uint64)
}

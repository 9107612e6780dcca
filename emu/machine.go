package emu

import (
	"fmt"
	"math/bits"

	"github.com/patchtrace/patchtrace/internal/slice"
)

// Quirks are the per-run choices where real CPUs and hypervisors differ or
// the architecture leaves room. They are part of a run's identity and are
// recorded in its trace.
type Quirks struct {
	// NMIInSTIShadow lets an NMI be delivered in the one-instruction shadow
	// after an STI that set IF (Andy Lutomirski's solution 1 in mail 002
	// of docs/background.md: it differs between CPUs and hypervisors).
	NMIInSTIShadow bool
	// StaleFetch selects the stale cross-modifying-code model: a CPU
	// keeps executing its cached decode of changed bytes until it serializes
	// (SDM Vol. 3 §8.1.3). Off, fetch is always coherent with memory.
	// Scenario fetch = "stale" sets it, "torn" sets it and TornWrites.
	StaleFetch bool
	// TornWrites makes text_poke byte-granular: it stores one byte per
	// step and its CPU's quantum ends between any two bytes
	// (QuantumCut), so the decision source chooses which CPUs run between
	// any two bytes and a CPU can execute an instruction half-written (SDM
	// Vol. 3 §8.1.1 guarantees no more than the single-byte store atomic).
	// Stores by instructions stay whole.
	TornWrites bool
	// IBT turns on supervisor Indirect Branch Tracking (SDM Vol. 1
	// "Control-flow Enforcement Technology", IA32_S_CET.ENDBR_EN): after
	// an indirect near CALL or JMP, and after every delivery through the
	// vector table, the next instruction must be ENDBR64 or the CPU
	// raises #CP(ENDBRANCH) at it (cpu.ibtWait). Off, ENDBR64 is a NOP
	// and nothing is tracked.
	IBT bool
	// IBTNoTrack honours the NOTRACK prefix (3E) on an indirect CALL or
	// JMP (IA32_S_CET.NO_TRACK_EN): such a branch is not tracked. Without
	// it the prefix is ignored and every indirect branch is tracked.
	// Meaningless without IBT.
	IBTNoTrack bool
}

// StopReason says why a run ended.
type StopReason uint8

const (
	StopNone        StopReason = iota
	StopDone                   // every CPU finished (pt_cpu_done) and is idle
	StopBudget                 // the instruction or decision budget ran out (see Config)
	StopOops                   // an exception no handler claims, or a triple fault
	StopPanic                  // panic()
	StopHung                   // no CPU can make progress and not all are done
	StopDecisions              // a replayed decision log ran out (strict replay)
	StopError                  // the emulator cannot go on (see Result.Err)
	StopBug                    // pt_bug() (BUG())
	StopUnsupported            // a valid instruction the interpreter does not implement (see Result.Err)
)

// stopNames are the StopReasons' names, as traces record them
// (patchtrace.outcome) and the CLI prints them.
var stopNames = [...]string{
	StopNone:        "running",
	StopDone:        "done",
	StopBudget:      "budget",
	StopOops:        "oops",
	StopPanic:       "panic",
	StopHung:        "hung",
	StopDecisions:   "decisions-exhausted",
	StopError:       "error",
	StopBug:         "bug",
	StopUnsupported: "unsupported",
}

func (s StopReason) String() string {
	if int(s) < len(stopNames) && stopNames[s] != "" {
		return stopNames[s]
	}
	return fmt.Sprintf("StopReason(%d)", uint8(s))
}

// maskable vectors a CPU can have pending, as bits of cpuState.irqs (the
// APIC delivers the highest vector first).
var irqVectors = [...]Vector{VecReschedule, VecCallFunction, VecTimer}

func irqBit(v Vector) uint8 {
	for i, iv := range irqVectors {
		if iv == v {
			return 1 << i
		}
	}
	return 0
}

// cpuState is the machine-owned part of a CPU.
type cpuState struct {
	tlb       [tlbEntries]tlbEntry
	tlbVictim [tlbEntries]tlbEntry // each slot's last evicted entry (lookupSlow)
	tlbGen    uint64

	dc     [dcEntries]*decodePage // direct-mapped decode-page cache
	dmap   map[uint64]*decodePage // all decode pages of this CPU
	dlist  []*decodePage          // the same, as a list (serialize walks it)
	dcxGen uint64                 // Machine.xgen the dc array was filled under

	// attention is non-zero when the step loop must look at interrupts,
	// the STI shadow or HLT before the next instruction.
	attention bool
	nmiPend   bool
	irqs      uint8 // pending maskable vectors (irqVectors bits)
	shadow    bool  // in the STI or MOV SS shadow: the next instruction runs first
	ssShadow  bool  // the shadow is MOV SS's: NMIs and #DB are held too
	dbPend    bool  // a single-step #DB trap is pending
	nmiBlock  bool  // an NMI was delivered and no IRETQ has run since
	booted    bool  // executed STI once: NMIs are deliverable from then on
	halted    bool
	done      bool       // called pt_cpu_done
	poke      *pokeState // a byte-granular text_poke in progress (TornWrites)
	// ibt is Quirks.IBT (ibtOn) and IBTNoTrack (ibtNoTrack), copied here
	// so that an indirect branch reads it without the machine; ibtWait
	// is the supervisor IBT tracker in WAIT_FOR_ENDBRANCH: the next
	// instruction fetched must be ENDBR64 (steps checks it, as a fault
	// of fetching that instruction).
	ibt     uint8
	ibtWait bool
	// cet is Quirks.IBT: the CPU enumerates CET_IBT and has IA32_S_CET,
	// whose value is sCET (ibt.go: ENDBR_EN and NO_TRACK_EN mirror ibt;
	// TRACKER is ibtWait while ENDBR_EN is set).
	cet  bool
	sCET uint64

	task  uint32
	depth uint8

	injectedAt uint64 // RIP where a watch rule last fired (not re-counted until it executes)

	ev     Event // reused event record
	insnEv Event // reused record for insn events (only its insn fields are set)

	// While deferring (recording register deltas), the events of the
	// instruction or service being executed wait in pend[:npend], so that
	// its first row can carry the registers it changed (known only when
	// it is done); r0 and f0 are the registers before it. Slots hold
	// only load and write fields between uses (pendDirty: a deferred
	// event of another kind was copied in; flush clears the slots).
	deferring bool
	pendDirty bool
	npend     int
	pend      []Event
	r0        [16]uint64
	f0        uint64

	stats CPUStats
}

// CPUStats counts what one CPU did.
type CPUStats struct {
	Insns    uint64
	Traps    [256]uint64 // deliveries by vector
	Services [maxServices]uint64
}

func (c *CPU) updateAttention() {
	c.attention = c.nmiPend || c.irqs != 0 || c.shadow || c.halted || c.dbPend || c.poke != nil || c.ibtWait
}

// Machine is the emulated SMP machine: memory, CPUs, the loaded slice and
// the run's decision source. It is not safe for concurrent use; a run is
// single-threaded and deterministic.
type Machine struct {
	mem  *Memory
	cpus []*CPU
	sink Sink
	insn InsnSink // sink, when it is one
	cfg  Config

	img *Image

	natives map[uint64]ServiceID
	// decodes: the latest decode at each address, which any CPU fetching
	// the same bytes there takes (decodeAt)
	decodes map[uint64]sharedDecode
	watches map[uint64][]int // rip -> indexes into cfg.Inject
	hits    []uint64         // per inject rule: arrivals counted

	// What the sink gets besides the base events: a load event for every
	// data read, register deltas (Config.NoLoads, Config.NoRegs).
	loads, regs bool

	// per-CPU areas [percpuLo, percpuLo+percpuSpan) for declared-slot reads
	watchReads  bool
	percpuLo    uint64
	percpuSpan  uint64
	percpuSlots []bool // per byte of the per-CPU section: a declared slot
	percpuSize  uint64
	percpuStrd  uint64

	xgen uint64 // bumped when an executable mapping changes: decode caches re-resolve

	seq       uint64
	insns     uint64
	stop      StopReason
	stopMsg   string
	err       error
	modNext   uint64            // next module_alloc address
	modAllocs map[uint64]uint64 // live module_alloc allocations: address -> pages
	poker     *CPU              // the CPU whose byte-granular text_poke holds the alias
	cut       bool              // the last decision's quantum ended at a text_poke byte (QuantumCut)
	aliasTo   [3]uint64         // text page each text-poke alias page stands for (8 KiB span at most 3)
	decision  []Decision
	delivered uint64 // deliveries (exceptions, interrupts, NMIs), for the decision budget
	budget    Budget
	insnLimit uint64 // budget.MaxInsns, or no limit (^0) for 0
	src       DecisionSource
	boot      []bootWrite
	taskDepth map[uint32]uint8 // trap depth of each switched-out task
	bootMaps  []bootMapping
	memo      *decodeMemo // the Snapshot's, shared by its runs; processMemo otherwise
}

// Config describes one run.
type Config struct {
	CPUs   int
	Quirks Quirks
	// MaxInsns is the instruction budget; 0: DefaultMaxInsns. MaxDecisions
	// bounds decisions plus deliveries (a run whose every decision is an
	// interrupt retires no instruction); 0: DefaultMaxDecisions(MaxInsns).
	// NoBudget lifts both (the run may never end). See Budget.
	MaxInsns     uint64
	MaxDecisions uint64
	NoBudget     bool
	// Tasks are written into pt_boot_tasks before boot.
	Tasks []Task
	// Params are u64 values written to the named slice symbols before boot.
	Params []Param
	// Inject raises interrupts when a CPU reaches an address.
	Inject []InjectRule
	// PercpuSlots are per-CPU symbols whose loads are recorded as
	// percpu_read events when loads are not (NoLoads).
	PercpuSlots []string
	Sink        Sink
	// NoLoads: the sink gets no load events (then reads of PercpuSlots are
	// percpu_read events). NoRegs: events carry no register deltas.
	NoLoads, NoRegs bool
}

// Task is one task the slice's boot code creates.
type Task struct {
	ID    uint64
	CPU   int
	Entry string
	Arg   uint64
}

// Param is a named u64 written into the slice before boot.
type Param struct {
	Name  string
	Value uint64
}

// InjectRule raises Vector on CPU when CPU's RIP arrives at At (a
// "symbol+offset" expression) for the Hit-th time (0: every time).
type InjectRule struct {
	Vector Vector
	CPU    int
	At     string
	Hit    uint64

	addr uint64
}

// MaxCPUs is the largest machine.
const MaxCPUs = slice.MaxCPUs

// New builds a machine for img and cfg, loads the slice into every CPU's
// view and prepares boot state. It does not run anything.
func New(img *Image, cfg Config) (*Machine, error) {
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("emu: %d CPUs: must be 1..%d", cfg.CPUs, MaxCPUs)
	}
	m := &Machine{
		budget:  cfg.Budget(),
		mem:     newMemory(img.pagesHint(cfg.CPUs)),
		sink:    cfg.Sink,
		loads:   cfg.Sink != nil && !cfg.NoLoads,
		regs:    cfg.Sink != nil && !cfg.NoRegs,
		cfg:     cfg,
		img:     img,
		natives: make(map[uint64]ServiceID),
		decodes: make(map[uint64]sharedDecode),
		memo:    processMemo,
		watches: make(map[uint64][]int),
		modNext: moduleBase,
	}
	m.insn, _ = cfg.Sink.(InsnSink)
	m.insnLimit = m.budget.MaxInsns
	if m.insnLimit == 0 {
		m.insnLimit = ^uint64(0)
	}
	for i := 0; i < cfg.CPUs; i++ {
		c := &CPU{ID: i, m: m, SS: selKernelSS, DR6: dr6Init, DR7: dr7Init}
		c.dmap = make(map[uint64]*decodePage)
		c.ev.CPU = uint16(i)
		if cfg.Quirks.IBT {
			c.cet, c.sCET = true, sCETEndbrEn
			if cfg.Quirks.IBTNoTrack {
				c.sCET |= sCETNoTrackEn
			}
			c.setSCET(c.sCET)
		}
		m.cpus = append(m.cpus, c)
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// CPUs returns the number of CPUs.
func (m *Machine) CPUs() int { return len(m.cpus) }

// Image returns the loaded slice.
func (m *Machine) Image() *Image { return m.img }

// emit stamps e with the next sequence number and the CPU's context and
// hands it to the sink (while c defers, with the context only, into
// c.pend). Callers check m.sink != nil first.
func (m *Machine) emit(c *CPU, e *Event) {
	e.Task = c.task
	e.Depth = c.depth
	if c.deferring {
		if e.Kind != EvWrite && e.Kind != EvLoad {
			c.pendDirty = true
		}
		*c.slot() = *e
		return
	}
	e.Seq = m.seq
	m.seq++
	m.sink.Event(e)
}

// slot returns the next pending event slot of c.
func (c *CPU) slot() *Event {
	if c.npend == len(c.pend) {
		c.pend = append(c.pend, Event{})
	}
	e := &c.pend[c.npend]
	c.npend++
	return e
}

// memEvent returns the record of a load or write event: c's reused
// event, or while c defers the next pending slot (then the event is
// already where emitMem would put it). The caller sets every load and
// write field.
func (c *CPU) memEvent(kind EventKind) *Event {
	if !c.deferring {
		return c.event(kind)
	}
	e := c.slot()
	e.Kind, e.CPU, e.RIP, e.Task, e.Depth, e.RegMask = kind, uint16(c.ID), c.RIP, c.task, c.depth, 0
	return e
}

// emitMem emits an event from memEvent.
func (m *Machine) emitMem(c *CPU, e *Event) {
	if !c.deferring {
		m.emit(c, e)
	}
}

// beginDefer starts holding c's events, with the registers as they are.
func (c *CPU) beginDefer() {
	c.r0, c.f0 = c.R, c.RFLAGS
	c.deferring = true
}

// regDelta sets e's register deltas: the registers that differ from r0
// and f0 (what c.R and c.RFLAGS were), with their values now.
func (c *CPU) regDelta(e *Event) {
	// Which registers changed, without a branch per register (which
	// ones an instruction changes is hard to predict: a mispredicted
	// branch per instruction cost more than the compares), then the
	// values of those only.
	// (Unrolled: the loop's counter, index and variable shift were half
	// of its instructions.)
	r, o := &c.R, &c.r0
	hw := ne(r[0], o[0]) | ne(r[1], o[1])<<1 | ne(r[2], o[2])<<2 | ne(r[3], o[3])<<3 |
		ne(r[4], o[4])<<4 | ne(r[5], o[5])<<5 | ne(r[6], o[6])<<6 | ne(r[7], o[7])<<7 |
		ne(r[8], o[8])<<8 | ne(r[9], o[9])<<9 | ne(r[10], o[10])<<10 | ne(r[11], o[11])<<11 |
		ne(r[12], o[12])<<12 | ne(r[13], o[13])<<13 | ne(r[14], o[14])<<14 | ne(r[15], o[15])<<15
	var mask uint32
	for m := hw; m != 0; m &= m - 1 {
		i := bits.TrailingZeros32(m) & 15
		b := regBit[i]
		mask |= 1 << b
		e.Regs[b] = c.R[i]
	}
	if c.RFLAGS != c.f0 {
		mask |= 1 << RegFlags
		e.Regs[RegFlags] = c.RFLAGS
	}
	e.RegMask = mask
}

// ne is 1 if a != b, else 0 (no branch).
func ne(a, b uint64) uint32 { return uint32(b2u(a != b)) }

// regBit[i] is the Event.Regs index of CPU.R[i].
var regBit = func() (b [16]uint8) {
	for i, r := range RegIndex {
		b[r] = uint8(i)
	}
	return b
}()

// endDefer stops deferring: the first pending event gets the register
// deltas since beginDefer, and every pending event goes to the sink.
func (m *Machine) endDefer(c *CPU) {
	c.deferring = false
	if c.npend > 0 {
		c.regDelta(&c.pend[0])
	}
	m.flush(c)
}

// flush hands c's pending events to the sink in order.
func (m *Machine) flush(c *CPU) {
	for i := 0; i < c.npend; i++ {
		e := &c.pend[i]
		e.Seq = m.seq
		m.seq++
		m.sink.Event(e)
	}
	if c.pendDirty {
		clear(c.pend[:c.npend])
		c.pendDirty = false
	}
	c.npend = 0
}

// resetEvent clears the per-kind fields of c's reused event.
func (c *CPU) event(kind EventKind) *Event {
	e := &c.ev
	*e = Event{Kind: kind, CPU: uint16(c.ID), RIP: c.RIP}
	return e
}

func (m *Machine) emitWrite(c *CPU, p *page, addr uint64, size int, old, v uint64) {
	e := c.memEvent(EvWrite)
	e.Addr = addr
	e.Size = uint32(size)
	e.Old, e.New = old, v
	e.Alias, e.AliasAddr = false, 0
	if p.alias {
		e.Alias = true
		e.AliasAddr = addr
		e.Addr = m.aliasTarget(addr)
	}
	m.tagPercpu(e, e.Addr)
	m.emitMem(c, e)
}

// emitLoad records a data read of size bytes at addr that returned v.
func (m *Machine) emitLoad(c *CPU, addr uint64, size int, v uint64) {
	e := c.memEvent(EvLoad)
	e.Addr = addr
	e.Size = uint32(size)
	e.Old, e.New = 0, v
	e.Alias, e.AliasAddr = false, 0
	m.tagPercpu(e, addr)
	m.emitMem(c, e)
}

// tagPercpu sets e's per-CPU fields for addr (clears them when addr is in
// no CPU's per-CPU area).
func (m *Machine) tagPercpu(e *Event, addr uint64) {
	e.Percpu, e.PercpuCPU, e.PercpuOff = false, 0, 0
	if m.percpuStrd == 0 || addr < percpuBase {
		return
	}
	off := addr - percpuBase
	cpu := off / m.percpuStrd
	in := off % m.percpuStrd
	if cpu < uint64(len(m.cpus)) && in < m.percpuSize {
		e.Percpu = true
		e.PercpuCPU = uint16(cpu)
		e.PercpuOff = uint32(in)
	}
}

func (m *Machine) percpuRead(c *CPU, addr uint64, size int) {
	off := (addr - percpuBase) % m.percpuStrd
	if off >= m.percpuSize || !m.percpuSlots[off] || m.sink == nil {
		return
	}
	// Re-read the value without events (read() is mid-flight).
	var buf [8]byte
	m.mem.peek(addr, buf[:size])
	e := c.event(EvPercpuRead)
	e.Addr = addr
	e.Size = uint32(size)
	e.New = loadLE(buf[:], size)
	m.tagPercpu(e, addr)
	m.emit(c, e)
}

// raise makes v pending on c (an interrupt, IPI or NMI).
func (m *Machine) raise(c *CPU, v Vector, from *CPU) {
	if v == VecNMI {
		c.nmiPend = true
	} else {
		c.irqs |= irqBit(v)
	}
	c.updateAttention()
	if m.sink != nil {
		src := from
		if src == nil {
			src = c
		}
		e := src.event(EvInject)
		e.Vector = v
		e.Addr = uint64(c.ID)
		m.emit(src, e)
	}
}

// InjectFired reports, per injection rule (Config.Inject order), whether
// it raised its interrupt: its address was reached on its CPU at least
// once, or at least Hit times for a rule with Hit set.
func (m *Machine) InjectFired() []bool {
	out := make([]bool, len(m.cfg.Inject))
	for i, r := range m.cfg.Inject {
		out[i] = m.hits[i] > 0 && m.hits[i] >= r.Hit
	}
	return out
}

// Stopped reports why the run stopped (StopNone while it runs).
func (m *Machine) Stopped() (StopReason, string) { return m.stop, m.stopMsg }

func (m *Machine) halt(r StopReason, msg string) {
	if m.stop == StopNone {
		m.stop, m.stopMsg = r, msg
	}
}

package emu

import (
	"fmt"
	"slices"
)

// DecisionKind says what a scheduling decision does.
type DecisionKind uint8

const (
	// DecStep runs CPU for up to N steps: fewer when it halts with nothing
	// to take, the machine stops, or (torn fetch) it stores a text_poke
	// byte with more to come (Machine.QuantumCut).
	DecStep DecisionKind = 1
	DecIRQ  DecisionKind = 2 // raise maskable vector V on CPU
	DecNMI  DecisionKind = 3 // raise an NMI on CPU
)

// Decision is one choice of the scheduler. A run is fully determined by its
// scenario and its decision sequence.
type Decision struct {
	Kind   DecisionKind
	CPU    uint16
	N      uint32 // steps, for DecStep
	Vector Vector // for DecIRQ
}

func (d Decision) String() string {
	switch d.Kind {
	case DecStep:
		return fmt.Sprintf("step cpu%d %d", d.CPU, d.N)
	case DecIRQ:
		return fmt.Sprintf("irq cpu%d %s", d.CPU, d.Vector.Name())
	case DecNMI:
		return fmt.Sprintf("nmi cpu%d", d.CPU)
	}
	return "decision?"
}

// DecisionSource supplies decisions. Next sees the machine so that a source
// can choose among runnable CPUs; ok=false ends the run.
type DecisionSource interface {
	Next(m *Machine) (d Decision, ok bool)
}

// Schedule parameterises the random source.
type Schedule struct {
	QuantumMin, QuantumMax uint32  // steps per decision (uniform, inclusive)
	TimerRate              float64 // chance per decision of a timer IRQ on a random CPU
	NMIRate                float64 // chance per decision of an NMI on a random CPU
}

// Rand is a small deterministic generator (SplitMix64; Steele, Lea, Flood,
// OOPSLA 2014) whose output never changes across Go versions.
type Rand struct{ s uint64 }

// NewRand seeds a generator.
func NewRand(seed uint64) *Rand { return &Rand{s: seed} }

// Uint64 returns the next value.
func (r *Rand) Uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Intn returns a value in [0, n): the next value modulo n. A power of two
// (a quantum span of 64, 4 runnable CPUs) takes the low bits, the same
// value without the division.
func (r *Rand) Intn(n int) int {
	u, x := uint64(n), r.Uint64()
	if u&(u-1) == 0 && u != 0 {
		return int(x & (u - 1))
	}
	return int(x % u)
}

// Float returns a value in [0, 1).
func (r *Rand) Float() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// RandomSource chooses decisions from a seed.
type RandomSource struct {
	Sched Schedule
	rnd   *Rand
	run   [MaxCPUs]uint16 // scratch: runnable CPUs
}

// NewRandomSource returns a seeded source.
func NewRandomSource(seed uint64, s Schedule) *RandomSource {
	if s.QuantumMin == 0 {
		s.QuantumMin = 1
	}
	if s.QuantumMax < s.QuantumMin {
		s.QuantumMax = s.QuantumMin
	}
	return &RandomSource{Sched: s, rnd: NewRand(seed)}
}

// Next implements DecisionSource.
func (r *RandomSource) Next(m *Machine) (Decision, bool) {
	if r.Sched.TimerRate > 0 && r.rnd.Float() < r.Sched.TimerRate {
		return Decision{Kind: DecIRQ, CPU: uint16(r.rnd.Intn(len(m.cpus))), Vector: VecTimer}, true
	}
	if r.Sched.NMIRate > 0 && r.rnd.Float() < r.Sched.NMIRate {
		return Decision{Kind: DecNMI, CPU: uint16(r.rnd.Intn(len(m.cpus)))}, true
	}
	// The runnable CPUs, in ID order, without appending to a slice.
	k := 0
	for _, c := range m.cpus {
		if c.runnable() {
			r.run[k&(MaxCPUs-1)] = uint16(c.ID)
			k++
		}
	}
	if k == 0 {
		return Decision{}, false
	}
	cpu := r.run[r.rnd.Intn(k)&(MaxCPUs-1)]
	span := r.Sched.QuantumMax - r.Sched.QuantumMin + 1
	n := r.Sched.QuantumMin + uint32(r.rnd.Intn(int(span)))
	return Decision{Kind: DecStep, CPU: cpu, N: n}, true
}

// LogSource replays a recorded decision log. When the log runs out it hands
// over to Then (if set) or ends the run.
type LogSource struct {
	Log  []Decision
	Then DecisionSource
	i    int
}

// LogReplayer is a DecisionSource that can say it replays a decision log
// (a LogSource, or a source wrapping one): when it runs out while some CPU
// could still run, the run ends with StopDecisions (the log ended), not
// StopHung; when none could, it ends StopHung as under any source.
type LogReplayer interface {
	ReplaysLog() bool
}

// ReplaysLog implements LogReplayer.
func (l *LogSource) ReplaysLog() bool { return true }

// Next implements DecisionSource.
func (l *LogSource) Next(m *Machine) (Decision, bool) {
	if l.i < len(l.Log) {
		d := l.Log[l.i]
		l.i++
		return d, true
	}
	if l.Then != nil {
		return l.Then.Next(m)
	}
	return Decision{}, false
}

// Budget defaults: every run is bounded unless Config.NoBudget says
// otherwise (RATIONALE.md, resource limits).
const (
	// DefaultMaxInsns is the instruction budget of a run whose scenario and
	// options set none: five times the longest built-in workload
	// (bench-fentry, 20.5M instructions).
	DefaultMaxInsns = 100_000_000
	// decisionSlack is added to the decision budget so that tiny
	// instruction budgets still leave room for interrupt decisions.
	decisionSlack = 1 << 16
)

// DefaultMaxDecisions is the decision budget (decisions plus deliveries)
// that goes with an instruction budget of maxInsns: a run that makes
// progress takes at most one step decision per instruction and delivers
// at most one event per instruction or interrupt decision, so twice the
// instruction budget plus a slack is reached only by a run whose decisions
// are mostly interrupts (timer_rate or nmi_rate near 1) that retire no
// instruction.
func DefaultMaxDecisions(maxInsns uint64) uint64 {
	if maxInsns > (1<<63)-decisionSlack {
		return 1<<64 - 1
	}
	return 2*maxInsns + decisionSlack
}

// Budget is a run's effective bounds: zero fields are unbounded (only with
// Config.NoBudget).
type Budget struct {
	MaxInsns     uint64
	MaxDecisions uint64
}

// Budget returns the effective budget of c: its fields, with the defaults
// filled in, or none at all with NoBudget.
func (c Config) Budget() Budget {
	if c.NoBudget {
		return Budget{}
	}
	b := Budget{MaxInsns: c.MaxInsns, MaxDecisions: c.MaxDecisions}
	if b.MaxInsns == 0 {
		b.MaxInsns = DefaultMaxInsns
	}
	if b.MaxDecisions == 0 {
		b.MaxDecisions = DefaultMaxDecisions(b.MaxInsns)
	}
	return b
}

// decisionBudgetOut stops the run when its decisions plus deliveries reach
// the decision budget.
func (m *Machine) decisionBudgetOut() bool {
	if m.budget.MaxDecisions != 0 && uint64(len(m.decision))+m.delivered >= m.budget.MaxDecisions {
		m.halt(StopBudget, fmt.Sprintf("decision budget exhausted: %d decisions and %d deliveries (limit %d)", len(m.decision), m.delivered, m.budget.MaxDecisions))
		return true
	}
	return false
}

// Result summarises a finished run.
type Result struct {
	Stop      StopReason
	Msg       string
	Err       error // set for StopError and StopUnsupported
	Insns     uint64
	Events    uint64
	Decisions []Decision
	CPUs      []CPUStats
}

// Run executes decisions from src until the run stops. The decisions taken
// are returned in Result.Decisions; feeding them back through a LogSource
// reproduces the run exactly.
func (m *Machine) Run(src DecisionSource) Result {
	m.src = src
	if m.seq == 0 && m.insns == 0 {
		if m.sink != nil {
			m.emitBoot()
		}
		for _, c := range m.cpus {
			c.serialize(SerStart)
		}
	}
	for m.stop == StopNone {
		if m.allDone() {
			m.halt(StopDone, "all CPUs finished")
			break
		}
		if m.decisionBudgetOut() {
			break
		}
		d, ok := src.Next(m)
		if !ok {
			// A log that runs out where no CPU can run has not cut the
			// run short: it hung there, as it did when recorded.
			if r, isLog := src.(LogReplayer); isLog && r.ReplaysLog() && m.anyRunnable() {
				m.halt(StopDecisions, "decision log exhausted")
			} else {
				m.halt(StopHung, m.hungMessage())
			}
			break
		}
		if int(d.CPU) >= len(m.cpus) {
			m.fail(fmt.Errorf("decision %d (%v): no CPU %d", len(m.decision), d, d.CPU))
			break
		}
		if len(m.decision) == cap(m.decision) {
			m.growDecisions()
		}
		m.decision = append(m.decision, d)
		c := m.cpus[d.CPU]
		m.cut = false
		switch d.Kind {
		case DecStep:
			m.runCPU(c, int(d.N))
		case DecIRQ:
			if irqBit(d.Vector) == 0 {
				m.fail(fmt.Errorf("decision %d: vector %s is not a maskable vector the machine raises", len(m.decision)-1, d.Vector.Name()))
				break
			}
			m.raise(c, d.Vector, nil)
		case DecNMI:
			m.raise(c, VecNMI, nil)
		default:
			m.fail(fmt.Errorf("decision %d: unknown kind %d", len(m.decision)-1, d.Kind))
		}
	}
	res := Result{Stop: m.stop, Msg: m.stopMsg, Err: m.err, Insns: m.insns, Events: m.seq, Decisions: m.decision}
	for _, c := range m.cpus {
		res.CPUs = append(res.CPUs, c.stats)
	}
	return res
}

// growDecisions doubles the decision log's capacity. append grows a large
// slice by a quarter at a time: a text-poke-bp run's 29k decisions (350
// kB) allocated 1.4 MB on the way and copied most of it, three quarters
// of what a run allocated.
// (slices.Grow zeroes only the new part, where make and copy would clear
// the whole array first.)
func (m *Machine) growDecisions() {
	m.decision = slices.Grow(m.decision, max(cap(m.decision), 1024))
}

// anyRunnable reports whether some CPU could take a step (the seeded
// sources end a run, hung, when none can).
func (m *Machine) anyRunnable() bool {
	for _, c := range m.cpus {
		if c.runnable() {
			return true
		}
	}
	return false
}

// allDone reports whether every CPU called pt_cpu_done and is idle with
// nothing it could take.
func (m *Machine) allDone() bool {
	for _, c := range m.cpus {
		if !c.done || !c.halted || c.runnable() {
			return false
		}
	}
	return true
}

func (m *Machine) hungMessage() string {
	msg := "no CPU can make progress:"
	for _, c := range m.cpus {
		state := "running"
		switch {
		case c.halted && c.RFLAGS&FlagIF == 0:
			state = "halted with interrupts off"
		case c.halted:
			state = "halted"
		}
		if c.done {
			state += ", done"
		}
		msg += fmt.Sprintf(" cpu%d %s at %s;", c.ID, state, m.img.Describe(c.RIP))
	}
	return msg
}

// Budget returns the run's effective budget.
func (m *Machine) Budget() Budget { return m.budget }

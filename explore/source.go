package explore

import (
	"math"
	"slices"

	"github.com/patchtrace/patchtrace/emu"
)

// Inject says which asynchronous events a strategy may inject.
type Inject uint8

const (
	InjectNMI   Inject = 1 << iota // NMIs (emu.DecNMI)
	InjectTimer                    // local timer interrupts (emu.DecIRQ, vector LOCAL_TIMER_VECTOR)
)

// kinds lists the decisions an Inject allows, in the canonical order
// (NMI before timer) the bounded strategy numbers alternatives by.
func (in Inject) kinds() []emu.Decision {
	var ks []emu.Decision
	if in&InjectNMI != 0 {
		ks = append(ks, emu.Decision{Kind: emu.DecNMI})
	}
	if in&InjectTimer != 0 {
		ks = append(ks, emu.Decision{Kind: emu.DecIRQ, Vector: emu.VecTimer})
	}
	return ks
}

func (in Inject) String() string {
	switch in {
	case 0:
		return "none"
	case InjectNMI:
		return "nmi"
	case InjectTimer:
		return "timer"
	}
	return "nmi,timer"
}

// seedFor derives schedule i's seed from the base seed (SplitMix64 of
// their mix: neighbouring indexes give unrelated streams).
func seedFor(base uint64, i int64) uint64 {
	return emu.NewRand(base ^ uint64(i)*0xd1342543de82ef95).Uint64()
}

// geometric returns a gap (in steps, >= 1) to the next event of a Poisson
// process with the given rate per step.
func geometric(r *emu.Rand, rate float64) uint64 {
	u := r.Float()
	if u <= 0 {
		u = 1e-12
	}
	g := math.Ceil(-math.Log(u) / rate)
	if g < 1 || math.IsNaN(g) {
		return 1
	}
	if g > 1<<40 {
		return 1 << 40
	}
	return uint64(g)
}

// ---- random (swarm) ----

// SwarmConfig is one random schedule's shape. Each schedule draws its own
// (swarm testing: Groce et al., ISSTA 2012), so that a budget covers
// fine- and coarse-grained interleavings, lopsided CPU speeds and both
// quiet and NMI-heavy runs rather than one average.
type SwarmConfig struct {
	QMin, QMax uint32   // steps per decision, uniform in [QMin, QMax]
	NMIRate    float64  // expected NMIs per step, machine-wide (0: none)
	TimerRate  float64  // expected timer interrupts per step, machine-wide
	Weights    []uint32 // per CPU: relative chance to be picked when runnable
}

// The swarm's menus (documented in doc.go).
var (
	swarmQMax    = []uint32{1, 4, 16, 64, 256}
	swarmRates   = []float64{0, 1.0 / 4096, 1.0 / 1024, 1.0 / 256}
	swarmWeights = []uint32{1, 2, 8, 32}
)

// drawSwarm draws schedule i's shape; fixed fields of base (non-zero QMax,
// non-negative rates) are kept.
func drawSwarm(r *emu.Rand, cpus int, base SwarmConfig, in Inject, needClock bool) SwarmConfig {
	c := SwarmConfig{QMin: base.QMin, QMax: base.QMax, NMIRate: base.NMIRate, TimerRate: base.TimerRate}
	if c.QMax == 0 {
		c.QMin, c.QMax = 1, swarmQMax[r.Intn(len(swarmQMax))]
	}
	if c.QMin == 0 {
		c.QMin = 1
	}
	if c.NMIRate < 0 {
		c.NMIRate = swarmRates[r.Intn(len(swarmRates))]
	}
	if c.TimerRate < 0 {
		rates := swarmRates
		if needClock {
			rates = rates[1:] // the scenario's tasks take turns on timer interrupts
		}
		c.TimerRate = rates[r.Intn(len(rates))]
	}
	if in&InjectNMI == 0 {
		c.NMIRate = 0
	}
	if in&InjectTimer == 0 {
		c.TimerRate = 0
	}
	c.Weights = make([]uint32, cpus)
	for i := range c.Weights {
		c.Weights[i] = swarmWeights[r.Intn(len(swarmWeights))]
	}
	return c
}

// randomSource picks a runnable CPU by weight and a quantum uniformly, and
// injects NMIs and timer interrupts on random CPUs at Poisson-distributed
// step counts.
type randomSource struct {
	cfg            SwarmConfig
	rnd            *emu.Rand
	steps          uint64 // steps scheduled so far
	nextNMI, nextT uint64 // step counts of the next injections
	run            []int
}

func newRandomSource(seed uint64, cfg SwarmConfig) *randomSource {
	s := &randomSource{cfg: cfg, rnd: emu.NewRand(seed), nextNMI: math.MaxUint64, nextT: math.MaxUint64}
	if cfg.NMIRate > 0 {
		s.nextNMI = geometric(s.rnd, cfg.NMIRate)
	}
	if cfg.TimerRate > 0 {
		s.nextT = geometric(s.rnd, cfg.TimerRate)
	}
	return s
}

func (s *randomSource) Next(m *emu.Machine) (emu.Decision, bool) {
	n := m.CPUs()
	if s.steps >= s.nextNMI {
		s.nextNMI = s.steps + geometric(s.rnd, s.cfg.NMIRate)
		return emu.Decision{Kind: emu.DecNMI, CPU: uint16(s.rnd.Intn(n))}, true
	}
	if s.steps >= s.nextT {
		s.nextT = s.steps + geometric(s.rnd, s.cfg.TimerRate)
		return emu.Decision{Kind: emu.DecIRQ, CPU: uint16(s.rnd.Intn(n)), Vector: emu.VecTimer}, true
	}
	s.run = s.run[:0]
	total := uint64(0)
	for c := 0; c < n; c++ {
		if m.Runnable(c) {
			s.run = append(s.run, c)
			total += uint64(s.cfg.Weights[c])
		}
	}
	if len(s.run) == 0 {
		return emu.Decision{}, false
	}
	pick := s.rnd.Uint64() % total
	cpu := s.run[len(s.run)-1]
	for _, c := range s.run {
		w := uint64(s.cfg.Weights[c])
		if pick < w {
			cpu = c
			break
		}
		pick -= w
	}
	q := s.cfg.QMin + uint32(s.rnd.Intn(int(s.cfg.QMax-s.cfg.QMin+1)))
	s.steps += uint64(q)
	return emu.Decision{Kind: emu.DecStep, CPU: uint16(cpu), N: q}, true
}

// ---- PCT ----

// PCTConfig is one PCT schedule: CPU priorities, priority change points
// and injection points, counted in synchronisation events (see tap).
type PCTConfig struct {
	Quantum uint32     // steps per decision
	FairAt  uint64     // scheduled steps after which the schedule is round robin (0: never)
	Prio    []int      // per CPU; higher runs first
	Changes []uint64   // sorted: the d-1 change points, as sync-event counts
	Injects []injectAt // sorted by At
}

type injectAt struct {
	At uint64 // sync-event count
	D  emu.Decision
}

// drawPCT draws a PCT schedule (Burckhardt et al., ASPLOS 2010): random
// distinct priorities d..d+n-1, d-1 change points uniform over [1, k]
// sync events, and m injections on random CPUs after uniform sync events
// in [0, k).
func drawPCT(r *emu.Rand, cpus int, depth int, k uint64, q uint32, injects int, in Inject) PCTConfig {
	if depth < 1 {
		depth = 1
	}
	if k < 1 {
		k = 1
	}
	c := PCTConfig{Quantum: q, Prio: make([]int, cpus)}
	perm := make([]int, cpus)
	for i := range perm {
		perm[i] = i
	}
	for i := cpus - 1; i > 0; i-- { // Fisher-Yates
		j := r.Intn(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i, p := range perm {
		c.Prio[i] = depth + p
	}
	for i := 0; i < depth-1; i++ {
		c.Changes = append(c.Changes, 1+r.Uint64()%k)
	}
	slices.Sort(c.Changes)
	kinds := in.kinds()
	if len(kinds) > 0 {
		for i := 0; i < injects; i++ {
			d := kinds[r.Intn(len(kinds))]
			d.CPU = uint16(r.Intn(cpus))
			c.Injects = append(c.Injects, injectAt{At: r.Uint64() % k, D: d})
		}
		slices.SortStableFunc(c.Injects, func(a, b injectAt) int {
			switch {
			case a.At < b.At:
				return -1
			case a.At > b.At:
				return 1
			}
			return 0
		})
	}
	return c
}

// pctSource runs the highest-priority runnable CPU for a quantum. Once the
// sync-event count reaches the i-th change point, the CPU that ran last
// (with quantum 1: the one whose event it was) drops to priority i, below
// every initial priority. Spin-waits are yields (after CHESS's fairness
// rule): a CPU that executed PAUSE in its last quantum is passed over for
// the next spinYield steps, or until every runnable CPU is being passed
// over, so that a spinning high-priority CPU cannot starve the CPU it
// waits for, and still gets to see the condition it waits for change.
type pctSource struct {
	cfg       PCTConfig
	prio      []int
	ci, ii    int
	last      int
	steps     uint64
	skipUntil []uint64
	t         *tap
	tick      ticker
	pend      []emu.Decision
}

// spinYield is how many steps of other CPUs a spinning CPU waits for.
const spinYield = 64

func newPCTSource(cfg PCTConfig, tick uint64) *pctSource {
	return &pctSource{cfg: cfg, prio: slices.Clone(cfg.Prio), last: -1, skipUntil: make([]uint64, len(cfg.Prio)), tick: ticker{every: tick}}
}

func (s *pctSource) useTap(t *tap) { s.t = t }

func (s *pctSource) Next(m *emu.Machine) (emu.Decision, bool) {
	if len(s.pend) > 0 {
		d := s.pend[0]
		s.pend = s.pend[1:]
		return d, true
	}
	if s.cfg.FairAt != 0 && s.steps >= s.cfg.FairAt {
		return s.fair(m)
	}
	syncs := s.t.syncs
	if s.ii < len(s.cfg.Injects) && s.cfg.Injects[s.ii].At <= syncs {
		d := s.cfg.Injects[s.ii].D
		s.ii++
		return d, true
	}
	for s.ci < len(s.cfg.Changes) && s.cfg.Changes[s.ci] <= syncs {
		if s.last >= 0 {
			s.prio[s.last] = s.ci + 1
		}
		s.ci++
	}
	if s.last >= 0 && s.t.takePaused(s.last) {
		s.skipUntil[s.last] = s.steps + spinYield
	}
	best, bestAny := -1, -1
	for c := 0; c < m.CPUs(); c++ {
		if !m.Runnable(c) {
			continue
		}
		if bestAny < 0 || s.prio[c] > s.prio[bestAny] {
			bestAny = c
		}
		if s.skipUntil[c] <= s.steps && (best < 0 || s.prio[c] > s.prio[best]) {
			best = c
		}
	}
	if best < 0 {
		best = bestAny
	}
	if best < 0 {
		return emu.Decision{}, false
	}
	s.last = best
	s.steps += uint64(s.cfg.Quantum)
	d := emu.Decision{Kind: emu.DecStep, CPU: uint16(best), N: s.cfg.Quantum}
	if s.tick.due(best, s.cfg.Quantum) {
		s.pend = append(s.pend, d)
		return emu.Decision{Kind: emu.DecIRQ, CPU: uint16(best), Vector: emu.VecTimer}, true
	}
	return d, true
}

// fair is round robin: past FairAt, a CPU whose loop waits on a CPU of
// lower priority without spinning (a caller looping until the patcher is
// done) would otherwise keep the machine until its instruction budget.
func (s *pctSource) fair(m *emu.Machine) (emu.Decision, bool) {
	c := rrNext(m, (s.last+1)%m.CPUs())
	if c < 0 {
		return emu.Decision{}, false
	}
	s.last = c
	s.steps += uint64(s.cfg.Quantum)
	d := emu.Decision{Kind: emu.DecStep, CPU: uint16(c), N: s.cfg.Quantum}
	if s.tick.due(c, s.cfg.Quantum) {
		s.pend = append(s.pend, d)
		return emu.Decision{Kind: emu.DecIRQ, CPU: uint16(c), Vector: emu.VecTimer}, true
	}
	return d, true
}

// ---- round robin (the bounded strategy's default schedule, PCT's
// calibration) ----

// rrNext returns the first runnable CPU at or after from, cyclically, or
// -1.
func rrNext(m *emu.Machine, from int) int {
	n := m.CPUs()
	for i := 0; i < n; i++ {
		c := (from + i) % n
		if m.Runnable(c) {
			return c
		}
	}
	return -1
}

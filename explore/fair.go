package explore

import "github.com/patchtrace/patchtrace/emu"

// fairQuantum is the fair tail's round-robin quantum, the bounded
// strategy's default one.
const fairQuantum = 64

// fairTail runs a strategy's (adversarial, possibly unfair) source until
// the machine has retired `at` instructions, then round robin over the
// runnable CPUs, fairQuantum steps each, with the default schedule's clock
// and no injections, until the run ends (see doc.go, "Fairness"). On
// hardware no CPU is starved forever: a run that does not finish while
// one CPU is starved is a livelock only if it still does not finish once
// every CPU runs. The tail's decisions are ordinary decisions of the run's
// log, so a replay of the log (minimisation, the written trace) reruns
// them exactly.
type fairTail struct {
	src  emu.DecisionSource
	at   uint64
	from int // decisions before the tail (-1: not reached)
	n    int // decisions handed out
	last int
	pend []emu.Decision
	tick ticker
}

func newFairTail(src emu.DecisionSource, at, tick uint64) *fairTail {
	return &fairTail{src: src, at: at, from: -1, last: -1, tick: ticker{every: tick}}
}

func (f *fairTail) Next(m *emu.Machine) (emu.Decision, bool) {
	d, ok := f.next(m)
	if ok {
		f.n++
	}
	return d, ok
}

func (f *fairTail) next(m *emu.Machine) (emu.Decision, bool) {
	if f.from < 0 && m.Insns() >= f.at {
		f.from = f.n
	}
	if f.from < 0 {
		return f.src.Next(m)
	}
	if len(f.pend) > 0 {
		d := f.pend[0]
		f.pend = f.pend[1:]
		return d, true
	}
	c := rrNext(m, (f.last+1)%m.CPUs())
	if c < 0 {
		return emu.Decision{}, false
	}
	f.last = c
	d := emu.Decision{Kind: emu.DecStep, CPU: uint16(c), N: fairQuantum}
	if f.tick.due(c, fairQuantum) {
		f.pend = append(f.pend, d)
		return emu.Decision{Kind: emu.DecIRQ, CPU: uint16(c), Vector: emu.VecTimer}, true
	}
	return d, true
}

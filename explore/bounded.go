package explore

import (
	"fmt"
	"strings"

	"github.com/patchtrace/patchtrace/emu"
)

// Deviation replaces the default decision at choice point Index by
// alternative Alt (see doc.go for the numbering).
type Deviation struct {
	Index int
	Alt   int
}

// boundedSource follows the default schedule — round robin over runnable
// CPUs, Quantum steps each — except at the choice points its deviations
// name. It records how many alternatives each choice point at or after
// expandFrom offered, so the search can enumerate the next deviation.
type boundedSource struct {
	q      uint32
	kinds  []emu.Decision
	devs   []Deviation
	di     int
	choice int
	next   int
	pend   []emu.Decision // decisions of the current choice point still to hand out
	tick   ticker

	expandFrom int
	alts       []int // alts[i-expandFrom]: alternatives at choice point i
	switches   []int
	applied    []string // the deviations as taken, for reports
}

func newBoundedSource(q uint32, in Inject, devs []Deviation, tick uint64) *boundedSource {
	s := &boundedSource{q: q, kinds: in.kinds(), devs: devs, tick: ticker{every: tick}}
	if len(devs) > 0 {
		s.expandFrom = devs[len(devs)-1].Index + 1
	}
	return s
}

// step runs c for a quantum, after its clock tick if one is due.
func (s *boundedSource) step(c int) (emu.Decision, bool) {
	s.next = c + 1
	d := emu.Decision{Kind: emu.DecStep, CPU: uint16(c), N: s.q}
	if s.tick.due(c, s.q) {
		s.pend = append(s.pend, d)
		return emu.Decision{Kind: emu.DecIRQ, CPU: uint16(c), Vector: emu.VecTimer}, true
	}
	return d, true
}

func (s *boundedSource) Next(m *emu.Machine) (emu.Decision, bool) {
	if len(s.pend) > 0 {
		d := s.pend[0]
		s.pend = s.pend[1:]
		return d, true
	}
	n := m.CPUs()
	def := rrNext(m, s.next%n)
	if def < 0 {
		return emu.Decision{}, false
	}
	i := s.choice
	s.choice++
	s.switches = s.switches[:0]
	for c := 0; c < n; c++ {
		if c != def && m.Runnable(c) {
			s.switches = append(s.switches, c)
		}
	}
	if i >= s.expandFrom {
		s.alts = append(s.alts, len(s.switches)+len(s.kinds)*n)
	}
	if s.di < len(s.devs) && s.devs[s.di].Index == i {
		a := s.devs[s.di].Alt
		s.di++
		if a < len(s.switches) {
			s.applied = append(s.applied, fmt.Sprintf("@%d cpu%d for cpu%d", i, s.switches[a], def))
			return s.step(s.switches[a])
		}
		a -= len(s.switches)
		if a/n < len(s.kinds) {
			d := s.kinds[a/n]
			d.CPU = uint16(a % n)
			s.applied = append(s.applied, fmt.Sprintf("@%d %v", i, d))
			st, _ := s.step(def)
			s.pend = append([]emu.Decision{st}, s.pend...)
			return d, true
		}
		s.applied = append(s.applied, fmt.Sprintf("@%d alternative %d does not exist", i, s.devs[s.di-1].Alt))
	}
	return s.step(def)
}

// ticker is the default schedules' clock: a timer interrupt on a CPU
// before every `every` steps of its own (every == 0: none).
type ticker struct {
	every uint64
	own   [emu.MaxCPUs]uint64
}

// due counts n steps for cpu and reports whether a tick comes first.
func (t *ticker) due(cpu int, n uint32) bool {
	if t.every == 0 {
		return false
	}
	t.own[cpu] += uint64(n)
	if t.own[cpu] >= t.every {
		t.own[cpu] -= t.every
		return true
	}
	return false
}

// desc describes the schedule: its deviations as taken.
func (s *boundedSource) desc() string {
	if len(s.applied) == 0 {
		return "default schedule"
	}
	return strings.Join(s.applied, ", ")
}

package emu

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Snapshot is a machine set up and not yet run (the slice loaded, per-CPU
// areas, boot stacks, params and tasks written), from which any number of
// runs start without setting up again, concurrently if need be. A run
// from a Snapshot shares its memory copy on write: every mapped page
// starts on the snapshot's frame, read-only, and gets a copy of its own at
// its first store (page.own), so a run costs the pages it stores to, and
// what one run stores no other run sees. Executable pages are copied when
// the run starts, so decode caches only ever hold frames that stay with
// their page (see "Cross-modifying code" in RATIONALE.md). The runs share
// the instructions they decode (decodeMemo). Exploration starts every
// schedule from one (explore.Machine).
type Snapshot struct {
	m    *Machine // the machine it was taken of: never run, never written again
	memo *decodeMemo
}

// Snapshot turns m, which must not have run, into a Snapshot. m must not
// be used afterwards: its frames are the snapshot's.
func (m *Machine) Snapshot() (*Snapshot, error) {
	if m.seq != 0 || m.insns != 0 || m.stop != StopNone || m.src != nil || len(m.decision) != 0 {
		return nil, errors.New("emu: snapshot of a machine that has run")
	}
	for _, p := range m.mem.pages {
		if p.alias {
			// No alias exists before the first instruction; one would
			// share its frame with its text page, which the copy on
			// write below does not follow.
			return nil, fmt.Errorf("emu: snapshot with a text-poke alias mapped at %#x", p.vpn<<pageShift)
		}
	}
	return &Snapshot{m: m, memo: &decodeMemo{}}, nil
}

// Machine returns a new machine in the state the snapshot holds, its
// events going to sink, as if New had just built it with sink in its
// Config: the same run follows for the same decisions, event for event.
// Whether there is a sink decides which events a machine makes (see
// Config.NoLoads), so sink must be nil exactly when the snapshot's
// machine had none.
func (s *Snapshot) Machine(sink Sink) (*Machine, error) {
	t := s.m
	if (sink == nil) != (t.sink == nil) {
		return nil, errors.New("emu: a snapshot's runs have a sink exactly when its machine had one")
	}
	m := new(Machine)
	*m = *t
	m.sink = sink
	m.insn, _ = sink.(InsnSink)
	m.cfg.Sink = sink
	m.cfg.Inject = slices.Clone(t.cfg.Inject)
	m.hits = slices.Clone(t.hits)
	m.decision = nil
	if t.taskDepth != nil {
		m.taskDepth = maps.Clone(t.taskDepth)
	}
	m.mem = t.mem.cowClone()
	m.memo = s.memo
	m.decodes = make(map[uint64]sharedDecode)
	cs := make([]CPU, len(t.cpus))
	m.cpus = make([]*CPU, len(t.cpus))
	for i, tc := range t.cpus {
		c := &cs[i]
		*c = *tc
		c.m = m
		c.tlb = [tlbEntries]tlbEntry{}
		c.tlbVictim = [tlbEntries]tlbEntry{}
		c.dc = [dcEntries]*decodePage{}
		c.dmap = make(map[uint64]*decodePage)
		c.dlist = nil
		c.pend = nil
		c.poke = nil
		m.cpus[i] = c
	}
	// The boot records name their CPU: this machine's.
	m.boot = slices.Clone(t.boot)
	for i := range m.boot {
		m.boot[i].cpu = m.cpus[m.boot[i].cpu.ID]
	}
	m.bootMaps = slices.Clone(t.bootMaps)
	for i := range m.bootMaps {
		m.bootMaps[i].cpu = m.cpus[m.bootMaps[i].cpu.ID]
	}
	return m, nil
}

// cowClone returns a copy of the address space for a run from a snapshot:
// the same mappings, each page reading the snapshot's frame until its
// first store (cow), except executable ones, which get their copy now.
// m's frames must never be written again.
func (m *Memory) cowClone() *Memory {
	nm := &Memory{pages: make(map[uint64]*page, len(m.pages)), gen: m.gen}
	ps := make([]page, len(m.pages)) // one allocation for the mappings
	i := 0
	for vpn, p := range m.pages {
		np := &ps[i]
		i++
		*np = *p
		if !np.cow {
			if np.perm&PermX != 0 {
				nf := new(frame)
				*nf = *p.f
				np.f = nf
			} else {
				np.cow = true
			}
		}
		nm.pages[vpn] = np
	}
	return nm
}

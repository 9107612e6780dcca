package explore

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"golang.org/x/arch/x86/x86asm"
)

// Machine is a prepared scenario: the parsed slice, the machine
// configuration and the trace metadata the analyzers start from, built once
// and shared (read-only) by every run of an exploration.
type Machine struct {
	Spec *scenario.Spec
	Img  *emu.Image
	cfg  emu.Config
	md   format.Meta
	// fairAt, when non-zero, is the instruction count after which a
	// strategy's schedule hands over to a fair round robin (fairTail);
	// fairTick is that round robin's clock.
	fairAt, fairTick uint64

	// snap is the machine set up once (on the first run), which every
	// run starts from, copy on write (emu.Snapshot).
	snapOnce sync.Once
	snap     *emu.Snapshot
	snapErr  error
}

// machine returns a machine ready to run, its events going to sink: a run
// from the scenario's snapshot, taken on the first call.
func (pm *Machine) machine(sink emu.Sink) (*emu.Machine, error) {
	pm.snapOnce.Do(func() {
		cfg := pm.cfg
		// The snapshot's machine has a sink (which events a machine
		// makes depends on it) but never runs.
		cfg.Sink = discard{}
		cfg.Inject = slices.Clone(cfg.Inject)
		m, err := emu.New(pm.Img, cfg)
		if err == nil {
			pm.snap, err = m.Snapshot()
		}
		pm.snapErr = err
	})
	if pm.snapErr != nil {
		return nil, pm.snapErr
	}
	return pm.snap.Machine(sink)
}

// discard is a sink that drops events.
type discard struct{}

func (discard) Event(*emu.Event) {}

// NewMachine prepares spec (as returned by Prepare) for repeated runs.
func NewMachine(spec *scenario.Spec) (*Machine, error) {
	su, err := check.Prepare(spec, emu.Options{})
	if err != nil {
		return nil, err
	}
	return &Machine{Spec: spec, Img: su.Img, cfg: su.Config, md: su.Meta}, nil
}

// CPUs is the machine's CPU count.
func (pm *Machine) CPUs() int { return pm.cfg.CPUs }

// Outcome is one run checked by the analyzers.
type Outcome struct {
	Result   emu.Result
	Findings []*analyze.Finding
	// Seqs[i] is the number of events emitted before decision i ran, so
	// the events of decision i are Seqs[i] .. Seqs[i+1]-1.
	Seqs []uint64
	Hash uint64 // ScheduleHash of Result.Decisions
	// FairFrom is the index of the first decision of the fair tail (the
	// round robin a strategy's schedule hands over to when it has used the
	// scenario's instruction budget; see doc.go), or -1.
	FairFrom int
	// Syncs counts synchronisation events: service calls, markers, trap
	// deliveries, locked and serialising instructions, STI/CLI/POPF/IRETQ.
	Syncs uint64
	// Fired says, per rule of the injection plan the run kept
	// (Options.KeepInject), whether it raised its interrupt
	// (emu.Machine.InjectFired).
	Fired []bool
}

// ScheduleHash identifies a schedule: FNV-1a (64 bit) of its encoded
// decision log (emu.EncodeDecisions). Shards are compared by it.
func ScheduleHash(ds []emu.Decision) uint64 {
	// The encoding is the concatenation of each decision's: hash it in
	// chunks rather than building a long run's whole log at once.
	h := fnv.New64a()
	for i := 0; i < len(ds); i += 4096 {
		h.Write(emu.EncodeDecisions(ds[i:min(i+4096, len(ds))]))
	}
	return h.Sum64()
}

// Run executes one schedule from src with the analyzers ids (all when
// empty) attached through record.Recorder and check.Judge, as check does,
// with no trace file. The trap and progress analyzers always run: a run
// that did not finish (an oops, panic or BUG, the budget, a hang, or the
// emulator stopping on an unsupported instruction or an error) is a
// finding, so a violation, whatever ids selects. Only a failure to write
// the events is returned as an error.
func (pm *Machine) Run(src emu.DecisionSource, ids []string) (*Outcome, error) {
	as, err := check.Select(ids)
	if err != nil {
		return nil, err
	}
	j, err := check.NewJudge(&pm.md, as)
	if err != nil {
		return nil, err
	}
	t := &tap{rec: record.NewRecorder(j, pm.Img)}
	m, err := pm.machine(t)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", pm.Spec.ID, err)
	}
	if u, ok := src.(tapUser); ok {
		u.useTap(t)
	}
	var tail *fairTail
	if r, isLog := src.(emu.LogReplayer); pm.fairAt != 0 && !(isLog && r.ReplaysLog()) {
		tail = newFairTail(src, pm.fairAt, pm.fairTick)
		src = tail
	}
	p := &probe{src: src}
	res := m.Run(p)
	if err, seq, _ := t.rec.Err(); err != nil {
		return nil, fmt.Errorf("scenario %s: event %d: %w", pm.Spec.ID, seq, err)
	}
	out := &Outcome{Result: res, Findings: j.Finish(res).Findings, Seqs: p.seqs, Hash: ScheduleHash(res.Decisions), Syncs: t.syncs, FairFrom: -1,
		Fired: m.InjectFired()}
	if tail != nil {
		out.FairFrom = tail.from
	}
	return out, nil
}

// Replay runs log exactly (an emu.LogSource: the run ends when the log
// does).
func (pm *Machine) Replay(log []emu.Decision, ids []string) (*Outcome, error) {
	return pm.Run(&emu.LogSource{Log: log}, ids)
}

// probe notes the event count at each decision.
type probe struct {
	src  emu.DecisionSource
	seqs []uint64
}

// ReplaysLog passes on whether the probed source replays a log, so a
// replay that runs out ends with outcome decisions-exhausted, as it does
// outside the probe.
func (p *probe) ReplaysLog() bool {
	r, ok := p.src.(emu.LogReplayer)
	return ok && r.ReplaysLog()
}

func (p *probe) Next(m *emu.Machine) (emu.Decision, bool) {
	d, ok := p.src.Next(m)
	if ok {
		p.seqs = append(p.seqs, m.Seq())
	}
	return d, ok
}

// tap sits between the machine and the recorder. It notes which CPUs
// executed PAUSE (cpu_relax: a spin-wait iteration) since the last look,
// and counts synchronisation events (PCT's change points are placed among
// them; see doc.go).
type tap struct {
	rec     *record.Recorder
	paused  uint64 // bit per CPU
	syncs   uint64 // synchronisation events so far
	syncCPU int    // CPU of the last one
}

var _ emu.Sink = (*tap)(nil)

var opPause = uint16(x86asm.PAUSE)

// syncOps are instructions that synchronise with other CPUs or change
// what may interrupt this one.
var syncOps = func() (t [1 << 12]bool) {
	for _, op := range []x86asm.Op{x86asm.XCHG, x86asm.CMPXCHG, x86asm.CMPXCHG16B, x86asm.CMPXCHG8B, x86asm.XADD,
		x86asm.STI, x86asm.CLI, x86asm.IRETQ, x86asm.POPF, x86asm.POPFQ, x86asm.CPUID, x86asm.MFENCE, x86asm.INT} {
		t[op] = true
	}
	return t
}()

func (t *tap) Event(e *emu.Event) {
	switch e.Kind {
	case emu.EvInsn:
		if e.Op == opPause {
			t.paused |= 1 << (e.CPU & 63)
		} else if int(e.Op) < len(syncOps) && syncOps[e.Op] || locked(e) {
			t.syncs++
			t.syncCPU = int(e.CPU)
		}
	case emu.EvService, emu.EvMarker, emu.EvTrap:
		t.syncs++
		t.syncCPU = int(e.CPU)
	}
	t.rec.Event(e)
}

// locked reports a LOCK prefix among the instruction's legacy prefixes.
func locked(e *emu.Event) bool {
	for _, b := range e.Bytes[:min(int(e.Len), 4)] {
		switch b {
		case 0xf0:
			return true
		case 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67:
			continue
		}
		return false
	}
	return false
}

// takePaused returns and clears the PAUSE bit of cpu.
func (t *tap) takePaused(cpu int) bool {
	bit := uint64(1) << cpu
	p := t.paused&bit != 0
	t.paused &^= bit
	return p
}

type tapUser interface{ useTap(*tap) }

package explore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenario"
)

// Strategy names.
const (
	Random  = "random"
	PCT     = "pct"
	Bounded = "bounded"
)

// Strategies lists the strategy names.
func Strategies() []string { return []string{Random, PCT, Bounded} }

// Options configure Explore. The zero value explores with the random
// strategy until the context ends.
type Options struct {
	Strategy string // Random (default), PCT or Bounded

	// Budget is the number of schedules over all shards (random, pct:
	// schedule indexes 0..Budget-1); for bounded a cap on this shard's
	// schedules. 0: no budget (bounded: until exhausted).
	Budget int64
	// Time bounds the exploration phase (0: none); minimisation has its own
	// run budget (ShrinkRuns).
	Time time.Duration

	Shard, Shards int    // --shard i/n; Shards <= 1: unsharded
	Seed          uint64 // base seed of random and pct schedules
	All           bool   // go on after the first violation and minimise every distinct one

	// KeepInject follows the scenario's injection plan; by default
	// exploration ignores it (from a random start, no injection plan help).
	KeepInject bool
	// Inject is what strategies inject (default InjectNMI|InjectTimer);
	// NoInject turns injection off.
	Inject   Inject
	NoInject bool

	Params map[string]uint64 // scenario param overrides
	// MaxInsns is the per-schedule instruction budget (0: the scenario's):
	// a schedule that uses it turns fair for as many instructions again
	// (doc.go, "Fairness").
	MaxInsns uint64

	// Quantum is steps per decision: random: the largest quantum (0: drawn
	// per schedule from the swarm menu); pct: every quantum (0: 1);
	// bounded: the round-robin quantum (0: 64).
	Quantum uint32
	// Rate fixes the random strategy's NMI and timer rates (expected
	// injections per step, each); 0: drawn per schedule.
	Rate float64
	// Depth is PCT's d: d-1 priority change points (0: 3).
	Depth int
	// Injections is PCT's injection count per schedule (0: drawn from
	// {0, 1, 2, 4}; negative: none).
	Injections int
	// Bound is the bounded strategy's k: at most k deviations (0: 1).
	Bound int
	// Tick is the clock of the pct and bounded schedules: a timer
	// interrupt on a CPU every Tick steps of its own. 0: from the
	// scenario's schedule (mean quantum / timer_rate steps; none when
	// timer_rate is 0); negative: none.
	Tick int

	Analyzers  []string      // analyzer ids (default all but unmatched, see normalize)
	Workers    int           // parallel schedules (0: GOMAXPROCS)
	ShrinkRuns int           // candidate runs per minimisation (0: DefaultShrinkRuns)
	ShrinkTime time.Duration // time per minimisation (0: DefaultShrinkTime)
	NoShrink   bool

	// OutDir receives DIR/scenario=<id>/shard=<i>/findings.parquet, and per
	// minimised violation a trace and its findings as JSON. "": write
	// nothing.
	// Files of an earlier exploration in the same shard directory are
	// replaced.
	OutDir string

	// Progress, when set, is called from one goroutine about every
	// ProgressEvery (default 250ms) and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// KeepHashes returns every schedule's hash in Result.Hashes.
	KeepHashes bool
}

// Progress is a snapshot for progress displays.
type Progress struct {
	Phase      string // "explore", "shrink", "done"
	Schedules  int64
	Elapsed    time.Duration
	PerSecond  float64
	Violations int
	Best       string // the best violation so far, "" if none
}

// Violation is a schedule on which an analyzer reported, and its
// minimisation.
type Violation struct {
	Target    Target
	Schedule  int64  // the schedule's index (random, pct) or its order in this shard's enumeration (bounded)
	Hash      uint64 // ScheduleHash of Decisions
	Desc      string // how the strategy made the schedule
	Finding   *analyze.Finding
	Findings  []*analyze.Finding // all findings of that schedule
	Decisions []emu.Decision

	Minimized   []emu.Decision
	MinFindings []*analyze.Finding // all analyzers, on the minimised log (nil when not shrunk)
	Shrink      ShrinkStats
	Trace       string // the minimised run's trace (when OutDir is set)
	Report      string // its findings as JSON

	// Found is the wall time from the start of exploration until the
	// schedule finished; SchedulesBefore counts the schedules processed
	// before it in order.
	Found           time.Duration
	SchedulesBefore int64
}

// Result is an exploration's outcome.
type Result struct {
	Scenario  string
	Strategy  string
	Shard     int
	Shards    int
	Schedules int64 // schedules run and checked by this shard
	// Exhausted: the bounded strategy ran every schedule of its bound (in
	// this shard's part).
	Exhausted bool
	Stopped   string        // why exploration ended: "exhausted", "budget", "time", "violation", "canceled"
	Elapsed   time.Duration // everything, minimisation and writing included
	Explored  time.Duration // the exploration phase
	// Digest is the sum (mod 2^64) of the schedule hashes: the digests of
	// n shards add up to the unsharded run's.
	Digest     uint64
	Hashes     []uint64 // with Options.KeepHashes
	Violations []*Violation
	Findings   int // findings over all schedules
	// Unfired lists the rules of the injection plan (Options.KeepInject;
	// 0-based, in the scenario's [[inject]] order) that fired in none of
	// this shard's schedules: they tested nothing.
	Unfired []int
	Dir     string
	Spec    *scenario.Spec // the scenario as explored (see Prepare)
}

// Summary is the one-line verdict: "exhausted: 18,432 schedules, no
// violation", "budget: 2,000 schedules, no violation", or "violation: …".
func (r *Result) Summary() string {
	if len(r.Violations) == 0 {
		return fmt.Sprintf("%s: %s schedules, no violation", r.Stopped, commas(r.Schedules))
	}
	v := r.Violations[0]
	s := fmt.Sprintf("violation: %s (schedule %d of %s", v.Target, v.Schedule, commas(r.Schedules))
	if r.Exhausted {
		s += ", exhausted"
	}
	s += ")"
	if v.Minimized != nil {
		s += fmt.Sprintf("; minimised %d -> %d decisions", v.Shrink.DecisionsFrom, v.Shrink.DecisionsTo)
	}
	if len(r.Violations) > 1 {
		s += fmt.Sprintf("; %d distinct violations", len(r.Violations))
	}
	return s
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ErrBadOptions is returned (wrapped) for options that make no sense.
var ErrBadOptions = errors.New("explore: bad options")

func (o *Options) normalize(cpus int) error {
	if len(o.Analyzers) == 0 {
		// unmatched says a rule of the scenario's plan never matched: a
		// statement about the scenario (checked by check), not a protocol
		// violation. Exploration drops the injection plan and searches
		// schedules (with small params) in which a must_call window may
		// legitimately see no pass; ask for it with Analyzers to have it.
		for _, id := range analyze.IDs() {
			if id != "unmatched" {
				o.Analyzers = append(o.Analyzers, id)
			}
		}
	}
	if o.Strategy == "" {
		o.Strategy = Random
	}
	switch o.Strategy {
	case Random, PCT, Bounded:
	default:
		return fmt.Errorf("%w: unknown strategy %q (random, pct, bounded)", ErrBadOptions, o.Strategy)
	}
	if o.Shards <= 1 {
		o.Shards, o.Shard = 1, 0
	}
	if o.Shard < 0 || o.Shard >= o.Shards {
		return fmt.Errorf("%w: shard %d/%d", ErrBadOptions, o.Shard, o.Shards)
	}
	if o.Inject == 0 {
		o.Inject = InjectNMI | InjectTimer
	}
	if o.NoInject {
		o.Inject = 0
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.ShrinkTime <= 0 {
		o.ShrinkTime = DefaultShrinkTime
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 250 * time.Millisecond
	}
	switch o.Strategy {
	case PCT:
		if o.Quantum == 0 {
			o.Quantum = 1
		}
		if o.Depth <= 0 {
			o.Depth = 3
		}
	case Bounded:
		if o.Quantum == 0 {
			o.Quantum = 64
		}
		if o.Bound <= 0 {
			o.Bound = 1
		}
	}
	if o.Rate < 0 || o.Rate > 1 {
		return fmt.Errorf("%w: rate %v not in [0, 1]", ErrBadOptions, o.Rate)
	}
	return nil
}

// sched is one schedule's outcome, as a job reports it.
type sched struct {
	index    int64
	hash     uint64
	desc     string
	findings []*analyze.Finding
	log      []emu.Decision // kept when there are findings
	seqs     []uint64
	at       time.Duration
	fired    []bool // per injection rule (Outcome.Fired)
}

type jobOut struct {
	scheds []sched
	cut    bool // the job stopped early (budget, time, first violation)
	err    error
}

// strategy turns job numbers into schedules.
type strategy interface {
	// job returns job j's runner, or ok=false when there are no more jobs.
	job(j int64) (run func(e *engine) jobOut, ok bool)
}

type engine struct {
	ctx   context.Context
	opt   *Options
	pm    *Machine
	start time.Time
	count atomic.Int64 // schedules run (all workers), for progress and the bounded budget
	tick  uint64       // Options.Tick resolved
	phase atomic.Value // string
	nviol atomic.Int64
	best  atomic.Value // string
}

// runOne runs a schedule and packages it.
func (e *engine) runOne(idx int64, desc string, src emu.DecisionSource) (sched, *Outcome, error) {
	out, err := e.pm.Run(src, e.opt.Analyzers)
	if err != nil {
		return sched{}, nil, fmt.Errorf("schedule %d (%s): %w", idx, desc, err)
	}
	e.count.Add(1)
	if out.FairFrom >= 0 {
		desc += fmt.Sprintf("; round robin from decision %d (instruction budget of the schedule used)", out.FairFrom)
	}
	s := sched{index: idx, hash: out.Hash, desc: desc, findings: out.Findings, at: time.Since(e.start), fired: out.Fired}
	if len(out.Findings) > 0 {
		s.log, s.seqs = out.Result.Decisions, out.Seqs
	}
	return s, out, nil
}

// Explore searches spec's schedules with opt's strategy, minimises what it
// finds and writes the results under opt.OutDir. An error means the
// exploration could not run (bad options, an emulator error, a write
// failure); violations are in the Result.
func Explore(ctx context.Context, spec *scenario.Spec, opt Options) (*Result, error) {
	prepared, err := Prepare(spec, opt.Params, opt.MaxInsns, opt.KeepInject)
	if err != nil {
		return nil, err
	}
	// The fair tail (doc.go, "Fairness"): a schedule that has used the
	// instruction budget turns round robin for as many instructions again,
	// and the scenario as explored says so (its max_insns is doubled), so
	// that the written trace re-executes the whole run.
	var fairAt uint64
	if !prepared.OpenEnded() {
		fairAt = prepared.MaxInsns
		if fairAt == 0 {
			fairAt = emu.DefaultMaxInsns
		}
		if fairAt > math.MaxUint64/2 {
			return nil, fmt.Errorf("%w: instruction budget %d too large", ErrBadOptions, fairAt)
		}
		if prepared, err = Prepare(spec, opt.Params, fairFactor*fairAt, opt.KeepInject); err != nil {
			return nil, err
		}
	}
	pm, err := NewMachine(prepared)
	if err != nil {
		return nil, err
	}
	pm.fairAt, pm.fairTick = fairAt, tickFor(&opt, prepared)
	if err := opt.normalize(pm.CPUs()); err != nil {
		return nil, err
	}
	res := &Result{Scenario: spec.ID, Strategy: opt.Strategy, Shard: opt.Shard, Shards: opt.Shards, Spec: prepared}
	start := time.Now()
	ectx := ctx
	if opt.Time > 0 {
		var cancel context.CancelFunc
		ectx, cancel = context.WithTimeout(ctx, opt.Time)
		defer cancel()
	}
	e := &engine{ctx: ectx, opt: &opt, pm: pm, start: start, tick: tickFor(&opt, prepared)}

	var st strategy
	switch opt.Strategy {
	case Random:
		st = &randomStrategy{e: e}
	case PCT:
		ps := &pctStrategy{e: e}
		if err := ps.calibrate(); err != nil {
			return nil, err
		}
		st = ps
	case Bounded:
		bs := &boundedStrategy{e: e}
		if err := bs.root(); err != nil {
			return nil, err
		}
		st = bs
	}

	var violations []*Violation
	// stopProgress is idempotent: deferred for the error returns, and
	// called before the final "done" snapshot so Progress never runs from
	// two goroutines.
	stopProgress := e.progressLoop()
	defer stopProgress()
	seen := map[Target]bool{}
	processed := int64(0)
	fired := make([]bool, len(prepared.Inject))
	stopped, err := e.runJobs(st, func(jo jobOut) bool {
		for _, s := range jo.scheds {
			res.Schedules++
			for i, f := range s.fired {
				if i < len(fired) {
					fired[i] = fired[i] || f
				}
			}
			res.Digest += s.hash
			if opt.KeepHashes {
				res.Hashes = append(res.Hashes, s.hash)
			}
			res.Findings += len(s.findings)
			processed++
			fs := sortedFindings(s.findings)
			for _, f := range selectedFirst(fs, opt.Analyzers) {
				t := TargetOf(f)
				if seen[t] {
					continue
				}
				seen[t] = true
				v := &Violation{Target: t, Schedule: s.index, Hash: s.hash, Desc: s.desc, Finding: f, Findings: fs,
					Decisions: s.log, Found: s.at, SchedulesBefore: processed - 1}
				violations = append(violations, v)
				if e.nviol.Add(1) == 1 {
					e.best.Store(fmt.Sprintf("%s (schedule %d)", t, s.index))
				}
				if !opt.All {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	res.Stopped = stopped
	res.Exhausted = stopped == "exhausted"
	for i, f := range fired {
		if !f && res.Schedules > 0 {
			res.Unfired = append(res.Unfired, i)
		}
	}
	res.Explored = time.Since(start)
	// The bounded strategy's root belongs to shard 0 only; others ran it
	// just to enumerate.
	res.Violations = violations
	if !opt.NoShrink {
		e.phase.Store("shrink")
		for _, v := range violations {
			if ctx.Err() != nil {
				break
			}
			sctx, cancel := context.WithTimeout(ctx, opt.ShrinkTime)
			min, out, ss, err := Shrink(sctx, pm, v.Decisions, v.Target, opt.ShrinkRuns, opt.Workers)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("minimise %s: %w", v.Target, err)
			}
			v.Shrink = ss
			if out != nil {
				v.Minimized = min
				full, err := pm.Replay(min, opt.Analyzers)
				if err != nil {
					return nil, fmt.Errorf("minimise %s: %w", v.Target, err)
				}
				v.MinFindings = sortedFindings(full.Findings)
			}
		}
	}
	stopProgress()
	res.Elapsed = time.Since(start)
	if opt.OutDir != "" {
		if err := writeOutputs(res, pm, &opt); err != nil {
			return res, err
		}
	}
	if opt.Progress != nil {
		opt.Progress(e.snapshot("done"))
	}
	return res, nil
}

// fairFactor: the scenario as explored has this many times its instruction
// budget; a schedule turns fair (round robin) after the first.
const fairFactor = 2

// tickFor resolves Options.Tick.
func tickFor(o *Options, spec *scenario.Spec) uint64 {
	switch {
	case o.Tick > 0:
		return uint64(o.Tick)
	case o.Tick < 0 || spec.Schedule.TimerRate <= 0:
		return 0
	}
	q := spec.Schedule.Quantum
	mean := float64(q[0]+q[1]) / 2
	return uint64(math.Ceil(mean / spec.Schedule.TimerRate))
}

// selectedFirst orders the findings of the selected analyzers (ids; all
// when empty) before those of the analyzers that always run to judge how
// a run ended (trap, progress): a schedule's violation is what was asked
// for when it shows that.
func selectedFirst(fs []*analyze.Finding, ids []string) []*analyze.Finding {
	if len(ids) == 0 {
		return fs
	}
	out := make([]*analyze.Finding, 0, len(fs))
	for pass := 0; pass < 2; pass++ {
		for _, f := range fs {
			if slices.Contains(ids, f.Analyzer) == (pass == 0) {
				out = append(out, f)
			}
		}
	}
	return out
}

func sortedFindings(fs []*analyze.Finding) []*analyze.Finding {
	out := append([]*analyze.Finding(nil), fs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].SeqFirst < out[j].SeqFirst })
	return out
}

func (e *engine) snapshot(phase string) Progress {
	el := time.Since(e.start)
	n := e.count.Load()
	best, _ := e.best.Load().(string)
	p := Progress{Phase: phase, Schedules: n, Elapsed: el, Violations: int(e.nviol.Load()), Best: best}
	if el > 0 {
		p.PerSecond = float64(n) / el.Seconds()
	}
	return p
}

// progressLoop calls Progress periodically until the returned stop is
// called.
func (e *engine) progressLoop() (stop func()) {
	e.phase.Store("explore")
	if e.opt.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.opt.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.opt.Progress(e.snapshot(e.phase.Load().(string)))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

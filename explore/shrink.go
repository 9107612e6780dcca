package explore

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
)

// Target is what a shrunk run must still show: a finding of the same
// analyzer in the same symbol.
type Target struct {
	Analyzer string `json:"analyzer"`
	Symbol   string `json:"symbol"`
}

// TargetOf is f's target.
func TargetOf(f *analyze.Finding) Target { return Target{f.Analyzer, f.Symbol} }

func (t Target) String() string {
	if t.Symbol == "" {
		return t.Analyzer
	}
	return t.Analyzer + " in " + t.Symbol
}

// Match returns the first finding in fs that t matches, or nil.
func (t Target) Match(fs []*analyze.Finding) *analyze.Finding {
	for _, f := range fs {
		if f.Analyzer == t.Analyzer && f.Symbol == t.Symbol {
			return f
		}
	}
	return nil
}

// ShrinkStats says what minimisation did.
type ShrinkStats struct {
	Runs           int    `json:"runs"`
	DecisionsFrom  int    `json:"decisions_from"`
	DecisionsTo    int    `json:"decisions_to"`
	InjectionsFrom int    `json:"injections_from"`
	InjectionsTo   int    `json:"injections_to"`
	StepsFrom      uint64 `json:"steps_from"`
	StepsTo        uint64 `json:"steps_to"`
	Complete       bool   `json:"complete"` // reached a fixpoint within the run budget
}

// Minimisation budgets: candidate runs and time per violation.
const (
	DefaultShrinkRuns = 3000
	DefaultShrinkTime = 2 * time.Minute
)

// Shrink minimises a failing decision log: the result, replayed through an
// emu.LogSource, still shows a finding matching t, and no single step of
// the procedure below improves it (when Complete). In order, repeated to a
// fixpoint:
//
//  1. truncate: keep the decisions up to the one whose events include the
//     finding (the analyzers report while streaming, so a prefix of a run
//     shows every finding its events show), then the fewest steps of the
//     last one (binary search); then, once, ddmin over the injections
//     alone (an injection-heavy log is mostly noise);
//  2. ddmin (Zeller and Hildebrandt, TSE 2002) over chunks of decisions,
//     halving the chunk size when a sweep removes nothing, with three
//     ways to take a chunk out: postpone (its steps go to each CPU's next
//     step after it: fewer context switches, same work), delete, advance
//     (its steps go to each CPU's previous step);
//  3. drop each remaining injection on its own;
//  4. shrink each step count (binary search for the smallest that still
//     reproduces).
//
// Adjacent steps of one CPU are merged after every change ("step c a; step
// c b" is "step c a+b": nothing else runs in between). Every candidate is
// re-run with only t's analyzer; candidates already tried are cached.
// maxRuns <= 0 means DefaultShrinkRuns.
func Shrink(ctx context.Context, pm *Machine, log []emu.Decision, t Target, maxRuns, workers int) ([]emu.Decision, *Outcome, ShrinkStats, error) {
	if maxRuns <= 0 {
		maxRuns = DefaultShrinkRuns
	}
	sh := &shrinker{ctx: ctx, pm: pm, t: t, max: maxRuns, workers: max(workers, 1), seen: map[string]bool{}}
	st := ShrinkStats{DecisionsFrom: len(log), InjectionsFrom: injections(log), StepsFrom: totalSteps(log)}
	cur := coalesce(log)
	out, err := sh.run(cur)
	sh.runs++
	if err != nil {
		return nil, nil, st, err
	}
	if out == nil {
		// Not reproducible as a strict replay: nothing to shrink.
		st.DecisionsTo, st.InjectionsTo, st.StepsTo, st.Runs = len(log), st.InjectionsFrom, st.StepsFrom, sh.runs
		return log, nil, st, nil
	}
	best := out
	cur, best = sh.truncate(cur, best)
	cur, best = sh.ddminInjections(cur, best)
	for !sh.out() {
		before := slices.Clone(cur)
		cur, best = sh.ddmin(cur, best, opPostpone)
		cur, best = sh.ddmin(cur, best, opDelete)
		cur, best = sh.ddmin(cur, best, opAdvance)
		cur, best = sh.dropInjections(cur, best)
		cur, best = sh.shrinkSteps(cur, best)
		cur, best = sh.truncate(cur, best)
		if slices.Equal(before, cur) {
			st.Complete = !sh.out()
			break
		}
	}
	st.Runs = sh.runs
	st.DecisionsTo, st.InjectionsTo, st.StepsTo = len(cur), injections(cur), totalSteps(cur)
	return cur, best, st, nil
}

type shrinker struct {
	ctx     context.Context
	pm      *Machine
	t       Target
	max     int
	workers int
	runs    int
	seen    map[string]bool
}

func (sh *shrinker) out() bool {
	return sh.runs >= sh.max || sh.ctx.Err() != nil
}

// run replays log and returns its outcome when it reproduces the target.
func (sh *shrinker) run(log []emu.Decision) (*Outcome, error) {
	out, err := sh.pm.Replay(log, []string{sh.t.Analyzer})
	if err != nil {
		return nil, err
	}
	if sh.t.Match(out.Findings) == nil {
		return nil, nil
	}
	return out, nil
}

// try tests a candidate (coalesced); it returns the candidate and its
// outcome when it reproduces.
func (sh *shrinker) try(cand []emu.Decision) ([]emu.Decision, *Outcome, bool) {
	if sh.out() {
		return nil, nil, false
	}
	cand = coalesce(cand)
	key := string(emu.EncodeDecisions(cand))
	if sh.seen[key] {
		return nil, nil, false
	}
	sh.seen[key] = true
	out, err := sh.run(cand)
	sh.runs++
	if err != nil {
		// A candidate the emulator cannot run does not reproduce; an error
		// on the first run was already returned by Shrink.
		return nil, nil, false
	}
	if out == nil {
		return nil, nil, false
	}
	return cand, out, true
}

// truncate cuts the log after the decision whose events include the
// finding, then shortens that decision's steps. Analyzers report while
// streaming, so whether a prefix reproduces is monotone in its length: the
// cut is found by binary search, starting from the decision that holds the
// finding's evidence (a folded finding's SeqLast is its last repeat).
func (sh *shrinker) truncate(cur []emu.Decision, best *Outcome) ([]emu.Decision, *Outcome) {
	f := sh.t.Match(best.Findings)
	if f == nil {
		return cur, best
	}
	at := f.SeqFirst
	for _, e := range f.Evidence {
		at = max(at, e)
	}
	d := len(best.Seqs) - 1
	for i, s := range best.Seqs {
		if s > at {
			d = i - 1
			break
		}
	}
	if hint := max(d+1, 1); hint < len(cur) {
		if c, o, ok := sh.try(cur[:hint]); ok {
			cur, best = c, o
		} else {
			var bc []emu.Decision
			var bo *Outcome
			lo, hi := hint+1, len(cur) // cur[:hi] reproduces
			for lo < hi && !sh.out() {
				mid := lo + (hi-lo)/2
				if c, o, ok := sh.try(cur[:mid]); ok {
					hi, bc, bo = mid, c, o
				} else {
					lo = mid + 1
				}
			}
			if bc != nil {
				cur, best = bc, bo
			}
		}
	}
	return sh.shrinkStep(cur, best, len(cur)-1)
}

// shrinkStep binary-searches the smallest step count of decision i that
// still reproduces (every accepted value was tested).
func (sh *shrinker) shrinkStep(cur []emu.Decision, best *Outcome, i int) ([]emu.Decision, *Outcome) {
	if i < 0 || i >= len(cur) || cur[i].Kind != emu.DecStep || cur[i].N <= 1 {
		return cur, best
	}
	lo, hi := uint32(1), cur[i].N
	for lo < hi && !sh.out() {
		mid := lo + (hi-lo)/2
		cand := slices.Clone(cur)
		cand[i].N = mid
		if c, o, ok := sh.try(cand); ok && len(c) == len(cur) {
			hi = mid
			cur, best = c, o
		} else if ok {
			// Coalescing changed the shape: take it and stop here.
			return c, o
		} else {
			lo = mid + 1
		}
	}
	return cur, best
}

func (sh *shrinker) shrinkSteps(cur []emu.Decision, best *Outcome) ([]emu.Decision, *Outcome) {
	for i := 0; i < len(cur) && !sh.out(); i++ {
		cur, best = sh.shrinkStep(cur, best, i)
	}
	return cur, best
}

func (sh *shrinker) dropInjections(cur []emu.Decision, best *Outcome) ([]emu.Decision, *Outcome) {
	for i := 0; i < len(cur) && !sh.out(); i++ {
		if cur[i].Kind == emu.DecStep {
			continue
		}
		cand := slices.Delete(slices.Clone(cur), i, i+1)
		if c, o, ok := sh.try(cand); ok {
			cur, best = c, o
			i = -1
		}
	}
	return cur, best
}

// chunkOp makes a candidate from cur by acting on the decisions
// [start, end); nil means nothing to try.
type chunkOp func(cur []emu.Decision, start, end int) []emu.Decision

// opDelete removes the chunk.
func opDelete(cur []emu.Decision, start, end int) []emu.Decision {
	if end-start >= len(cur) {
		return nil
	}
	return append(slices.Clone(cur[:start]), cur[end:]...)
}

// opPostpone removes the chunk but keeps every CPU's progress: a CPU's
// steps in the chunk are added to its next step after the chunk (and
// dropped if it has none). Injections in the chunk are dropped. It takes
// context switches out of a schedule rather than work.
func opPostpone(cur []emu.Decision, start, end int) []emu.Decision {
	if end-start >= len(cur) || end >= len(cur) {
		return nil
	}
	owed := map[uint16]uint64{}
	for _, d := range cur[start:end] {
		if d.Kind == emu.DecStep {
			owed[d.CPU] += uint64(d.N)
		}
	}
	out := append(slices.Clone(cur[:start]), cur[end:]...)
	for i := start; i < len(out) && len(owed) > 0; i++ {
		d := &out[i]
		if n, ok := owed[d.CPU]; ok && d.Kind == emu.DecStep {
			d.N = uint32(min(uint64(d.N)+n, 1<<31))
			delete(owed, d.CPU)
		}
	}
	return out
}

// opAdvance is opPostpone towards the front: a CPU's steps in the chunk
// go to its last step before the chunk.
func opAdvance(cur []emu.Decision, start, end int) []emu.Decision {
	if end-start >= len(cur) || start == 0 {
		return nil
	}
	owed := map[uint16]uint64{}
	for _, d := range cur[start:end] {
		if d.Kind == emu.DecStep {
			owed[d.CPU] += uint64(d.N)
		}
	}
	out := append(slices.Clone(cur[:start]), cur[end:]...)
	for i := start - 1; i >= 0 && len(owed) > 0; i-- {
		d := &out[i]
		if n, ok := owed[d.CPU]; ok && d.Kind == emu.DecStep {
			d.N = uint32(min(uint64(d.N)+n, 1<<31))
			delete(owed, d.CPU)
		}
	}
	return out
}

// ddmin applies op to chunks of decreasing size (Zeller and Hildebrandt's
// ddmin, complement side): a sweep with chunk size s tries every chunk,
// keeping each candidate that reproduces and going on from the same
// position; a sweep with no success halves s, down to single decisions.
// Candidates of one sweep are tried up to Workers at a time; the first
// success in order wins, so the result does not depend on the workers.
func (sh *shrinker) ddmin(cur []emu.Decision, best *Outcome, op chunkOp) ([]emu.Decision, *Outcome) {
	size := (len(cur) + 1) / 2
	for size >= 1 && len(cur) >= 2 && !sh.out() {
		reduced := false
		for start := 0; start < len(cur) && !sh.out(); {
			var cands [][]emu.Decision
			var starts []int
			for st := start; st < len(cur) && len(cands) < sh.workers; st += size {
				if c := op(cur, st, min(st+size, len(cur))); c != nil {
					cands = append(cands, c)
					starts = append(starts, st)
				}
			}
			if len(cands) == 0 {
				break
			}
			i, c, o := sh.first(cands)
			if i < 0 {
				start = starts[len(starts)-1] + size
				continue
			}
			cur, best, reduced = c, o, true
			start = starts[i]
		}
		if !reduced {
			if size == 1 {
				break
			}
			size = (size + 1) / 2
		}
	}
	return cur, best
}

// ddminInjections runs ddmin over the injections only (whole chunks of
// them removed at once): a log from an injection-heavy schedule is mostly
// injections, and the steps around them must stay.
func (sh *shrinker) ddminInjections(cur []emu.Decision, best *Outcome) ([]emu.Decision, *Outcome) {
	inj := func(log []emu.Decision) []int {
		var idx []int
		for i, d := range log {
			if d.Kind != emu.DecStep {
				idx = append(idx, i)
			}
		}
		return idx
	}
	without := func(log []emu.Decision, drop []int) []emu.Decision {
		out := make([]emu.Decision, 0, len(log))
		j := 0
		for i, d := range log {
			if j < len(drop) && drop[j] == i {
				j++
				continue
			}
			out = append(out, d)
		}
		return out
	}
	idx := inj(cur)
	size := len(idx)
	for size >= 1 && len(idx) > 0 && !sh.out() {
		reduced := false
		for start := 0; start < len(idx) && !sh.out(); {
			var cands [][]emu.Decision
			var starts []int
			for st := start; st < len(idx) && len(cands) < sh.workers; st += size {
				cands = append(cands, without(cur, idx[st:min(st+size, len(idx))]))
				starts = append(starts, st)
			}
			i, c, o := sh.first(cands)
			if i < 0 {
				start = starts[len(starts)-1] + size
				continue
			}
			cur, best, reduced = c, o, true
			idx = inj(cur)
			start = starts[i]
		}
		if !reduced {
			if size == 1 {
				break
			}
			size = (size + 1) / 2
		}
	}
	return cur, best
}

// first tries cands in parallel (up to sh.workers) and returns the lowest
// index that reproduces, or -1.
func (sh *shrinker) first(cands [][]emu.Decision) (int, []emu.Decision, *Outcome) {
	type res struct {
		c  []emu.Decision
		o  *Outcome
		ok bool
	}
	rs := make([]res, len(cands))
	var todo []int
	for i, c := range cands {
		c = coalesce(c)
		key := string(emu.EncodeDecisions(c))
		if sh.seen[key] || sh.runs+len(todo) >= sh.max {
			continue
		}
		sh.seen[key] = true
		rs[i].c = c
		todo = append(todo, i)
	}
	var wg sync.WaitGroup
	for _, i := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := sh.run(rs[i].c)
			rs[i].o, rs[i].ok = o, err == nil && o != nil
		}()
	}
	wg.Wait()
	sh.runs += len(todo)
	for i, r := range rs {
		if r.ok {
			return i, r.c, r.o
		}
	}
	return -1, nil, nil
}

// coalesce merges adjacent steps of the same CPU.
func coalesce(log []emu.Decision) []emu.Decision {
	out := make([]emu.Decision, 0, len(log))
	for _, d := range log {
		if k := len(out) - 1; k >= 0 && d.Kind == emu.DecStep && out[k].Kind == emu.DecStep && out[k].CPU == d.CPU &&
			uint64(out[k].N)+uint64(d.N) <= 1<<31 {
			out[k].N += d.N
			continue
		}
		out = append(out, d)
	}
	return out
}

func injections(log []emu.Decision) int {
	n := 0
	for _, d := range log {
		if d.Kind != emu.DecStep {
			n++
		}
	}
	return n
}

func totalSteps(log []emu.Decision) uint64 {
	var n uint64
	for _, d := range log {
		if d.Kind == emu.DecStep {
			n += uint64(d.N)
		}
	}
	return n
}

package explore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/patchtrace/patchtrace/emu"
)

// runJobs hands jobs 0, 1, ... to the workers and feeds their outcomes to
// process in job order, so that results do not depend on the number of
// workers: the first violation is the one of the lowest job. process
// returns false to stop. Workers take jobs in increasing order and finish
// every job they take, so the jobs that ran are always a prefix.
func (e *engine) runJobs(st strategy, process func(jobOut) bool) (stopped string, err error) {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		results = map[int64]jobOut{}
		next    int64
		stopAt  int64 = math.MaxInt64
		noMore  bool
		active  = e.opt.Workers
	)
	worker := func() {
		defer func() {
			mu.Lock()
			active--
			cond.Broadcast()
			mu.Unlock()
		}()
		for {
			mu.Lock()
			j := next
			if j > stopAt || noMore || e.ctx.Err() != nil {
				mu.Unlock()
				return
			}
			run, ok := st.job(j)
			if !ok {
				noMore = true
				mu.Unlock()
				return
			}
			next++
			mu.Unlock()
			jo := run(e)
			mu.Lock()
			results[j] = jo
			if jo.err != nil || (!e.opt.All && hasFindings(jo)) {
				stopAt = min(stopAt, j)
			}
			cond.Broadcast()
			mu.Unlock()
		}
	}
	for i := 0; i < e.opt.Workers; i++ {
		go worker()
	}
	cut := false
	mu.Lock()
	for j := int64(0); ; j++ {
		for {
			if _, ok := results[j]; ok || active == 0 {
				break
			}
			cond.Wait()
		}
		jo, ok := results[j]
		if !ok {
			break
		}
		delete(results, j)
		if jo.err != nil {
			err = jo.err
			stopAt = min(stopAt, j)
			break
		}
		mu.Unlock()
		cont := process(jo)
		mu.Lock()
		cut = cut || jo.cut
		if !cont {
			stopped = "violation"
			stopAt = min(stopAt, j)
			break
		}
	}
	for active > 0 {
		cond.Wait()
	}
	exhaustedJobs := noMore
	mu.Unlock()
	if err != nil {
		return "", err
	}
	if stopped != "" {
		return stopped, nil
	}
	switch {
	case errors.Is(e.ctx.Err(), context.DeadlineExceeded):
		return "time", nil
	case e.ctx.Err() != nil:
		return "canceled", nil
	case cut:
		return "budget", nil
	case exhaustedJobs && e.opt.Strategy == Bounded:
		return "exhausted", nil
	}
	return "budget", nil
}

func hasFindings(jo jobOut) bool {
	for _, s := range jo.scheds {
		if len(s.findings) > 0 {
			return true
		}
	}
	return false
}

// ---- random ----

type randomStrategy struct{ e *engine }

// index maps this shard's job j to its global schedule index.
func index(o *Options, j int64) (int64, bool) {
	g := int64(o.Shard) + j*int64(o.Shards)
	return g, o.Budget <= 0 || g < o.Budget
}

func (r *randomStrategy) job(j int64) (func(*engine) jobOut, bool) {
	g, ok := index(r.e.opt, j)
	if !ok {
		return nil, false
	}
	return func(e *engine) jobOut {
		rnd := emu.NewRand(seedFor(e.opt.Seed, g))
		base := SwarmConfig{QMax: e.opt.Quantum, NMIRate: -1, TimerRate: -1}
		if e.opt.Rate > 0 {
			base.NMIRate, base.TimerRate = e.opt.Rate, e.opt.Rate
		}
		cfg := drawSwarm(rnd, e.pm.CPUs(), base, e.opt.Inject, e.pm.Spec.Schedule.TimerRate > 0)
		desc := fmt.Sprintf("random: quantum %d-%d, nmi rate %.3g/step, timer rate %.3g/step, cpu weights %v", cfg.QMin, cfg.QMax, cfg.NMIRate, cfg.TimerRate, cfg.Weights)
		s, _, err := e.runOne(g, desc, newRandomSource(rnd.Uint64(), cfg))
		return jobOut{scheds: []sched{s}, err: err}
	}, true
}

// ---- PCT ----

type pctStrategy struct {
	e     *engine
	k     uint64 // sync events of the calibration run
	steps uint64 // its instructions
}

// calibrate measures k, the number of sync events in a run, with the
// round-robin schedule (not counted as a schedule).
func (p *pctStrategy) calibrate() error {
	out, err := p.e.pm.Run(newBoundedSource(p.e.opt.Quantum, 0, nil, p.e.tick), []string{"trap"})
	if err != nil {
		return fmt.Errorf("pct calibration run: %w", err)
	}
	p.k = max(out.Syncs, 1)
	p.steps = out.Result.Insns
	return nil
}

var pctInjectMenu = []int{0, 1, 2, 4}

// pctFairFactor: a PCT schedule turns round robin after this many times
// the calibration run's length.
const pctFairFactor = 4

func (p *pctStrategy) job(j int64) (func(*engine) jobOut, bool) {
	g, ok := index(p.e.opt, j)
	if !ok {
		return nil, false
	}
	return func(e *engine) jobOut {
		rnd := emu.NewRand(seedFor(e.opt.Seed, g))
		m := e.opt.Injections
		if m == 0 {
			m = pctInjectMenu[rnd.Intn(len(pctInjectMenu))]
		}
		m = max(m, 0)
		cfg := drawPCT(rnd, e.pm.CPUs(), e.opt.Depth, p.k, e.opt.Quantum, m, e.opt.Inject)
		cfg.FairAt = max(pctFairFactor*p.steps, 10000)
		desc := fmt.Sprintf("pct: d=%d over %d sync events, priorities %v, change points %v, %d injections", e.opt.Depth, p.k, cfg.Prio, cfg.Changes, len(cfg.Injects))
		s, _, err := e.runOne(g, desc, newPCTSource(cfg, e.tick))
		return jobOut{scheds: []sched{s}, err: err}
	}, true
}

// ---- bounded ----

// boundedStrategy enumerates every schedule with at most k deviations
// from the default schedule, depth first. Job 0 is the default schedule
// itself; job j >= 1 is the subtree under the j-th first deviation this
// shard owns (first deviations are dealt to shards round robin).
type boundedStrategy struct {
	e     *engine
	root0 sched
	first []Deviation
}

func (b *boundedStrategy) root() error {
	src := newBoundedSource(b.e.opt.Quantum, b.e.opt.Inject, nil, b.e.tick)
	var s sched
	var err error
	if b.e.opt.Shard == 0 {
		s, _, err = b.e.runOne(0, src.desc(), src)
	} else {
		_, err = b.e.pm.Run(src, b.e.opt.Analyzers)
	}
	if err != nil {
		return err
	}
	b.root0 = s
	if b.e.opt.Bound >= 1 {
		for off, n := range src.alts {
			for a := 0; a < n; a++ {
				b.first = append(b.first, Deviation{Index: src.expandFrom + off, Alt: a})
			}
		}
	}
	return nil
}

func (b *boundedStrategy) job(j int64) (func(*engine) jobOut, bool) {
	if j == 0 {
		return func(*engine) jobOut {
			if b.e.opt.Shard != 0 {
				return jobOut{}
			}
			return jobOut{scheds: []sched{b.root0}}
		}, true
	}
	k := int64(b.e.opt.Shard) + (j-1)*int64(b.e.opt.Shards)
	if k >= int64(len(b.first)) {
		return nil, false
	}
	return func(e *engine) jobOut {
		var jo jobOut
		b.dfs(e, k+1, []Deviation{b.first[k]}, &jo)
		return jo
	}, true
}

// dfs runs the schedule with deviations devs and then, below the bound,
// every extension by one more deviation at a later choice point. It
// returns false when the job must stop.
func (b *boundedStrategy) dfs(e *engine, idx int64, devs []Deviation, jo *jobOut) bool {
	if e.ctx.Err() != nil || (e.opt.Budget > 0 && e.count.Load() >= e.opt.Budget) {
		jo.cut = true
		return false
	}
	src := newBoundedSource(e.opt.Quantum, e.opt.Inject, devs, e.tick)
	s, _, err := e.runOne(idx, src.desc(), src)
	if err != nil {
		jo.err = err
		return false
	}
	jo.scheds = append(jo.scheds, s)
	if len(s.findings) > 0 && !e.opt.All {
		return false
	}
	if len(devs) >= e.opt.Bound {
		return true
	}
	for off, n := range src.alts {
		for a := 0; a < n; a++ {
			next := append(slices.Clone(devs), Deviation{Index: src.expandFrom + off, Alt: a})
			if !b.dfs(e, idx, next, jo) {
				return false
			}
		}
	}
	return true
}

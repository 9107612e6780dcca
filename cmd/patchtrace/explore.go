package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/internal/progress"
)

const exploreAbout = "Runs many schedules of SCENARIO with recording off, each checked by the analyzers in\n" +
	"process (the same code as `analyze`), varying CPU interleavings and where NMIs and\n" +
	"timer interrupts arrive. The scenario's injection plan is ignored unless --inject-plan:\n" +
	"a finding must come from the schedule alone (with it, a rule of the plan that fires in\n" +
	"no schedule is a warning: it tested nothing). A run that does not finish (an oops,\n" +
	"panic or BUG, the instruction budget, a hang, or the emulator stopping on an\n" +
	"instruction it does not implement or an error) is a violation like any finding (the\n" +
	"trap and progress analyzers always run, whatever --only says; an open-ended scenario,\n" +
	"contract.terminates = false, may end on its budget). A schedule that reaches the\n" +
	"instruction budget turns fair (round robin, no injections) for as many instructions\n" +
	"again, and only a run that still does not finish is a violation: a CPU starved by a\n" +
	"lopsided schedule is no livelock (the scenario as explored has twice its max_insns).\n" +
	"Strategies: random (seeded swarm\n" +
	"schedules), pct (priority schedules with d-1 change points) and bounded (every schedule\n" +
	"within --bound deviations of round robin; says \"exhausted: N schedules\" when done).\n" +
	"On the first violation (every distinct one with --all) the decision log is minimised\n" +
	"by delta debugging and the minimal failing run is written as a trace with its findings\n" +
	"under DIR/scenario=ID/shard=I/, next to findings.parquet and summary.json; DuckDB reads\n" +
	"all shards as one table: read_parquet('DIR/**/*.parquet', hive_partitioning=true).\n" +
	"A shard directory holding a previous run's results is refused before any schedule\n" +
	"runs (its failing traces would read as this run's); --force replaces them.\n" +
	"--shard i/n runs the i-th of n disjoint parts of the same search. Without --budget\n" +
	"and --time, random and pct run 1000 schedules. See the explore package doc for the\n" +
	"choice-point model.\n" + progressHelp +
	"Exit status: 0 no violation, 1 violation found, 2 error, a search interrupted\n" +
	"(Ctrl-C) before its budget or time that found no violation, or one that ran no\n" +
	"schedule (a shard whose part of the search is empty)."

// paramFlag collects repeated NAME=VALUE flags.
type paramFlag map[string]uint64

func (p paramFlag) String() string {
	var parts []string
	for k, v := range p {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (p paramFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want NAME=VALUE, got %q", kv)
		}
		n, err := strconv.ParseUint(strings.ReplaceAll(v, "_", ""), 0, 64)
		if err != nil {
			return fmt.Errorf("param %s: %v", k, err)
		}
		p[k] = n
	}
	return nil
}

func cmdExplore(env *cmdEnv, args []string) int {
	fs := newFlags(env, "explore")
	budget := fs.Int64("budget", 0, "schedules to run, counted over all shards (bounded: a cap on this shard's)")
	dur := fs.Duration("time", 0, "stop exploring after this long (e.g. 30s, 5m)")
	strategy := fs.String("strategy", explore.Random, "search strategy: random, pct or bounded")
	shard := fs.String("shard", "", "i/n: run part i (0-based) of n disjoint parts")
	outDir := fs.String("o", "explore-out", "output directory")
	all := fs.Bool("all", false, "keep going after the first violation and minimise every distinct one")
	seed := fs.Uint64("seed", 1, "base seed of the random and pct schedules")
	plan := fs.Bool("inject-plan", false, "follow the scenario's [[inject]] plan (by default exploration ignores it)")
	inject := fs.String("inject", "nmi,timer", "what the strategies inject: nmi, timer, nmi,timer or none")
	params := paramFlag{}
	fs.Var(params, "param", "NAME=VALUE: override a scenario param (repeatable; small values make small instances)")
	quantum := fs.Uint("quantum", 0, "steps per decision: random: the largest (default: varied per schedule); pct: every quantum (default 1); bounded: the round-robin quantum (default 64)")
	rate := fs.Float64("rate", 0, "random: NMI and timer rate each, per step (default: varied per schedule)")
	depth := fs.Int("depth", 0, "pct: d, the bug depth (d-1 priority change points; default 3)")
	injections := fs.Int("injections", 0, "pct: injections per schedule (default: varied; -1: none)")
	bound := fs.Int("bound", 0, "bounded: k, the most deviations from round robin (default 1)")
	only := fs.String("only", "", "comma-separated analyzer ids (default all but unmatched, which judges the scenario's plan, not the protocol: "+strings.Join(slices.DeleteFunc(analyze.IDs(), func(id string) bool { return id == "unmatched" }), ",")+")")
	maxInsns := fs.Uint64("max-insns", 0, "per-schedule instruction budget before the schedule turns fair, as much again after (default: the scenario's)")
	jobs := fs.Int("j", runtime.NumCPU(), "schedules run in parallel")
	shrinkRuns := fs.Int("shrink-runs", 0, fmt.Sprintf("candidate runs per minimisation (default %d)", explore.DefaultShrinkRuns))
	shrinkTime := fs.Duration("shrink-time", explore.DefaultShrinkTime, "time per minimisation")
	noShrink := fs.Bool("no-shrink", false, "write the failing run as found, without minimising it")
	force := fs.Bool("force", false, "write into a shard directory that holds a previous run's results, replacing them (its violations' traces and reports are removed)")
	quiet := quietFlag(fs)
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageErr(env, fs, "explore: no SCENARIO given")
	case len(pos) > 1:
		return usageErr(env, fs, "explore: one SCENARIO at a time (got %s)", strings.Join(pos, " "))
	case *jobs < 1:
		return usageErr(env, fs, "explore: -j %d: must be at least 1", *jobs)
	case *budget < 0:
		return usageErr(env, fs, "explore: --budget %d: must not be negative", *budget)
	}
	switch {
	case *injections < -1:
		return usageErr(env, fs, "explore: --injections %d: want -1 (none), 0 (varied) or a count", *injections)
	case *depth < 0 || *bound < 0 || *shrinkRuns < 0:
		return usageErr(env, fs, "explore: --depth, --bound and --shrink-runs must not be negative")
	case *shrinkTime < 0 || *dur < 0:
		return usageErr(env, fs, "explore: --time and --shrink-time must not be negative")
	}
	// 0 is these flags' "not given" (their default): given, 0 silently
	// meant the default (--budget 0 ran 1000 schedules, --time 0s ran
	// until the budget, --bound 0 was k = 1).
	switch name := zeroGiven(fs, "budget", "time", "bound", "depth", "quantum", "max-insns", "shrink-runs", "shrink-time"); name {
	case "":
	case "bound":
		return usageErr(env, fs, "explore: --bound 0: k must be at least 1 (round robin alone is one schedule: patchtrace run)")
	default:
		return usageErr(env, fs, "explore: --%s 0: must be positive (leave the flag out for its default)", name)
	}
	switch *strategy {
	case explore.Random, explore.PCT, explore.Bounded:
	default:
		return usageErr(env, fs, "explore: unknown strategy %q (random, pct, bounded)", *strategy)
	}
	if !(*rate >= 0 && *rate < 1) {
		return usageErr(env, fs, "explore: --rate %v: must be in [0, 1)", *rate)
	}
	spec, err := loadScenario(pos[0])
	if err != nil {
		return errorf(env, "explore: %v", err)
	}
	opt := explore.Options{
		Strategy: *strategy, Budget: *budget, Time: *dur, Seed: *seed, All: *all,
		KeepInject: *plan, Params: params, MaxInsns: *maxInsns, Quantum: uint32(*quantum), Rate: *rate,
		Depth: *depth, Injections: *injections, Bound: *bound, Workers: *jobs,
		ShrinkRuns: *shrinkRuns, ShrinkTime: *shrinkTime, NoShrink: *noShrink, OutDir: *outDir,
	}
	switch *inject {
	case "nmi,timer", "timer,nmi", "":
		opt.Inject = explore.InjectNMI | explore.InjectTimer
	case "nmi":
		opt.Inject = explore.InjectNMI
	case "timer":
		opt.Inject = explore.InjectTimer
	case "none":
		opt.NoInject = true
	default:
		return usageErr(env, fs, "explore: --inject %q: want nmi, timer, nmi,timer or none", *inject)
	}
	if *only != "" {
		opt.Analyzers = strings.Split(*only, ",")
		if _, err := analyze.Select(opt.Analyzers); err != nil {
			return usageErr(env, fs, "explore: --only: %v", err)
		}
	}
	if *shard != "" {
		i, n, ok := strings.Cut(*shard, "/")
		si, err1 := strconv.Atoi(i)
		sn, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || sn < 1 || si < 0 || si >= sn {
			return usageErr(env, fs, "explore: --shard %q: want i/n with 0 <= i < n", *shard)
		}
		opt.Shard, opt.Shards = si, sn
	}
	if dir := explore.ShardDir(*outDir, spec.ID, opt.Shard); !*force {
		// A previous run's failing traces would stand beside this
		// run's summary, read as its results (found before any run).
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return errorf(env, "explore: %s holds a previous run's results (%d entries): use another -o, remove it, or --force to replace them", dir, len(ents))
		}
	}
	if opt.Budget == 0 && opt.Time == 0 && opt.Strategy != explore.Bounded {
		opt.Budget = 1000
	}
	// Progress: schedules run, out of the budget when the budget alone
	// ends the search.
	// (random and pct share the budget's indexes among the shards).
	total := int64(0)
	if opt.Time == 0 {
		total = opt.Budget
		if opt.Strategy != explore.Bounded && opt.Shards > 1 {
			total = (opt.Budget - int64(opt.Shard) + int64(opt.Shards) - 1) / int64(opt.Shards)
		}
	}
	meter := startProgress(env, *quiet, progress.Config{Label: "explore " + spec.ID, Unit: "schedules", Total: total})
	if meter != nil {
		opt.Progress, opt.ProgressEvery = exploreProgress(meter), meter.Every()
	}
	defer meter.Done()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := explore.Explore(ctx, spec, opt)
	meter.Done() // the bar is cleared before the results are printed
	if err != nil {
		return errorf(env, "explore %s: %v", spec.ID, err)
	}
	printExplore(env.stdout, res, &opt)
	// A rule of the kept plan that fired in no schedule tested nothing:
	// said, as run says it (check fails it), never silently.
	for _, i := range res.Unfired {
		if res.Spec == nil || i >= len(res.Spec.Inject) {
			continue
		}
		in := res.Spec.Inject[i]
		hit := ""
		if in.Hit != 0 {
			hit = fmt.Sprintf(", hit = %d", in.Hit)
		}
		fmt.Fprintf(env.stderr, "patchtrace: warning: explore %s: [[inject]] %d (kind = %q, cpu = %d, at = %q%s) never fired in any of the %d schedules\n",
			res.Scenario, i+1, in.Kind, in.CPU, in.At, hit, res.Schedules)
	}
	return exploreExit(env, res)
}

// exploreExit is explore's exit status: 1 for a violation; 2 for a search
// interrupted (SIGINT) before its budget or time with none found, which
// says nothing of the schedules it did not run; else 0.
func exploreExit(env *cmdEnv, res *explore.Result) int {
	switch {
	case len(res.Violations) > 0:
		return exitFinding
	case res.Stopped == "canceled":
		fmt.Fprintf(env.stderr, "patchtrace: explore %s: interrupted after %d schedules, before its budget or time: the search is incomplete\n", res.Scenario, res.Schedules)
		return exitError
	case res.Schedules == 0:
		// "0 schedules, no violation" is no verdict.
		fmt.Fprintf(env.stderr, "patchtrace: explore %s: no schedule was run (a shard whose part of the search is empty, or a budget or time that ran none): nothing was explored\n", res.Scenario)
		return exitError
	}
	return exitOK
}

func printExplore(w io.Writer, res *explore.Result, opt *explore.Options) {
	shard := ""
	if res.Shards > 1 {
		shard = fmt.Sprintf(", shard %d/%d", res.Shard, res.Shards)
	}
	plan := "no injection plan"
	if opt.KeepInject {
		plan = "with the injection plan"
	}
	fmt.Fprintf(w, "explore %s: %s%s, seed %d, %s", res.Scenario, res.Strategy, shard, opt.Seed, plan)
	if len(opt.Params) > 0 {
		fmt.Fprintf(w, ", params %s", paramFlag(opt.Params))
	}
	fmt.Fprintf(w, "\n%s; explored in %.1fs (%.1f schedules/s), %.1fs in all\n", res.Summary(), res.Explored.Seconds(),
		float64(res.Schedules)/max(res.Explored.Seconds(), 1e-9), res.Elapsed.Seconds())
	for _, v := range res.Violations {
		fmt.Fprintf(w, "\n%s: schedule %d (%s)\n", v.Target, v.Schedule, v.Desc)
		fmt.Fprintf(w, "  found after %.2fs, %d schedules before it\n", v.Found.Seconds(), v.SchedulesBefore)
		log := v.Decisions
		if v.Minimized != nil {
			log = v.Minimized
			complete := "a fixpoint"
			if !v.Shrink.Complete {
				complete = "its budget (--shrink-runs, --shrink-time), not a fixpoint"
			}
			fmt.Fprintf(w, "  minimised in %d runs (%s): %d -> %d decisions, %d -> %d injections, %d -> %d steps\n", v.Shrink.Runs, complete,
				v.Shrink.DecisionsFrom, v.Shrink.DecisionsTo, v.Shrink.InjectionsFrom, v.Shrink.InjectionsTo, v.Shrink.StepsFrom, v.Shrink.StepsTo)
		}
		if len(log) <= 40 {
			for _, d := range log {
				fmt.Fprintf(w, "    %v\n", d)
			}
		}
		fs := v.MinFindings
		if fs == nil {
			fs = v.Findings
		}
		for _, f := range fs {
			fmt.Fprintf(w, "  %s cpu%d %s: %s\n", f.Analyzer, f.CPU, f.Where, f.Message)
		}
		if v.Trace != "" {
			fmt.Fprintf(w, "  trace:    %s\n  findings: %s\n", v.Trace, v.Report)
		}
	}
	if res.Dir != "" {
		fmt.Fprintf(w, "\nresults: %s (findings.parquet, summary.json)\n", res.Dir)
	}
}

// exploreProgress feeds explore's progress snapshots to m: schedules run,
// and the phase and best violation so far as its note.
func exploreProgress(m *progress.Meter) func(explore.Progress) {
	return func(s explore.Progress) {
		best := s.Best
		if best == "" {
			best = "none yet"
		}
		m.Set(s.Schedules)
		m.Note(fmt.Sprintf("%s, best: %s", s.Phase, best))
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"github.com/patchtrace/patchtrace/internal/memstat"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// benchFigure is one measured figure.
type benchFigure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Detail string  `json:"detail"`
	// CPU is the same rate over the process's CPU time (all threads)
	// instead of wall time: on a loaded host it moves less than Value.
	CPU float64 `json:"cpu_value,omitempty"`
}

// timed runs f and returns its wall time and the process's CPU time.
func timed(f func()) (wall, cpu time.Duration) {
	c0, t0 := cpuTime(), time.Now()
	f()
	return time.Since(t0), cpuTime() - c0
}

// perSec is n/d in millions per second, 0 for a zero d.
func perSec(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}

func cmdBench(env *cmdEnv, args []string) int {
	fs := newFlags(env, "bench")
	iters := fs.Uint64("iters", 1_000_000, "bench-fentry loop iterations (20.5 guest instructions each)")
	asJSON := fs.Bool("json", false, "print JSON")
	dir := fs.String("dir", "", "directory for the temporary trace (default: the system temp dir)")
	noAnalyze := fs.Bool("no-analyze", false, "skip replay+analyze (bench/unicorn/compare.sh sets it: it compares emulation and recording only)")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return usageErr(env, fs, "bench: unexpected argument %q", pos[0])
	}
	if *iters < 1 || *iters > 1<<40 {
		return usageErr(env, fs, "bench: --iters %d: must be 1..2^40", *iters)
	}
	spec, err := loadScenario("bench-fentry")
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	spec.Params["bench_iters"] = *iters
	spec.MaxInsns = 21**iters + 1_000_000 // the workload's own size, not the default budget
	tp, err := loadScenario("text-poke-bp")
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	tmp, err := os.MkdirTemp(*dir, "patchtrace-bench-")
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	defer os.RemoveAll(tmp)

	var figs []benchFigure
	add := func(name string, v float64, unit, detail string) {
		figs = append(figs, benchFigure{Name: name, Value: v, Unit: unit, Detail: detail})
	}
	addRate := func(name string, n uint64, wall, cpu time.Duration, unit, detail string) {
		figs = append(figs, benchFigure{Name: name, Value: perSec(n, wall), Unit: unit, Detail: detail, CPU: perSec(n, cpu)})
	}
	// 1. Emulation only: bench-fentry's one run, and text-poke-bp over
	// seeds 1-10 (one run is ~0.9M instructions, too short to time
	// alone). Only Run is timed, not the setup.
	for _, e := range []struct {
		s    *scenario.Spec
		runs uint64
	}{{spec, 1}, {tp, 10}} {
		var insns uint64
		var wall, cpu time.Duration
		for seed := uint64(1); seed <= e.runs; seed++ {
			m, src, err := emu.Setup(e.s, emu.Options{Seed: seed})
			if err != nil {
				return errorf(env, "bench: %v", err)
			}
			var res emu.Result
			w, c := timed(func() { res = m.Run(src) })
			if res.Stop != emu.StopDone {
				return errorf(env, "bench: %s seed %d stopped: %v %s", e.s.ID, seed, res.Stop, res.Msg)
			}
			insns += res.Insns
			wall += w
			cpu += c
		}
		detail := fmt.Sprintf("%d instructions, recording off", insns)
		if e.runs > 1 {
			detail = fmt.Sprintf("%d instructions in %d runs (seeds 1-%d), recording off", insns, e.runs, e.runs)
		}
		addRate("emulate "+e.s.ID, insns, wall, cpu, "Minstr/s", detail)
	}
	// 2. Emulate and record everything to disk; then the lean trace
	// (instructions and stores, no loads or register deltas: what a
	// code hook plus a memory-write hook see under Unicorn); then
	// text-poke-bp's 4 CPUs.
	path := filepath.Join(tmp, "bench.arrow")
	var rres *record.Result
	var peakRec uint64
	wall, cpu := timed(func() {
		peakRec = memstat.PeakHeap(func() { rres, err = record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}}) })
	})
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	addRate("record bench-fentry", rres.Insns, wall, cpu, "Minstr/s", fmt.Sprintf("%d events to a zstd Arrow file", rres.Events))
	add("trace size per instruction", float64(st.Size())/float64(rres.Insns), "B/insn", fmt.Sprintf("%d bytes", st.Size()))
	add("trace size per event", float64(st.Size())/float64(rres.Events), "B/event", "")
	add("peak heap while recording", float64(peakRec)/(1<<20), "MiB", "")
	for _, r := range []struct {
		name string
		s    *scenario.Spec
		opt  emu.Options
	}{
		{"record bench-fentry --no-loads --no-regs", spec, emu.Options{Seed: 1, NoLoads: true, NoRegs: true}},
		{"record text-poke-bp", tp, emu.Options{Seed: 1}},
	} {
		p := filepath.Join(tmp, "lean.arrow")
		var res *record.Result
		wall, cpu := timed(func() { res, err = record.Run(r.s, p, record.Options{Options: r.opt, Force: true}) })
		if err != nil {
			return errorf(env, "bench: %v", err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return errorf(env, "bench: %v", err)
		}
		addRate(r.name, res.Insns, wall, cpu, "Minstr/s", fmt.Sprintf("%d events, %.2f B/event", res.Events, float64(st.Size())/float64(res.Events)))
	}
	// 3. Replay and analyze with every analyzer.
	if !*noAnalyze {
		var ares *analyze.Result
		var peakAn uint64
		wall, cpu := timed(func() {
			peakAn = memstat.PeakHeap(func() { ares, err = analyze.AnalyzeFile(path, analyze.All()) })
		})
		if err != nil {
			return errorf(env, "bench: %v", err)
		}
		addRate("replay+analyze", ares.Events, wall, cpu, "Mevents/s", "all analyzers")
		add("peak heap while analyzing", float64(peakAn)/(1<<20), "MiB", "")
	}

	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(figs)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "patchtrace %s on %s/%s, %d CPUs (GOMAXPROCS %d)\n\n", version, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tover wall time\tover CPU time\t\n")
	for _, f := range figs {
		c := ""
		if f.CPU > 0 {
			c = fmt.Sprintf("%.2f", f.CPU)
		}
		fmt.Fprintf(tw, "%s\t%.2f %s\t%s\t%s\n", f.Name, f.Value, f.Unit, c, f.Detail)
	}
	tw.Flush()
	fmt.Fprintln(env.stdout, "\nbench-fentry is the loop of scenarios/bench-fentry/bench.S (a fentry-style call per iteration); run the same instruction stream under another emulator to compare Minstr/s (bench/unicorn/compare.sh runs it on libunicorn beside this).")
	return exitOK
}

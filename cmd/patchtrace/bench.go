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
}

func cmdBench(env *cmdEnv, args []string) int {
	fs := newFlags(env, "bench")
	iters := fs.Uint64("iters", 1_000_000, "bench-fentry loop iterations (20.5 guest instructions each)")
	asJSON := fs.Bool("json", false, "print JSON")
	dir := fs.String("dir", "", "directory for the temporary trace (default: the system temp dir)")
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
		figs = append(figs, benchFigure{name, v, unit, detail})
	}
	// 1. Emulation only.
	for _, s := range []*scenario.Spec{spec, tp} {
		m, src, err := emu.Setup(s, emu.Options{Seed: 1})
		if err != nil {
			return errorf(env, "bench: %v", err)
		}
		start := time.Now()
		res := m.Run(src)
		el := time.Since(start)
		if res.Stop != emu.StopDone {
			return errorf(env, "bench: %s stopped: %v %s", s.ID, res.Stop, res.Msg)
		}
		add("emulate "+s.ID, float64(res.Insns)/el.Seconds()/1e6, "Minstr/s", fmt.Sprintf("%d instructions, recording off", res.Insns))
	}
	// 2. Emulate and record everything to disk.
	path := filepath.Join(tmp, "bench.arrow")
	var rres *record.Result
	start := time.Now()
	peakRec := memstat.PeakHeap(func() { rres, err = record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}}) })
	el := time.Since(start)
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	add("record bench-fentry", float64(rres.Insns)/el.Seconds()/1e6, "Minstr/s", fmt.Sprintf("%d events to a zstd Arrow file", rres.Events))
	add("trace size per instruction", float64(st.Size())/float64(rres.Insns), "B/insn", fmt.Sprintf("%d bytes", st.Size()))
	add("trace size per event", float64(st.Size())/float64(rres.Events), "B/event", "")
	add("peak heap while recording", float64(peakRec)/(1<<20), "MiB", "")
	// 3. Replay and analyze with every analyzer.
	var ares *analyze.Result
	start = time.Now()
	peakAn := memstat.PeakHeap(func() { ares, err = analyze.AnalyzeFile(path, analyze.All()) })
	el = time.Since(start)
	if err != nil {
		return errorf(env, "bench: %v", err)
	}
	add("replay+analyze", float64(ares.Events)/el.Seconds()/1e6, "Mevents/s", "all analyzers")
	add("peak heap while analyzing", float64(peakAn)/(1<<20), "MiB", "")

	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(figs)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "patchtrace %s on %s/%s, %d CPUs (GOMAXPROCS %d)\n\n", version, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	for _, f := range figs {
		fmt.Fprintf(tw, "%s\t%.2f %s\t%s\n", f.Name, f.Value, f.Unit, f.Detail)
	}
	tw.Flush()
	fmt.Fprintln(env.stdout, "\nbench-fentry is the loop of scenarios/bench-fentry/bench.S (a fentry-style call per iteration); run the same instruction stream under another emulator to compare Minstr/s.")
	return exitOK
}

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

func cmdRun(env *cmdEnv, args []string) int {
	fs := newFlags(env, "run")
	rf := addRunFlags(fs)
	spec, _, code, done := parseScenarioArgs(env, fs, args)
	if done {
		return code
	}
	if code, bad := rf.check(env, fs); bad {
		return code
	}
	seed := &rf.opt.Seed
	m, src, err := emu.Setup(spec, rf.opt)
	if err != nil {
		return errorf(env, "%v", err)
	}
	counters := m.Image().Counters()
	if len(spec.Report.Counters) > 0 {
		if counters, err = m.Image().ReportCounters(spec.Report.Counters); err != nil {
			return errorf(env, "scenario %s: %v", spec.ID, err)
		}
	}
	start := time.Now()
	res := m.Run(src)
	elapsed := time.Since(start)
	printSummary(env, spec.ID, spec.SeedMail, *seed, m, res, counters, elapsed)
	warnUnfired(env, spec, m)
	return outcomeExit(env, spec, res)
}

// warnUnfired warns about every [[inject]] rule that never raised its
// interrupt: the run was not tested with it (analyze and check report the
// same from the trace as an unmatched finding, and check fails the seed).
func warnUnfired(env *cmdEnv, spec *scenario.Spec, m *emu.Machine) {
	for i, fired := range m.InjectFired() {
		if fired || i >= len(spec.Inject) {
			continue
		}
		in := spec.Inject[i]
		hit := ""
		if in.Hit != 0 {
			hit = fmt.Sprintf(", hit = %d", in.Hit)
		}
		fmt.Fprintf(env.stderr, "patchtrace: warning: [[inject]] %d (kind = %q, cpu = %d, at = %q%s) never fired in this run\n", i+1, in.Kind, in.CPU, in.At, hit)
	}
}

// outcomeExit is the exit status of a run by its outcome: 0 when every
// CPU finished (or an open-ended scenario ran out of budget), 1 when it
// ended on an oops, panic, BUG, the budget or a hang, 2 when the emulator
// could not go on (unsupported instruction, error).
func outcomeExit(env *cmdEnv, spec *scenario.Spec, res emu.Result) int {
	switch check.Ended(spec, res) {
	case check.Finished:
		return exitOK
	case check.Stopped:
		fmt.Fprintf(env.stderr, "patchtrace: run %s incomplete: %s: %s\n", spec.ID, res.Stop, outcomeDetail(res))
		return exitError
	}
	return exitFinding
}

// outcomeDetail is what ended res: the stop message, or the emulator
// error.
func outcomeDetail(res emu.Result) string {
	_, detail := record.Outcome(res)
	return detail
}

// printSummary prints the run's outcome, per-CPU instruction, trap and
// service counts, and counters (the scenario's [report] counters, or by
// default the per-CPU variables named *_calls, *_count, *_ticks).
func printSummary(env *cmdEnv, id, mail string, seed uint64, m *emu.Machine, res emu.Result, counters []emu.Symbol, elapsed time.Duration) {
	w := env.stdout
	fmt.Fprintf(w, "scenario %s (seed mail %s): %d CPUs, seed %d\n", id, mail, m.CPUs(), seed)
	rate := float64(res.Insns) / elapsed.Seconds() / 1e6
	fmt.Fprintf(w, "outcome: %s (%s) after %d instructions, %d decisions, %.2fs (%.1f Minstr/s)\n\n",
		res.Stop, outcomeDetail(res), res.Insns, len(res.Decisions), elapsed.Seconds(), rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CPU\tINSNS\tTRAPS\tSERVICES")
	for i, st := range res.CPUs {
		var traps, svcs []string
		for v, n := range st.Traps {
			if n != 0 {
				traps = append(traps, fmt.Sprintf("%s:%d", emu.Vector(v).Name(), n))
			}
		}
		for s, n := range st.Services {
			if n != 0 {
				svcs = append(svcs, fmt.Sprintf("%s:%d", emu.ServiceID(s), n))
			}
		}
		fmt.Fprintf(tw, "cpu%d\t%d\t%s\t%s\n", i, st.Insns, orDash(strings.Join(traps, " ")), orDash(strings.Join(svcs, " ")))
	}
	tw.Flush()
	if len(counters) == 0 {
		return
	}
	fmt.Fprintln(w, "\nper-CPU counters:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range counters {
		var vals []string
		for c := 0; c < m.CPUs(); c++ {
			v, _ := m.PercpuU64(c, s.Name)
			vals = append(vals, fmt.Sprintf("cpu%d=%d", c, v))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.Name, strings.Join(vals, " "))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runFlags are the flags of the commands that run one scenario.
type runFlags struct{ opt emu.Options }

func addRunFlags(fs *flag.FlagSet) *runFlags {
	rf := &runFlags{}
	fs.Uint64Var(&rf.opt.Seed, "seed", 1, "seed of the random scheduler")
	fs.IntVar(&rf.opt.CPUs, "cpus", 0, "number of CPUs (default: the scenario's)")
	fs.Uint64Var(&rf.opt.MaxInsns, "max-insns", 0, "instruction budget (default: the scenario's max_insns, or 100000000 when it sets none)")
	fs.BoolVar(&rf.opt.NoBudget, "no-budget", false, "run without an instruction or decision budget: the run may never end")
	return rf
}

// addTraceFlags adds the flags that leave optional content out of a
// trace (the metadata says what was left out: patchtrace.recorded).
func addTraceFlags(fs *flag.FlagSet, opt *emu.Options) {
	fs.BoolVar(&opt.NoLoads, "no-loads", false, "record no load events (every data read is one by default); reads of the scenario's return slots are then percpu_read events")
	fs.BoolVar(&opt.NoRegs, "no-regs", false, "record no register deltas (the reg_ columns are null)")
}

// check validates the run flags' values (a usage error exits 64).
func (rf *runFlags) check(env *cmdEnv, fs *flag.FlagSet) (int, bool) {
	switch {
	case rf.opt.CPUs < 0 || rf.opt.CPUs > emu.MaxCPUs:
		return usageErr(env, fs, "%s: --cpus %d: must be 1..%d", fs.Name(), rf.opt.CPUs, emu.MaxCPUs), true
	case rf.opt.NoBudget && rf.opt.MaxInsns != 0:
		return usageErr(env, fs, "%s: --no-budget and --max-insns contradict each other", fs.Name()), true
	}
	if name := zeroGiven(fs, "cpus", "max-insns"); name != "" {
		// 0 is "the scenario's": given, it silently ran the scenario's
		// CPUs or budget (--max-insns 0 is no unbounded run: --no-budget).
		return usageErr(env, fs, "%s: --%s 0: must be positive (leave the flag out for the scenario's; --no-budget runs unbounded)", fs.Name(), name), true
	}
	return 0, false
}

// zeroGiven returns the first of the named flags that was given with its
// type's zero value, which for these flags means "not given" (their
// default), or "".
func zeroGiven(fs *flag.FlagSet, names ...string) string {
	given := ""
	fs.Visit(func(f *flag.Flag) {
		if v := f.Value.String(); given == "" && slices.Contains(names, f.Name) && (v == "0" || v == "0s") {
			given = f.Name
		}
	})
	return given
}

// parseScenarioArgs parses flags and the optional SCENARIO argument and
// loads it (default text-poke-bp); it returns the argument too.
func parseScenarioArgs(env *cmdEnv, fs *flag.FlagSet, args []string) (*scenario.Spec, string, int, bool) {
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return nil, "", code, true
	}
	if len(pos) > 1 {
		return nil, "", usageErr(env, fs, "%s: one SCENARIO at a time (got %s)", fs.Name(), strings.Join(pos, " ")), true
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	spec, err := loadScenario(arg)
	if err != nil {
		return nil, "", errorf(env, "%v", err), true
	}
	return spec, arg, 0, false
}

// scenarioFiles returns the files a scenario argument (a directory or a
// scenario file; none for a built-in) was read from: the scenario file
// and the slice ELF it names.
func scenarioFiles(arg string, spec *scenario.Spec) []string {
	st, err := os.Stat(arg)
	if arg == "" || slices.Contains(builtinIDs(), arg) || err != nil {
		return nil
	}
	dir, file := arg, "scenario.toml"
	if !st.IsDir() {
		dir, file = filepath.Dir(arg), filepath.Base(arg)
	}
	return []string{filepath.Join(dir, file), filepath.Join(dir, filepath.FromSlash(spec.Slice))}
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/patchtrace/patchtrace/record"
	"io"
	"os"
	"strings"
	"syscall"
)

// Exit codes (documented in README.md and the usage text).
const (
	exitOK      = 0
	exitFinding = 1 // analysis found something, or a check did not match
	exitError   = 2 // the command could not do its job
	exitUsage   = 64
)

// version is the tool version, the one recorded in traces: from the build
// information (record.Version).
var version = record.Version()

type command struct {
	name  string
	args  string
	help  string
	run   func(env *cmdEnv, args []string) int
	about string // longer description for "help CMD"
}

type cmdEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"run", "[SCENARIO] [flags]", "run a scenario on the emulated machine and print a summary", cmdRun,
			"Runs SCENARIO (a built-in id, a directory or a scenario.toml; default text-poke-bp)\n" +
				"with recording off and prints what every CPU did: instructions, traps by vector,\n" +
				"native services called, the slice's per-CPU counters (those the scenario lists\n" +
				"under [report] counters = [...], in that order; without it the 8-byte per-CPU\n" +
				"variables named *_calls, *_count or *_ticks), the decision-log length and the\n" +
				"run's outcome (done, oops, panic, bug, budget, hung, unsupported, error).\n" +
				"An [[inject]] rule that never fired is a warning on stderr (check fails it).\n" +
				"Exit status 0 when every CPU finished (outcome done; budget too when the scenario\n" +
				"declares contract.terminates = false), 1 when the run ended on an oops, panic,\n" +
				"BUG, the instruction budget or a hang, 2 when the emulator could not go on\n" +
				"(unsupported: a valid instruction it does not implement; error)."},
		{"record", "[SCENARIO] [-o FILE] [flags]", "run a scenario and record every event into a trace file", cmdRecord,
			"Runs SCENARIO (default text-poke-bp) and records every instruction, memory write,\n" +
				"trap, permission change, serialization, context switch, service call and marker\n" +
				"into a zstd-compressed Arrow IPC file (default SCENARIO-seedN.arrow). The file is\n" +
				"self-contained: it carries the scenario text, the slice ELF, the symbols and the\n" +
				"decision log, and its footer the run's outcome (patchtrace.outcome). It is written\n" +
				"under a temporary name and renamed when complete; an existing file is only\n" +
				"replaced with --force, and never the scenario's own file or slice ELF. See\n" +
				"docs/trace-format.md. Exit status as for run; a run\n" +
				"that stopped on an emulator error keeps its trace."},
		{"inspect", "FILE [--json] [--symbols] [--columns] [--extract-elf FILE [--force]]", "describe a trace: metadata, events per kind and CPU, completeness", cmdInspect,
			"Prints a trace's metadata (scenario, CPUs, seed, quirks, tool version), the run's\n" +
				"outcome and what ended it, the number of events per kind and per CPU, the\n" +
				"decision-log length, the symbol count and whether the file is complete or\n" +
				"truncated (a killed run: every complete batch is still read, and a warning says\n" +
				"where it ends). Files of format versions 1 and 2 have no outcome: a warning says\n" +
				"it is not recorded. --extract-elf FILE also writes the slice ELF the trace carries\n" +
				"(symbols and DWARF line table: for gdb, objdump -d, addr2line); an existing FILE\n" +
				"is replaced only with --force."},
		{"debug", "TRACE [--listen ADDR] [--dir DIR] [--once] [-q]", "serve a recorded run to gdb, with reverse execution (gdb remote protocol)", cmdDebug, debugAbout},
		{"events", "FILE [--cpu LIST] [--task LIST] [--kind LIST] [--sym NAMES] [--from SEQ] [--to SEQ] [--addr ADDR[:LEN]] [--around SEQ[:N]] [--regs] [--src] [--json]", "list a trace's events one per line: instruction, registers, loads and stores (perf script)", cmdEvents, eventsAbout},
		{"export", "FILE [--parquet OUT] [--perfetto OUT] [--force] [--allow-truncated]", "export a trace as zstd Parquet or as a Perfetto trace", cmdExport,
			"--parquet writes the same rows and columns as zstd-compressed Parquet, for\n" +
				"DuckDB, Spark, polars and pandas; the trace metadata is carried over. A truncated\n" +
				"trace (cut short, no footer) is refused with exit status 2: --allow-truncated\n" +
				"exports the events of its complete batches, with a warning.\n" +
				"--perfetto analyzes the trace and writes Perfetto's protobuf trace format\n" +
				"(TrackEvent) for ui.perfetto.dev and Perfetto's trace processor: a track per CPU\n" +
				"with a child track per task, timestamps = sequence numbers (1 ns each); slices for\n" +
				"the function running nested in slices for each trap or interrupt (delivery to\n" +
				"iretq); instants for text_poke writes, per-CPU stores, IPIs, markers and faults;\n" +
				"and one flow per finding through its story events across the CPUs (category\n" +
				"\"finding\"). Give one or both; each file is written whole or not at all.\n" +
				progressHelp},
		{"analyze", "FILE... [--format text|json|sarif|junit] [--only IDS] [--allow-truncated] [-o OUT]", "run the analyzers over traces and report findings", cmdAnalyze,
			"Replays each trace (memory, page permissions, per-CPU context) and runs the\n" +
				"analyzers: missed-call, return-slot, wx, cmc, trap, frame, lifetime, progress, unmatched, regs.\n" +
				"Each finding names the analyzer, CPU, task/context (and every other context the\n" +
				"same finding recurred in), sequence range, rip as symbol+offset and as the\n" +
				"file:line it was built from (the DWARF line table of the ELF the trace carries),\n" +
				"a message, the evidence events and the cross-CPU story around it, with its\n" +
				"causes marked [cause: ...]: the store (any CPU's) each value the failing context\n" +
				"read came from, the text_poke that wrote the bytes it executed, the free or\n" +
				"protect of a page it faulted on, the switches that took a task away (a trace\n" +
				"recorded with --no-loads says the stores read are unknown). --format sarif\n" +
				"writes SARIF 2.1.0 (one rule per analyzer; every result has a region: the\n" +
				"rip's file:line, else the symbol's line in the slice source, else the slice line\n" +
				"of the built-in scenario's scenario.toml, else line 1 of the trace); --format\n" +
				"junit writes per trace a testcase \"run\" (the whole pass) and one per analyzer,\n" +
				"each with its time.\n" +
				"Every output says how the run ended (the outcome the trace records). Only a run\n" +
				"whose CPUs all finished (done) can be clean: an oops, panic or BUG is a trap\n" +
				"finding, the instruction budget or a hang a progress finding (unless the scenario\n" +
				"declares contract.terminates = false and ran out of budget). A run that stopped\n" +
				"on an instruction the emulator does not implement or on an emulator error, and a\n" +
				"truncated trace (analyzed up to its last complete batch), are incomplete: exit\n" +
				"status 2, SARIF executionSuccessful false with an error notification, a JUnit\n" +
				"error on the \"run\" testcase, \"incomplete\" in JSON. --allow-truncated judges a\n" +
				"truncated trace by the events it has (still marked truncated). A run that did not\n" +
				"finish, analyzed with --only leaving out the analyzer that judges its outcome and\n" +
				"with no other finding, is incomplete too; so is a trace whose footer records lost\n" +
				"events or (format version 3) no outcome, whose sequence numbers skip events its\n" +
				"footer does not declare lost (rows filtered out by another tool), or whose\n" +
				"scenario text does not parse (missed-call, return-slot, regs and unmatched\n" +
				"would have no contract to check). So is a result in\n" +
				"which nothing was checked: no event (a trace cut inside its first batch), or\n" +
				"--only naming only analyzers with no rule of the scenario to judge (missed-call\n" +
				"without contract.must_call, unmatched, regs without preserving sites).\n" +
				"Exit status: 0 clean, 1 findings, 2 error or incomplete."},
		{"report", "TRACE... [-o FILE|DIR] [--force] [--allow-truncated]", "write a self-contained HTML timeline of traces and their findings", cmdReport, reportAbout},
		{"check", "[IDS...] [--seeds N] [--format table|json|ktap] [--out DIR [--force]]", "record and analyze built-in scenarios and compare with their expected verdicts", cmdCheck,
			"Runs each scenario (all built-in ones by default) for seeds 1..N with the\n" +
				"analyzers attached in process, and prints one row per scenario: the mailing-list\n" +
				"mail it comes from (MAIL, see docs/background.md), expected verdict,\n" +
				"what the analyzers found (per analyzer, summed over seeds), the seeds' run outcomes\n" +
				"(done, oops, budget, unsupported, error, ...), events and time. Every seed runs,\n" +
				"whatever the others did. A clean scenario must have no finding on any seed; a\n" +
				"finding scenario must meet each expect entry on every seed: an analyzer id needs\n" +
				"a finding of it (others may report too), a table { analyzer, cpu, symbol, line,\n" +
				"count } needs count findings of that analyzer with that cpu, symbol and\n" +
				"file:line, and a list with a table is strict: a finding no entry matches fails\n" +
				"the seed; the output names each expectation not met and each unexpected finding;\n" +
				"a rule of the scenario that never matched (unmatched) fails it whatever it expects; a\n" +
				"seed whose run did not finish is a finding (trap: oops, panic, BUG; progress:\n" +
				"budget, hang) unless the scenario is open-ended, and a seed the emulator stopped\n" +
				"(unsupported instruction, error) fails its row. Each failing seed is listed under\n" +
				"the table with its outcome and its trace (without --out, recorded again into a\n" +
				"temporary directory, named at the end). With --out, every run's trace\n" +
				"(DIR/ID/seedN.arrow), its JSON report (DIR/ID/seedN.json), its HTML timeline\n" +
				"(DIR/ID/seedN.html, as report writes it), DIR/check.json and DIR/index.html\n" +
				"linking every run's page are kept (CI artifacts); DIR must be new or empty unless\n" +
				"--force. The scenarios must have distinct ids (a copy of a built-in needs its own).\n" +
				"--format ktap prints KTAP version 1 as kselftest does (Documentation/dev-tools/\n" +
				"ktap.rst): the plan 1..N, one \"ok N ID\" or \"not ok N ID\" per scenario over an\n" +
				"indented subtest with one result per seed (seedK) and \"#\" diagnostics for a\n" +
				"seed that did not go as expected, and a closing \"# Totals:\" line; --json is\n" +
				"--format json.\n" +
				"The table prints each scenario's row as it finishes (in the order they finish,\n" +
				"-j at a time), then the failing seeds and the summary; JSON and KTAP are printed\n" +
				"whole at the end.\n" + progressHelp +
				"Exit status: 0 all rows as expected, 1 some row differs (kselftest's KSFT_PASS\n" +
				"and KSFT_FAIL), 2 error before any run."},
		{"explore", "SCENARIO [--budget N|--time D] [--strategy random|pct|bounded] [--shard i/n] [-o DIR] [--all]", "search schedules and NMI/IRQ placements for a violation and write the minimal failing trace", cmdExplore, exploreAbout},
		{"replay", "FILE [--verify] [--until SEQ]", "re-execute a recorded run from its trace; verify it event by event or show the state at an event", cmdReplay, replayAbout},
		{"bench", "[--iters N] [--json]", "measure emulation, recording, trace size and analysis on fixed workloads", cmdBench,
			"Prints performance figures for fixed workloads: emulate-only throughput\n" +
				"(bench-fentry, a fentry-hook loop comparable with other emulators, and text-poke-bp),\n" +
				"emulate+record throughput with every event written zstd-compressed to disk, trace\n" +
				"bytes per instruction and per event, replay+analyze throughput with every analyzer,\n" +
				"and peak heap while recording and analyzing. Wall-clock figures: run on an idle\n" +
				"machine and compare medians (go test -bench gives repeatable runs)."},
		{"scenarios", "[--json] [--markdown]", "list the built-in scenarios", cmdScenarios,
			"Lists the built-in scenarios: id, the mailing-list mail it comes from (see\n" +
				"docs/background.md), expected verdict and mechanism."},
		{"build", "DIR... [--out DIR]", "build scenario directories' kernel slices from source and check every instruction", cmdBuild, buildAbout},
		{"new", "DIR --from SCENARIO", "copy a built-in scenario into a new directory to edit", cmdNew, newAbout},
		{"version", "", "print the tool version", cmdVersion, "Prints the tool version."},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &outWriter{w: stdout}
	return out.judge(runCmd(args, stdin, out, stderr), stderr)
}

// outWriter is a command's stdout, remembering the first write error: a
// report printed to a full disk or a closed file is lost, and the command
// must not exit as if it had been delivered (analyze --format sarif >
// full-disk/run.sarif exited 1 or 0, by the verdict, with the SARIF lost).
type outWriter struct {
	w   io.Writer
	err error
}

func (o *outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil && o.err == nil {
		o.err = err
	}
	return n, err
}

// Sync syncs the underlying writer when it can (debug flushes the gdb
// command line it prints).
func (o *outWriter) Sync() error {
	if f, ok := o.w.(interface{ Sync() error }); ok {
		return f.Sync()
	}
	return nil
}

// isOSStdout says whether w writes to the process's stdout.
func isOSStdout(w io.Writer) bool {
	if o, ok := w.(*outWriter); ok {
		w = o.w
	}
	return w == io.Writer(os.Stdout)
}

// judge turns a command's exit code into exitError when its output could
// not be written. A closed pipe (| head) is the reader's choice, not an
// error (events ends quietly on it); a command that already failed said
// why.
func (o *outWriter) judge(code int, stderr io.Writer) int {
	if o.err == nil || errors.Is(o.err, syscall.EPIPE) || code == exitError || code == exitUsage {
		return code
	}
	fmt.Fprintf(stderr, "patchtrace: writing the output: %v\n", o.err)
	return exitError
}

func runCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cmdEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "patchtrace: help: one command at a time (got %s)\n", strings.Join(args[1:], " "))
			return exitUsage
		}
		if len(args) == 2 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run(env, []string{"--help"})
				}
			}
			fmt.Fprintf(stderr, "patchtrace: help: unknown command %q%s\n\n", args[1], didYouMean(args[1], commandNames()))
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	case "-version", "--version", "-V":
		return cmdVersion(env, args[1:])
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(env, args[1:])
		}
	}
	fmt.Fprintf(stderr, "patchtrace: unknown command %q%s\n\n", name, didYouMean(name, commandNames()))
	usage(stderr)
	return exitUsage
}

// commandNames lists the commands' names in table order.
func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "patchtrace — record and analyze live kernel text patching on an emulated SMP x86-64 machine")
	fmt.Fprintln(w, "\nusage: patchtrace COMMAND [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.help)
	}
	fmt.Fprintln(w, "\nRun 'patchtrace COMMAND --help' for a command's flags.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 finding or failed expectation, 2 error, 64 usage error\n(unknown command or flag, bad flag value, wrong arguments).")
}

// newFlags makes a command's FlagSet whose --help prints the command's
// description and flags to stdout.
func newFlags(env *cmdEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var c command
	for _, cc := range commands() {
		if cc.name == name {
			c = cc
		}
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: patchtrace %s %s\n\n%s\n", c.name, c.args, c.about)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args (flags may follow positional arguments) and
// returns the positional ones. done is set with the exit code when the
// command must return immediately (--help or a usage error).
func parseFlags(env *cmdEnv, fs *flag.FlagSet, args []string) (pos []string, code int, done bool) {
	// The flag package prints the usage itself on --help and on a parse
	// error, to its output: silence that, and print it once, here: to stdout
	// for --help, to stderr (after the flag package's message saying what
	// was wrong) for an error.
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(env.stdout)
				usage()
				fs.SetOutput(env.stderr)
				return nil, exitOK, true
			}
			fmt.Fprintf(env.stderr, "run 'patchtrace %s --help' for usage\n", fs.Name())
			return nil, exitUsage, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, false
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageErr reports a bad flag value or argument: the message, then where
// to look, and exit status 64 (every usage error exits 64; errors in the
// work itself exit 2).
func usageErr(env *cmdEnv, fs *flag.FlagSet, format string, a ...any) int {
	errorf(env, format, a...)
	fmt.Fprintf(env.stderr, "run 'patchtrace %s --help' for usage\n", fs.Name())
	return exitUsage
}

func errorf(env *cmdEnv, format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	if !strings.HasPrefix(msg, "patchtrace") {
		msg = "patchtrace: " + msg
	}
	fmt.Fprintln(env.stderr, msg)
	return exitError
}

func cmdVersion(env *cmdEnv, args []string) int {
	fs := newFlags(env, "version")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return usageErr(env, fs, "version: unexpected argument %q", pos[0])
	}
	fmt.Fprintln(env.stdout, "patchtrace", version)
	return exitOK
}

// didYouMean returns `; did you mean "X"?` when one of names is within a
// small edit distance of s (a typo), or "" when none is close enough.
func didYouMean(s string, names []string) string {
	// Close enough: at most a third of the name's bytes changed (at least
	// two edits allowed: a transposition), the nearest name first.
	best, bestD := "", max(2, len(s)/3)+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" || best == s {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/analyze/report"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/progress"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// checkRow and checkSeed are check's rows (internal/check).
type (
	checkRow  = check.Row
	checkSeed = check.Seed
)

func cmdCheck(env *cmdEnv, args []string) int {
	fs := newFlags(env, "check")
	seeds := fs.Int("seeds", 1, "seeds per scenario (1..N)")
	asJSON := fs.Bool("json", false, "print JSON (same as --format json)")
	formatName := fs.String("format", "table", "output: table, json or ktap (KTAP version 1, as kselftest prints)")
	outDir := fs.String("out", "", "write each run's trace and JSON report under this directory (a new or empty one, unless --force)")
	force := fs.Bool("force", false, "with --out: write into a non-empty directory, replacing the files of the same names")
	var traceOpt emu.Options
	addTraceFlags(fs, &traceOpt)
	jobs := fs.Int("j", runtime.NumCPU(), "scenarios run in parallel")
	quiet := quietFlag(fs)
	ids, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	formatSet := false
	fs.Visit(func(f *flag.Flag) { formatSet = formatSet || f.Name == "format" })
	switch *formatName {
	case "table", "ktap":
		if *asJSON && formatSet {
			return usageErr(env, fs, "check: --json and --format %s: pick one", *formatName)
		}
	case "json":
		*asJSON = true
	default:
		return usageErr(env, fs, "check: unknown --format %q (table, json, ktap)", *formatName)
	}
	if *seeds < 1 {
		return usageErr(env, fs, "check: --seeds %d: must be at least 1 (seeds 1..N are run)", *seeds)
	}
	if *jobs < 1 {
		return usageErr(env, fs, "check: -j %d: must be at least 1", *jobs)
	}
	if len(ids) == 0 {
		// The catalog: every built-in scenario except the bench-* workloads.
		for _, id := range builtinIDs() {
			if !strings.HasPrefix(id, "bench-") {
				ids = append(ids, id)
			}
		}
	}
	if *outDir != "" {
		// Fail on an unwritable --out now, with its own error: found only
		// when check.json was written at the end, it surfaced as "no such
		// file or directory" after every run had failed to keep its trace.
		if err := checkOutDir(*outDir, *force); err != nil {
			return errorf(env, "check: --out %s: %v", *outDir, err)
		}
	}
	var specs []*scenario.Spec
	given := map[string]string{} // scenario id -> the argument that named it
	for _, id := range ids {
		s, err := loadScenario(id)
		if err != nil {
			return errorf(env, "check: %v", err)
		}
		// Runs are kept as ID/seedN.arrow (--out, failing seeds): two
		// scenarios of one id would overwrite each other's traces.
		if prev, ok := given[s.ID]; ok {
			return errorf(env, "check: scenario %s given twice (%s and %s): its traces would overwrite each other's; give each copy its own id", s.ID, prev, id)
		}
		given[s.ID] = id
		specs = append(specs, s)
	}
	rows := make([]checkRow, len(specs))
	// Without --out, failing seeds are recorded again into one temporary
	// directory so each has a trace to look at.
	var failOnce sync.Once
	var failPath string
	var failErr error
	failDir := func() (string, error) {
		failOnce.Do(func() { failPath, failErr = os.MkdirTemp("", "patchtrace-check-") })
		return failPath, failErr
	}
	// The table is printed a row at a time, as each scenario finishes
	// (in the order they finish); JSON and KTAP, whole documents, at the
	// end. Progress (seeds judged) goes to stderr.
	var table *checkTable
	if *formatName == "table" && !*asJSON {
		table = newCheckTable(env.stdout, specs)
		table.header()
	}
	meter := startProgress(env, *quiet, progress.Config{Label: "check", Unit: "seeds", Total: int64(len(specs) * *seeds)})
	var printMu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, *jobs)
	for i, s := range specs {
		// Taken here, not in the goroutine: the runs start in the order
		// given (with -j 1, the rows come in that order).
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := checkOne(s, *seeds, *outDir, traceOpt, failDir, func(*checkSeed) { meter.Add(1) })
			// A scenario that could not run at all judged no seed.
			meter.Add(int64(*seeds - len(r.Seeds)))
			rows[i] = r
			if table != nil {
				printMu.Lock()
				meter.Above(func() { table.row(r) })
				printMu.Unlock()
			}
		}()
	}
	wg.Wait()
	meter.Done()
	bad := 0
	for _, r := range rows {
		if !r.OK {
			bad++
		}
	}
	if *outDir != "" {
		js, _ := json.MarshalIndent(rows, "", "  ")
		if err := writeFileAtomic(filepath.Join(*outDir, "check.json"), append(js, '\n')); err != nil {
			return errorf(env, "check: %v", err)
		}
		if err := writeCheckIndex(*outDir, rows); err != nil {
			return errorf(env, "check: %v", err)
		}
	}
	if *formatName == "ktap" {
		writeKTAP(env.stdout, rows, *outDir)
	} else if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
	} else {
		// Every seed that did not go as expected, with its trace.
		for _, r := range rows {
			for _, cs := range r.Seeds {
				if cs.OK {
					continue
				}
				what := fmt.Sprintf("outcome %s", cs.Outcome)
				if cs.Detail != "" {
					what += " (" + cs.Detail + ")"
				}
				if cs.Error != "" {
					what = "error: " + cs.Error
				}
				got := cs.Said()
				trace := cs.Trace
				if trace == "" {
					trace = "none"
				}
				fmt.Fprintf(env.stdout, "%s seed %d: expected %s, got %s; %s; trace %s\n", r.ID, cs.Seed, r.Expect, got, what, trace)
				for _, u := range cs.Unmet {
					fmt.Fprintf(env.stdout, "  not met: %s\n", u)
				}
				for _, u := range cs.Unexpected {
					fmt.Fprintf(env.stdout, "  unexpected: %s\n", u)
				}
			}
		}
		fmt.Fprintf(env.stdout, "\n%d scenario(s), %d seed(s) each: %d as expected, %d not\n", len(rows), *seeds, len(rows)-bad, bad)
		if traceOpt.NoLoads {
			// Each result warns; the table shows no warnings, and a
			// clean row here is weaker than one with loads.
			fmt.Fprintln(env.stdout, "note: --no-loads: lifetime judged only stores and instruction fetches into dead frames and freed memory, not reads")
		}
		switch {
		case *outDir != "":
			fmt.Fprintf(env.stdout, "traces, JSON reports and HTML pages in %s (ID/seedN.arrow, ID/seedN.json, ID/seedN.html; summary check.json, index.html)\n", *outDir)
		case failPath != "":
			fmt.Fprintf(env.stdout, "traces of the failing seeds in %s (no --out: nothing else kept)\n", failPath)
		default:
			fmt.Fprintln(env.stdout, "no traces kept (use --out DIR to keep every run's trace and report)")
		}
	}
	if bad > 0 {
		return exitFinding
	}
	return exitOK
}

// recordRun is record.Run; tests replace it to make a seed's run fail.
var recordRun = record.Run

// checkOne runs and judges spec for seeds 1..n (check.Scenario), its
// traces recorded with traceOpt's NoLoads and NoRegs. A
// failing seed's trace is kept: under outDir, or (without it) recorded
// again, deterministically, under failDir(). With outDir, each seed's
// JSON report and timeline page are written next to its trace.
func checkOne(spec *scenario.Spec, n int, outDir string, traceOpt emu.Options, failDir func() (string, error), seedDone func(*checkSeed)) checkRow {
	opt := check.ScenarioOptions{Seeds: n, Record: recordRun, SeedDone: seedDone, NoLoads: traceOpt.NoLoads, NoRegs: traceOpt.NoRegs}
	if outDir != "" {
		opt.TracePath = func(id string, seed uint64) (string, error) {
			dir := filepath.Join(outDir, id)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return "", err
			}
			return filepath.Join(dir, fmt.Sprintf("seed%d.arrow", seed)), nil
		}
		opt.Written = writeSeedReports
	} else {
		opt.FailPath = func(id string, seed uint64) (string, error) {
			dir, err := failDir()
			if err != nil {
				return "", err
			}
			path := filepath.Join(dir, id, fmt.Sprintf("seed%d.arrow", seed))
			return path, os.MkdirAll(filepath.Dir(path), 0o755)
		}
	}
	return check.Scenario(spec, opt)
}

// writeSeedReports writes a seed's JSON report and timeline page next to
// its trace.
func writeSeedReports(spec *scenario.Spec, cs *checkSeed, ar *analyze.Result) error {
	cs.Report = strings.TrimSuffix(cs.Trace, ".arrow") + ".json"
	var b strings.Builder
	analyze.WriteJSON(&b, []*analyze.Result{ar})
	if err := writeFileAtomic(cs.Report, []byte(b.String())); err != nil {
		return err
	}
	// The timeline page: read from the trace just written, judged
	// against the scenario's expectation.
	d, err := report.Build(cs.Trace, ar, report.Options{})
	if err != nil {
		return err
	}
	var page bytes.Buffer
	if err := report.WriteHTML(&page, d); err != nil {
		return err
	}
	cs.HTML = strings.TrimSuffix(cs.Trace, ".arrow") + ".html"
	return writeFileAtomic(cs.HTML, page.Bytes())
}

// checkTable prints check's table a row at a time, as each scenario
// finishes. The columns' widths are fixed before the first row: from the
// scenarios' ids, mails and expectations, and the usual widths of the
// others (a wider cell pushes the rest of its row right, two spaces on).
type checkTable struct {
	w      io.Writer
	widths [8]int // SCENARIO MAIL EXPECT GOT FINDINGS OUTCOMES EVENTS TIME; then the mark
}

func newCheckTable(w io.Writer, specs []*scenario.Spec) *checkTable {
	t := &checkTable{w: w, widths: [8]int{len("SCENARIO"), len("MAIL"), len("EXPECT"), len("incomplete"), 20, 10, 9, 6}}
	for _, s := range specs {
		t.widths[0] = max(t.widths[0], len(s.ID))
		t.widths[1] = max(t.widths[1], len(s.SeedMail))
		t.widths[2] = max(t.widths[2], len(s.Expect.String()))
	}
	t.widths[3] = max(t.widths[3], t.widths[2]) // GOT is usually what was expected
	return t
}

func (t *checkTable) line(cells [8]string, mark string) {
	var b strings.Builder
	for i, c := range cells {
		fmt.Fprintf(&b, "%-*s  ", t.widths[i], c)
	}
	b.WriteString(mark)
	fmt.Fprintln(t.w, strings.TrimRight(b.String(), " "))
}

func (t *checkTable) header() {
	t.line([8]string{"SCENARIO", "MAIL", "EXPECT", "GOT", "FINDINGS", "OUTCOMES", "EVENTS", "TIME"}, "")
}

func (t *checkTable) row(r checkRow) {
	mark := "ok"
	if !r.OK {
		mark = "MISMATCH"
		if r.Error != "" {
			mark = "ERROR: " + r.Error
		}
	}
	t.line([8]string{r.ID, r.Mail, r.Expect, r.Got, countString(r.Findings), countString(r.Outcomes),
		fmt.Sprint(r.Events), fmt.Sprintf("%.1fs", r.Seconds)}, mark)
}

func countString(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// checkWritableDir creates dir if needed and checks that a file can be
// created in it.
// checkOutDir makes sure dir can take check's output: it is created when
// missing; an existing one must be empty unless force (files of the same
// names are then replaced, others left alone); and it must be writable.
func checkOutDir(dir string, force bool) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 && !force {
		return fmt.Errorf("directory is not empty (%d entries): use --force to write into it, replacing the files of the same names", len(ents))
	}
	return checkWritableDir(dir)
}

func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".check-probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeCheckIndex writes DIR/index.html: every seed of every row, linked
// to its timeline page.
func writeCheckIndex(dir string, rows []checkRow) error {
	var runs []report.Index
	for _, r := range rows {
		for _, cs := range r.Seeds {
			got := cs.Got()
			outcome := cs.Outcome
			if cs.Error != "" {
				outcome = "error: " + cs.Error
			}
			link := ""
			if cs.HTML != "" {
				if rel, err := filepath.Rel(dir, cs.HTML); err == nil {
					link = filepath.ToSlash(rel)
				}
			}
			n := 0
			for _, k := range cs.Findings {
				n += k
			}
			runs = append(runs, report.Index{Scenario: r.ID, Seed: cs.Seed, Report: link, Expect: r.Expect, Got: got, Outcome: outcome, OK: cs.OK, Findings: n})
		}
	}
	var b bytes.Buffer
	if err := report.WriteIndex(&b, "patchtrace check", runs); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "index.html"), b.Bytes())
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

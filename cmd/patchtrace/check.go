package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/analyze/report"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// checkRow is one scenario's outcome over its seeds.
type checkRow struct {
	ID       string         `json:"id"`
	Mail     string         `json:"seed_mail"` // the mailing-list mail of docs/background.md
	Expect   string         `json:"expect"`
	Got      string         `json:"got"`
	OK       bool           `json:"ok"`
	Findings map[string]int `json:"findings_by_analyzer"` // summed over seeds
	Outcomes map[string]int `json:"outcomes"`             // seeds per run outcome
	Seeds    []checkSeed    `json:"seeds"`
	Events   uint64         `json:"events"`
	Seconds  float64        `json:"seconds"`
	Error    string         `json:"error,omitempty"`
}

type checkSeed struct {
	Seed uint64 `json:"seed"`
	// Outcome is how the run ended (done, oops, budget, unsupported, ...;
	// "" when the seed could not run at all), Detail what ended it.
	Outcome string `json:"outcome"`
	Detail  string `json:"outcome_detail,omitempty"`
	// Verdict is the analysis verdict (clean, findings, incomplete) and
	// Incomplete why, for an incomplete one.
	Verdict    string         `json:"verdict"`
	Incomplete string         `json:"incomplete,omitempty"`
	OK         bool           `json:"ok"` // as the scenario expects
	Findings   map[string]int `json:"findings_by_analyzer"`
	Events     uint64         `json:"events"`
	Trace      string         `json:"trace,omitempty"`
	Report     string         `json:"report,omitempty"`
	HTML       string         `json:"html,omitempty"`  // the timeline page (report)
	Error      string         `json:"error,omitempty"` // the seed could not be run or analyzed
}

func cmdCheck(env *cmdEnv, args []string) int {
	fs := newFlags(env, "check")
	seeds := fs.Int("seeds", 1, "seeds per scenario (1..N)")
	asJSON := fs.Bool("json", false, "print JSON (same as --format json)")
	formatName := fs.String("format", "table", "output: table, json or ktap (KTAP version 1, as kselftest prints)")
	outDir := fs.String("out", "", "write each run's trace and JSON report under this directory (a new or empty one, unless --force)")
	force := fs.Bool("force", false, "with --out: write into a non-empty directory, replacing the files of the same names")
	jobs := fs.Int("j", runtime.NumCPU(), "scenarios run in parallel")
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
	for _, id := range ids {
		s, err := loadScenario(id)
		if err != nil {
			return errorf(env, "check: %v", err)
		}
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
	var wg sync.WaitGroup
	sem := make(chan struct{}, *jobs)
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = checkOne(s, *seeds, *outDir, failDir)
		}()
	}
	wg.Wait()
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
		tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCENARIO\tMAIL\tEXPECT\tGOT\tFINDINGS\tOUTCOMES\tEVENTS\tTIME\t")
		for _, r := range rows {
			mark := "ok"
			if !r.OK {
				mark = "MISMATCH"
				if r.Error != "" {
					mark = "ERROR: " + r.Error
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1fs\t%s\n", r.ID, r.Mail, r.Expect, r.Got, countString(r.Findings), countString(r.Outcomes), r.Events, r.Seconds, mark)
		}
		tw.Flush()
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
				got := verdict(cs.Findings)
				if cs.Incomplete != "" {
					got = "incomplete: " + cs.Incomplete
				}
				trace := cs.Trace
				if trace == "" {
					trace = "none"
				}
				fmt.Fprintf(env.stdout, "%s seed %d: expected %s, got %s; %s; trace %s\n", r.ID, cs.Seed, r.Expect, got, what, trace)
			}
		}
		fmt.Fprintf(env.stdout, "\n%d scenario(s), %d seed(s) each: %d as expected, %d not\n", len(rows), *seeds, len(rows)-bad, bad)
		switch {
		case *outDir != "":
			fmt.Fprintf(env.stdout, "traces and JSON reports in %s (ID/seedN.arrow, ID/seedN.json; summary check.json)\n", *outDir)
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

// checkOne records and analyzes spec for seeds 1..n, in process. Every
// seed runs, whatever the others did; a seed fails the row when its
// verdict does not match the expectation, when its run is incomplete (the
// emulator stopped on an unsupported instruction or an error), or when it
// could not run at all. A failing seed's trace is kept: under outDir, or
// (without it) recorded again, deterministically, under failDir().
func checkOne(spec *scenario.Spec, n int, outDir string, failDir func() (string, error)) (row checkRow) {
	row = checkRow{ID: spec.ID, Mail: spec.SeedMail, Expect: spec.Expect.String(), Findings: map[string]int{}, Outcomes: map[string]int{}}
	start := time.Now()
	defer func() { row.Seconds = time.Since(start).Seconds() }()
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		row.Error = err.Error()
		return row
	}
	verdicts := map[string]bool{}
	row.OK = true
	for seed := uint64(1); seed <= uint64(n); seed++ {
		cs := runSeed(spec, img, seed, outDir)
		if !cs.OK && cs.Trace == "" && cs.Outcome != "" {
			if dir, err := failDir(); err == nil {
				path := filepath.Join(dir, spec.ID, fmt.Sprintf("seed%d.arrow", seed))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
					if _, err := recordRun(spec, path, record.Options{Options: emu.Options{Seed: seed}, Force: true}); err == nil || fileExists(path) {
						cs.Trace = path
					}
				}
			}
		}
		row.Events += cs.Events
		for id, k := range cs.Findings {
			row.Findings[id] += k
		}
		outcome := cs.Outcome
		if outcome == "" {
			outcome = "error"
		}
		row.Outcomes[outcome]++
		got := verdict(cs.Findings)
		if cs.Verdict == analyze.VerdictIncomplete || cs.Error != "" {
			got = "incomplete"
		}
		verdicts[got] = true
		if !cs.OK {
			row.OK = false
		}
		row.Seeds = append(row.Seeds, cs)
	}
	var gots []string
	for g := range verdicts {
		gots = append(gots, g)
	}
	sort.Strings(gots)
	row.Got = strings.Join(gots, " | ")
	return row
}

// runSeed records and analyzes one seed.
func runSeed(spec *scenario.Spec, img *emu.Image, seed uint64, outDir string) (cs checkSeed) {
	cs = checkSeed{Seed: seed, Findings: map[string]int{}}
	fail := func(err error) checkSeed {
		cs.Error, cs.OK = err.Error(), false
		return cs
	}
	cfg, _, err := emu.ConfigFor(spec, emu.Options{Seed: seed})
	if err != nil {
		return fail(err)
	}
	md := record.Meta(spec, img, cfg.CPUs, seed)
	live, err := analyze.NewLive(&md, analyze.All())
	if err != nil {
		return fail(err)
	}
	path := ""
	if outDir != "" {
		dir := filepath.Join(outDir, spec.ID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		path = filepath.Join(dir, fmt.Sprintf("seed%d.arrow", seed))
	}
	// A run the emulator stopped (error, unsupported) still returns its
	// result, and its outcome reached the analyzers: it is judged below.
	res, err := recordRun(spec, path, record.Options{Options: emu.Options{Seed: seed}, Force: true, Tee: live})
	if res == nil {
		return fail(err)
	}
	if path != "" {
		cs.Trace = path
	}
	ar := live.Finish()
	ar.File = path
	cs.Outcome, cs.Detail = record.Outcome(res.Result)
	cs.Verdict, cs.Incomplete, cs.Events = ar.Verdict, ar.Incomplete, res.Events
	for _, f := range ar.Findings {
		cs.Findings[f.Analyzer]++
	}
	cs.OK = ar.Verdict != analyze.VerdictIncomplete && matches(spec.Expect, cs.Findings)
	if outDir != "" {
		cs.Report = strings.TrimSuffix(path, ".arrow") + ".json"
		var b strings.Builder
		analyze.WriteJSON(&b, []*analyze.Result{ar})
		if err := writeFileAtomic(cs.Report, []byte(b.String())); err != nil {
			return fail(err)
		}
		// The timeline page: read from the trace just written, judged
		// against the scenario's expectation.
		d, err := report.Build(path, ar, report.Options{Expect: spec.Expect.String()})
		if err != nil {
			return fail(err)
		}
		var page bytes.Buffer
		if err := report.WriteHTML(&page, d); err != nil {
			return fail(err)
		}
		cs.HTML = strings.TrimSuffix(path, ".arrow") + ".html"
		if err := writeFileAtomic(cs.HTML, page.Bytes()); err != nil {
			return fail(err)
		}
	}
	return cs
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// verdict is "clean" or the analyzers that reported, sorted.
func verdict(f map[string]int) string {
	if len(f) == 0 {
		return "clean"
	}
	var ids []string
	for id := range f {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// matches: a clean expectation needs no finding at all; a finding
// expectation needs every expected analyzer to report (others may too: a
// corrupted return often ends in an oops the trap analyzer also reports).
func matches(e scenario.Expect, f map[string]int) bool {
	if e.Clean() {
		return len(f) == 0
	}
	for _, id := range e.Findings {
		if f[id] == 0 {
			return false
		}
	}
	return true
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
			got := verdict(cs.Findings)
			if cs.Verdict == analyze.VerdictIncomplete || cs.Error != "" {
				got = "incomplete"
			}
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

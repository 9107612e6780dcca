package main

import (
	"encoding/json"
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
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// checkRow is one scenario's outcome over its seeds.
type checkRow struct {
	ID       string         `json:"id"`
	Seed     string         `json:"seed_mail"`
	Expect   string         `json:"expect"`
	Got      string         `json:"got"`
	OK       bool           `json:"ok"`
	Findings map[string]int `json:"findings_by_analyzer"` // summed over seeds
	Seeds    []checkSeed    `json:"seeds"`
	Events   uint64         `json:"events"`
	Seconds  float64        `json:"seconds"`
	Error    string         `json:"error,omitempty"`
}

type checkSeed struct {
	Seed     uint64         `json:"seed"`
	Stop     string         `json:"stop"`
	Findings map[string]int `json:"findings_by_analyzer"`
	Events   uint64         `json:"events"`
	Trace    string         `json:"trace,omitempty"`
	Report   string         `json:"report,omitempty"`
}

func cmdCheck(env *cmdEnv, args []string) int {
	fs := newFlags(env, "check")
	seeds := fs.Int("seeds", 1, "seeds per scenario (1..N)")
	asJSON := fs.Bool("json", false, "print JSON")
	outDir := fs.String("out", "", "write each run's trace and JSON report under this directory")
	jobs := fs.Int("j", runtime.NumCPU(), "scenarios run in parallel")
	ids, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if *seeds < 1 || *jobs < 1 {
		fs.Usage()
		return exitUsage
	}
	if len(ids) == 0 {
		// The catalog: every built-in scenario except the bench-* workloads.
		for _, id := range builtinIDs() {
			if !strings.HasPrefix(id, "bench-") {
				ids = append(ids, id)
			}
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
	var wg sync.WaitGroup
	sem := make(chan struct{}, *jobs)
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = checkOne(s, *seeds, *outDir)
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
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
	} else {
		tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCENARIO\tSEED\tEXPECT\tGOT\tFINDINGS\tEVENTS\tTIME\t")
		for _, r := range rows {
			mark := "ok"
			if !r.OK {
				mark = "MISMATCH"
				if r.Error != "" {
					mark = "ERROR: " + r.Error
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%.1fs\t%s\n", r.ID, r.Seed, r.Expect, r.Got, countString(r.Findings), r.Events, r.Seconds, mark)
		}
		tw.Flush()
		fmt.Fprintf(env.stdout, "\n%d scenario(s), %d seed(s) each: %d as expected, %d not\n", len(rows), *seeds, len(rows)-bad, bad)
	}
	if bad > 0 {
		return exitFinding
	}
	return exitOK
}

// checkOne records and analyzes spec for seeds 1..n, in process.
func checkOne(spec *scenario.Spec, n int, outDir string) (row checkRow) {
	row = checkRow{ID: spec.ID, Seed: spec.SeedMail, Expect: spec.Expect.String(), Findings: map[string]int{}}
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
		cfg, _, err := emu.ConfigFor(spec, emu.Options{Seed: seed})
		if err != nil {
			row.Error, row.OK = err.Error(), false
			return row
		}
		md := record.Meta(spec, img, cfg.CPUs, seed)
		live, err := analyze.NewLive(&md, analyze.All())
		if err != nil {
			row.Error, row.OK = err.Error(), false
			return row
		}
		cs := checkSeed{Seed: seed, Findings: map[string]int{}}
		path := ""
		if outDir != "" {
			dir := filepath.Join(outDir, spec.ID)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				row.Error, row.OK = err.Error(), false
				return row
			}
			path = filepath.Join(dir, fmt.Sprintf("seed%d.arrow", seed))
			cs.Trace = path
		}
		res, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: seed}, Force: true, Tee: live})
		if err != nil {
			row.Error, row.OK = err.Error(), false
			return row
		}
		ar := live.Finish()
		ar.File = path
		cs.Stop, cs.Events = res.Stop.String(), res.Events
		row.Events += res.Events
		for _, f := range ar.Findings {
			cs.Findings[f.Analyzer]++
			row.Findings[f.Analyzer]++
		}
		if outDir != "" {
			cs.Report = strings.TrimSuffix(path, ".arrow") + ".json"
			var b strings.Builder
			analyze.WriteJSON(&b, []*analyze.Result{ar})
			if err := writeFileAtomic(cs.Report, []byte(b.String())); err != nil {
				row.Error, row.OK = err.Error(), false
				return row
			}
		}
		got := verdict(cs.Findings)
		verdicts[got] = true
		if !matches(spec.Expect, cs.Findings) {
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

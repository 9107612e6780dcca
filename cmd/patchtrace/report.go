package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/analyze/report"
	"github.com/patchtrace/patchtrace/internal/progress"
)

const reportAbout = "Analyzes each trace (as analyze does) and writes one self-contained HTML page per\n" +
	"trace (no network: the viewer is embedded) with a per-CPU timeline: x is the\n" +
	"global sequence number, one lane per CPU and a sub-lane per task; function spans,\n" +
	"trap/IRQ/NMI nesting as stacked bands, text_poke writes, IPIs and scenario\n" +
	"markers as marks, and the int3 window of every patch site shaded across all\n" +
	"lanes. Each finding is drawn on it: its story events linked across CPUs in story\n" +
	"order, the story beside it; clicking an event shows its row. The page opens on\n" +
	"the first finding. It also shows the run's outcome, scenario, seed, decision\n" +
	"count and the verdict against the scenario's expected one. The whole run is\n" +
	"embedded as a per-bucket summary and full rows only around the findings, so the\n" +
	"file stays within a few MB on any trace.\n" +
	"One trace: -o FILE (default TRACE with .html). Several: -o DIR gets one page per\n" +
	"trace and an index.html. Files are written whole or not at all.\n" + progressHelp +
	"Exit status: 0 clean, 1 findings, 2 error or an incomplete run or trace (the\n" +
	"page is still written and says so), 64 usage error."

// analyzeFile is analyze.AnalyzeFile, for report and export; tests wrap
// it to hold a job open.
var analyzeFile = analyze.AnalyzeFile

func cmdReport(env *cmdEnv, args []string) int {
	fs := newFlags(env, "report")
	out := fs.String("o", "", "output: an HTML file for one trace, a directory for several")
	force := fs.Bool("force", false, "replace existing output files")
	allowTrunc := fs.Bool("allow-truncated", false, "judge a truncated trace by the events it has (default: it is incomplete, exit status 2)")
	quiet := quietFlag(fs)
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) == 0 {
		return usageErr(env, fs, "report: no trace given")
	}
	if len(pos) > 1 && *out == "" {
		return usageErr(env, fs, "report: %d traces need -o DIR", len(pos))
	}
	if len(pos) == 1 && *out != "" {
		// One trace's page is a file: an existing directory there was
		// refused after the analysis, with "exists (use --force)", which
		// --force did not get past.
		if st, err := os.Stat(*out); err == nil && st.IsDir() {
			return usageErr(env, fs, "report: -o %s is a directory: one trace's page is -o FILE (-o DIR is for several traces)", *out)
		}
	}
	if len(pos) > 1 {
		seen := map[string]string{}
		for _, tr := range pos {
			base := strings.TrimSuffix(filepath.Base(tr), filepath.Ext(tr))
			if strings.EqualFold(base, "index") {
				// Its page would be replaced by the index written last.
				return usageErr(env, fs, "report: %s would write the page index.html, which is the index of the pages (rename the trace)", tr)
			}
			if prev, dup := seen[base]; dup {
				return usageErr(env, fs, "report: %s and %s would write the same page %s.html", prev, tr, base)
			}
			seen[base] = tr
		}
	}
	if *out != "" {
		if err := refuseInput(*out, pos...); err != nil {
			return errorf(env, "report: -o: %v", err)
		}
	}
	var opts []analyze.Option
	if *allowTrunc {
		opts = append(opts, analyze.AllowTruncated())
	}
	type page struct {
		path string
		data []byte
		idx  report.Index
	}
	var pages []page
	findings, incomplete := 0, 0
	meter := startProgress(env, *quiet, progress.Config{Label: "report", Unit: "traces", Total: int64(len(pos))})
	defer meter.Done()
	for _, tr := range pos {
		meter.Note(tr)
		res, err := analyzeFile(tr, analyze.All(), opts...)
		if err != nil {
			return meterErr(env, meter, "report: %v", err)
		}
		d, err := report.Build(tr, res, report.Options{})
		if err != nil {
			return meterErr(env, meter, "report: %v", err)
		}
		var b bytes.Buffer
		if err := report.WriteHTML(&b, d); err != nil {
			return meterErr(env, meter, "report: %v", err)
		}
		dst := *out
		switch {
		case len(pos) > 1:
			dst = filepath.Join(*out, strings.TrimSuffix(filepath.Base(tr), filepath.Ext(tr))+".html")
		case dst == "":
			dst = strings.TrimSuffix(tr, filepath.Ext(tr)) + ".html"
		}
		if res.Incomplete != "" {
			incomplete++
			meter.Above(func() { fmt.Fprintf(env.stderr, "patchtrace: report: %s: incomplete: %s\n", tr, res.Incomplete) })
		}
		findings += len(res.Findings)
		ok := d.Match != nil && *d.Match
		meter.Add(1)
		pages = append(pages, page{dst, b.Bytes(), report.Index{Scenario: d.Scenario, Seed: d.Seed, Report: filepath.Base(dst),
			Expect: d.Expect, Got: d.Got, Outcome: d.Outcome, OK: ok, Findings: len(res.Findings)}})
	}
	meter.Done() // the work is done: what remains is writing the pages
	if len(pos) > 1 {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return meterErr(env, meter, "report: -o %s: %v", *out, err)
		}
		var b bytes.Buffer
		var idx []report.Index
		for _, p := range pages {
			idx = append(idx, p.idx)
		}
		report.WriteIndex(&b, "patchtrace reports", idx)
		pages = append(pages, page{path: filepath.Join(*out, "index.html"), data: b.Bytes()})
	}
	for _, p := range pages {
		if !*force {
			if _, err := os.Lstat(p.path); err == nil {
				return meterErr(env, meter, "report: %s exists (use --force to replace it)", p.path)
			}
		}
		// A trace named x.html (its default page) or kept in -o DIR.
		if err := refuseInput(p.path, pos...); err != nil {
			return meterErr(env, meter, "report: %v", err)
		}
	}
	for _, p := range pages {
		if err := writeFileAtomic(p.path, p.data); err != nil {
			return meterErr(env, meter, "report: %v", err)
		}
		fmt.Fprintf(env.stdout, "wrote %s (%d bytes)\n", p.path, len(p.data))
	}
	if incomplete > 0 {
		return exitError
	}
	if findings > 0 {
		return exitFinding
	}
	return exitOK
}

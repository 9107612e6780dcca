package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCommand: report writes one page per trace (an index for
// several), says what it wrote, exits like analyze, and never replaces a
// file without --force.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: %d %s", code, errs)
	}
	code, out, errs := runCLI(t, "report", trace)
	page := filepath.Join(dir, "t.html")
	if code != exitFinding || !strings.Contains(out, "wrote "+page) {
		t.Fatalf("report: exit %d, %q %q", code, out, errs)
	}
	b, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(b), `id="pt-data"`) || !strings.Contains(string(b), `"expect":"missed-call"`) {
		t.Fatalf("page: %v %.300s", err, b)
	}
	if code, _, errs := runCLI(t, "report", trace); code != exitError || !strings.Contains(errs, "exists") {
		t.Errorf("second report without --force: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "report", trace, trace); code != exitUsage || !strings.Contains(errs, "-o DIR") {
		t.Errorf("two traces without -o: exit %d %q", code, errs)
	}
	// A truncated trace: the page is written, says so, and the exit
	// status is 2 (never a clean-looking page with status 0).
	full, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.arrow")
	if err := os.WriteFile(cut, full[:len(full)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "report", cut)
	cutPage, _ := os.ReadFile(filepath.Join(dir, "cut.html"))
	if code != exitError || !strings.Contains(errs, "incomplete") || !strings.Contains(string(cutPage), `"incomplete":"the trace is truncated`) || !strings.Contains(string(cutPage), `"match":false`) {
		t.Errorf("truncated trace: exit %d %q; page has the reason: %v", code, errs, strings.Contains(string(cutPage), "truncated"))
	}
	junk := filepath.Join(dir, "junk.arrow")
	os.WriteFile(junk, []byte("not a trace"), 0o644)
	if code, _, errs := runCLI(t, "report", junk); code != exitError || !strings.Contains(errs, "junk.arrow") || fileExists(filepath.Join(dir, "junk.html")) {
		t.Errorf("junk: exit %d %q", code, errs)
	}
	named := filepath.Join(dir, "named.html")
	if code, _, errs := runCLI(t, "report", trace, "-o", named); code != exitFinding || !fileExists(named) {
		t.Errorf("report -o FILE: %d %s", code, errs)
	}
	outDir := filepath.Join(dir, "pages")
	if code, _, errs := runCLI(t, "report", "-o", outDir, trace, trace); code != exitUsage || !strings.Contains(errs, "same page") {
		t.Errorf("report of one trace twice: %d %s", code, errs)
	}
	// A trace named index.*: its page would be index.html, which the
	// index written after it replaced (report said "wrote DIR/index.html"
	// twice and the trace's page was lost).
	index := filepath.Join(dir, "index.arrow")
	if err := os.WriteFile(index, full, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "report", "-o", outDir, index, trace); code != exitUsage || !strings.Contains(errs, "index.html") || fileExists(outDir) {
		t.Errorf("report of a trace named index.arrow with another: %d %s", code, errs)
	}
	other := filepath.Join(dir, "u.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", other); code != exitOK {
		t.Fatalf("record: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "report", "-o", outDir, trace, other); code != exitFinding {
		t.Errorf("report -o DIR two traces: %d %s", code, errs)
	}
	for _, f := range []string{"t.html", "u.html", "index.html"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestCheckOutPages: check --out writes every run's HTML page and an
// index linking them, and names the page in check.json.
func TestCheckOutPages(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := runCLI(t, "check", "ftrace-int3-skip", "--out", dir); code != exitOK {
		t.Fatalf("check: %d %s %s", code, out, errs)
	}
	js, err := os.ReadFile(filepath.Join(dir, "check.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []checkRow
	if err := json.Unmarshal(js, &rows); err != nil || len(rows) != 1 || len(rows[0].Seeds) != 1 {
		t.Fatalf("check.json: %v %s", err, js)
	}
	page := rows[0].Seeds[0].HTML
	if page != filepath.Join(dir, "ftrace-int3-skip", "seed1.html") {
		t.Errorf("html %q", page)
	}
	b, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(b), `"match":true`) {
		t.Errorf("page: %v", err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil || !strings.Contains(string(idx), `href="ftrace-int3-skip/seed1.html"`) {
		t.Errorf("index: %v %s", err, idx)
	}
}

// TestReportOutputDir: one trace with -o naming an existing directory is
// a usage error that says what -o wants, before any analysis; it said
// "exists (use --force to replace it)", then refused with --force too.
func TestReportOutputDir(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "--max-insns", "2000", "-o", trace); code != exitOK && code != exitFinding {
		t.Fatalf("record: %s", errs)
	}
	for _, force := range []bool{false, true} {
		args := []string{"report", trace, "-o", dir}
		if force {
			args = append(args, "--force")
		}
		code, out, errs := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errs, "is a directory") || strings.Contains(errs, "--force to") || strings.Contains(out, "wrote") {
			t.Errorf("report -o DIR (force %v): exit %d, stdout %q, stderr %q", force, code, out, errs)
		}
	}
}

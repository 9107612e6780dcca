package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/analyze/report"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// recordTrace records a built-in scenario (params overridden) into dir.
func recordTrace(t *testing.T, dir, id string, seed uint64, params map[string]uint64) string {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	if params != nil {
		spec.MaxInsns = 0 // the budget is sized for the default params
	}
	for k, v := range params {
		spec.Params[k] = v
	}
	path := filepath.Join(dir, id+".arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: seed}, Force: true}); err != nil {
		t.Fatal(err)
	}
	return path
}

func build(t *testing.T, path string) (*analyze.Result, *report.Data, []byte) {
	t.Helper()
	res, err := analyze.AnalyzeFile(path, analyze.All())
	if err != nil {
		t.Fatal(err)
	}
	d, err := report.Build(path, res, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, d); err != nil {
		t.Fatal(err)
	}
	return res, d, b.Bytes()
}

// TestBuildFindingTrace checks what the page is drawn from on a trace with
// a missed call: every finding's story events are kept in full (a click
// shows their row), the int3 windows of the patch sites are found, and
// the verdict is set against the scenario's expectation.
func TestBuildFindingTrace(t *testing.T) {
	path := recordTrace(t, t.TempDir(), "ftrace-int3-skip", 1, nil)
	res, d, page := build(t, path)
	if len(res.Findings) == 0 || len(d.Findings) != len(res.Findings) {
		t.Fatalf("findings: result %d, report %d", len(res.Findings), len(d.Findings))
	}
	kept := map[uint64]bool{}
	for _, w := range d.Detail {
		for _, r := range w.Rows {
			kept[r[0].(uint64)] = true
		}
	}
	for i, f := range d.Findings {
		if len(f.Events) < 2 {
			t.Errorf("finding %d: %d story events", i, len(f.Events))
		}
		for _, e := range f.Events {
			if !kept[e.Seq] {
				t.Errorf("finding %d: story event seq %d not kept in full", i, e.Seq)
			}
		}
	}
	// Each finding carries its source line into the page (the cards say
	// "at lp_fn1 (lib/ftrace/sites.fentry.c:22)").
	for i, f := range d.Findings {
		if !strings.HasPrefix(f.Source, "lib/ftrace/sites.fentry.c:") || !bytes.Contains(page, []byte(`"source":"`+f.Source+`"`)) {
			t.Errorf("finding %d at %s: source %q not in the page", i, f.Where, f.Source)
		}
	}
	if len(d.Windows) == 0 {
		t.Error("no int3 window found on a trace of text_poke_bp patching")
	}
	for _, w := range d.Windows {
		if w.SeqHi <= w.SeqLo || !strings.Contains(w.Site, "lp_fn") {
			t.Errorf("int3 window %+v", w)
		}
	}
	if d.Expect != "missed-call" || d.Match == nil || !*d.Match || d.Got != "missed-call" {
		t.Errorf("verdict: expect %q got %q match %v", d.Expect, d.Got, d.Match)
	}
	if len(d.Pokes) == 0 || len(d.Tasks) != d.CPUs {
		t.Errorf("%d pokes, %d CPU task lists for %d CPUs", len(d.Pokes), len(d.Tasks), d.CPUs)
	}
	// Self-contained: nothing is loaded from anywhere (the SVG namespace
	// is a name, not a load).
	page = bytes.ReplaceAll(page, []byte("http://www.w3.org/2000/svg"), nil)
	if m := regexp.MustCompile(`(?i)<(link|img|iframe)\b|<script[^>]*\bsrc=|https?://`).Find(page); m != nil {
		t.Errorf("the page refers to something outside it: %q", m)
	}
}

// TestReportInChromium opens the report of a finding trace in headless
// Chromium: the page's self-check (run with #selfcheck) must see one lane
// per CPU, every finding drawn, each of its events clickable and showing
// its row, and no script or console error. A screenshot is kept under
// $PATCHTRACE_ARTIFACTS (or the test's temporary directory).
func TestReportInChromium(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("chromium not installed (Debian package chromium; test.sh installs it): the report is not opened in a browser")
	}
	dir := t.TempDir()
	path := recordTrace(t, dir, "ftrace-int3-skip", 1, nil)
	_, d, page := build(t, path)
	html := filepath.Join(dir, "report.html")
	if err := os.WriteFile(html, page, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + filepath.Join(dir, "profile"), "--virtual-time-budget=10000"}
	out, err := exec.Command(browser, append(args, "--dump-dom", "file://"+html+"#selfcheck")...).Output()
	if err != nil {
		t.Fatalf("%s --dump-dom: %v", browser, err)
	}
	// A folded finding's card names every context it hit, as the text
	// header does (ftrace-int3-skip's missed calls happen on every CPU).
	for _, f := range d.Findings {
		if len(f.Contexts) > 1 && !strings.Contains(string(out), "also on "+strings.Join(f.Contexts[1:], ", ")) {
			t.Errorf("no card names the other contexts of %s at %s (%q)", f.Analyzer, f.Where, f.Contexts)
		}
	}
	m := regexp.MustCompile(`<pre id="pt-selfcheck">([^<]*)</pre>`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the page did not run its self-check (a script error?); DOM:\n%.2000s", out)
	}
	var sc struct {
		Lanes, CPUs, Findings, Drawn, Clickable int
		Problems, Errors                        []string
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(m[1]), "&quot;", `"`)), &sc); err != nil {
		t.Fatalf("self-check %s: %v", m[1], err)
	}
	t.Logf("self-check: %+v", sc)
	if sc.Lanes != d.CPUs || sc.CPUs != d.CPUs {
		t.Errorf("%d lanes for %d CPUs", sc.Lanes, d.CPUs)
	}
	if sc.Findings != len(d.Findings) || sc.Findings == 0 || sc.Drawn != sc.Findings || sc.Clickable != sc.Findings {
		t.Errorf("findings %d (want %d), drawn %d, clickable %d: %q", sc.Findings, len(d.Findings), sc.Drawn, sc.Clickable, sc.Problems)
	}
	if len(sc.Errors) > 0 || len(sc.Problems) > 0 {
		t.Errorf("errors %q, problems %q", sc.Errors, sc.Problems)
	}
	shots := os.Getenv("PATCHTRACE_ARTIFACTS")
	if shots == "" {
		shots = dir
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(shots, "report-ftrace-int3-skip.png")
	if err := exec.Command(browser, append(args, "--hide-scrollbars", "--window-size=1600,1000", "--screenshot="+png, "file://"+html)...).Run(); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", png, err)
	}
	t.Logf("screenshot: %s", png)
}

// TestReportSizeBound: the report of a ~10M-event trace of the
// ftrace-int3-skip race (some 2M text_poke writes, hundreds of int3
// windows, findings) stays under 10 MB: the run is summarised per bucket,
// and full rows and marks are capped.
func TestReportSizeBound(t *testing.T) {
	if testing.Short() {
		t.Skip("records and reads a 10M-event trace")
	}
	path := recordTrace(t, t.TempDir(), "ftrace-int3-skip", 1, map[string]uint64{"rounds": 1650})
	res, d, page := build(t, path)
	if res.Events < 10_000_000 {
		t.Fatalf("only %d events", res.Events)
	}
	t.Logf("%d events -> %d bytes", res.Events, len(page))
	if len(page) > 10<<20 {
		t.Errorf("report of %d events is %d bytes, over 10 MB", res.Events, len(page))
	}
	if len(res.Findings) == 0 || len(d.Findings) != len(res.Findings) || len(d.Capped) == 0 {
		t.Errorf("%d findings (report %d), capped %q", len(res.Findings), len(d.Findings), d.Capped)
	}
	if d.Summary.Buckets != 4096 || d.Events != res.Events {
		t.Errorf("summary of %d buckets over %d events (analysis saw %d)", d.Summary.Buckets, d.Events, res.Events)
	}
}

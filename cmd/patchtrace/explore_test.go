package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/internal/progress"
)

// TestExploreThenReplay is the "done when", on a small instance:
// explore finds the finding from a random start and writes a minimised
// trace; analyze confirms it; replay --verify passes; replay --until
// prints the state.
func TestExploreThenReplay(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "explore", "ftrace-int3-skip", "--param", "rounds=4", "--budget", "50", "-o", dir, "-q")
	if code != exitFinding || !strings.Contains(out, "violation: missed-call") {
		t.Fatalf("explore: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("%s", out)
	traces, _ := filepath.Glob(filepath.Join(dir, "scenario=ftrace-int3-skip", "shard=0", "*.arrow"))
	if len(traces) != 1 {
		t.Fatalf("traces: %v", traces)
	}
	trace := traces[0]
	if code, out, errs := runCLI(t, "analyze", trace); code != exitFinding || !strings.Contains(out, "missed-call") {
		t.Fatalf("analyze: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "replay", trace, "--verify")
	if code != exitOK || !strings.HasPrefix(out, "verified: ") || !strings.Contains(out, " events identical") {
		t.Fatalf("replay --verify: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "replay", trace, "--until", "100")
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("replay --until: output does not end with a newline: %q", out[max(0, len(out)-80):])
	}
	for _, want := range []string{"state after 101 events", "reconstructed from the trace", "cpu0  task 0  depth 0  rip pt_start", "rsp ffffc90000004000", "stack:", "must_call sites:", "lp_fn1"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("replay --until: exit %d, no %q in\n%s\n%s", code, want, out, errs)
		}
	}
	var sum explore.Summary
	js, err := os.ReadFile(filepath.Join(dir, "scenario=ftrace-int3-skip", "shard=0", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Violations) != 1 || sum.Violations[0].Target.Analyzer != "missed-call" || len(sum.Violations[0].Decisions) == 0 {
		t.Fatalf("summary.json: %s", js)
	}
	if _, err := os.Stat(filepath.Join(dir, "scenario=ftrace-int3-skip", "shard=0", "findings.parquet")); err != nil {
		t.Fatal(err)
	}
	// Every output is readable by all, like the trace (the JSON and
	// Parquet files were os.CreateTemp's 0600).
	outs, _ := filepath.Glob(filepath.Join(dir, "scenario=ftrace-int3-skip", "shard=0", "*"))
	for _, p := range outs {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v %v, want 0644", p, st.Mode().Perm(), err)
		}
	}
}

func TestExploreBoundedClean(t *testing.T) {
	code, out, errs := runCLI(t, "explore", "text-poke-bp", "--strategy", "bounded", "--bound", "1", "--quantum", "1024",
		"--param", "patch_rounds=1,calls=4,dwell=2", "-o", t.TempDir(), "-q")
	if code != exitOK || !strings.Contains(out, "\nexhausted: ") || !strings.Contains(out, " schedules, no violation") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
}

func TestExploreUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"explore"}, exitUsage, "explore: no SCENARIO given"},
		{[]string{"explore", "text-poke-bp", "--shard", "2/2"}, exitUsage, "--shard"},
		{[]string{"explore", "text-poke-bp", "--strategy", "dfs"}, exitUsage, "unknown strategy"},
		{[]string{"explore", "text-poke-bp", "--inject", "ipi"}, exitUsage, "--inject"},
		{[]string{"explore", "text-poke-bp", "--param", "rounds"}, exitUsage, "NAME=VALUE"},
		{[]string{"explore", "text-poke-bp", "--only", "nope"}, exitUsage, "unknown analyzer"},
		{[]string{"replay"}, exitUsage, "replay: no trace FILE given"},
		{[]string{"replay", "a.arrow", "b.arrow"}, exitUsage, "one trace FILE at a time"},
		{[]string{"replay", "/nonexistent.arrow"}, exitError, "replay"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.msg) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", c.args, code, c.code, c.msg, out, errs)
		}
	}
}

func TestExploreProgressLines(t *testing.T) {
	var b syncBuf
	m := progress.Start(&b, progress.Config{Label: "explore x", Unit: "schedules", Every: time.Millisecond})
	exploreProgress(m)(explore.Progress{Phase: "explore", Schedules: 1234, PerSecond: 56, Best: "cmc in traced_fn (schedule 3)", Elapsed: 2 * time.Second})
	waitFor(t, &b, "best: cmc")
	m.Done()
	if got := b.String(); !strings.Contains(got, "explore x: 1234 schedules, ") || !strings.Contains(got, "; explore, best: cmc in traced_fn (schedule 3)\n") || strings.Contains(got, "\r") {
		t.Fatalf("progress line %q", got)
	}
}

// TestExploreShardsDuckDB writes two shards' findings and has DuckDB read
// them as one Hive-partitioned table (skipped without PATCHTRACE_PYTHON,
// as the other interop tests).
func TestExploreShardsDuckDB(t *testing.T) {
	py := os.Getenv("PATCHTRACE_PYTHON")
	if py == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PATCHTRACE_PYTHON is not set: run the tests through ./test.sh")
		}
		t.Skip("PATCHTRACE_PYTHON not set (./test.sh sets it to the venv's python)")
	}
	dir := t.TempDir()
	for _, shard := range []string{"0/2", "1/2"} {
		code, out, errs := runCLI(t, "explore", "dyn-tramp-wx", "--param", "calls=50,dwell=200", "--budget", "4", "--shard", shard, "-o", dir, "-q")
		if code != exitFinding {
			t.Fatalf("shard %s: exit %d\n%s\n%s", shard, code, out, errs)
		}
	}
	script := `
import sys, duckdb
q = "SELECT count(DISTINCT shard), count(*) FILTER (WHERE minimized), min(decision_count) FILTER (WHERE minimized), any_value(scenario), any_value(analyzer) FROM read_parquet('" + sys.argv[1] + "/**/*.parquet', hive_partitioning = true)"
print(*duckdb.sql(q).fetchall()[0])
`
	res, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, res)
	}
	f := strings.Fields(string(res))
	if len(f) != 5 || f[0] != "2" || f[1] == "0" || f[3] != "dyn-tramp-wx" || f[4] != "wx" {
		t.Fatalf("duckdb answered %q", res)
	}
}

// TestExploreExit: an exploration interrupted (SIGINT) before its budget
// or time, having found nothing, exits 2 and says it is incomplete (it
// exited 0, "no violation", as a finished search does); one that found a
// violation exits 1 however it stopped.
func TestExploreExit(t *testing.T) {
	for _, tc := range []struct {
		stopped    string
		violations int
		want       int
	}{
		{"budget", 0, exitOK},
		{"time", 0, exitOK},
		{"exhausted", 0, exitOK},
		{"canceled", 0, exitError},
		{"canceled", 1, exitFinding},
		{"violation", 1, exitFinding},
	} {
		t.Run(tc.stopped, func(t *testing.T) {
			res := &explore.Result{Scenario: "text-poke-bp", Stopped: tc.stopped, Schedules: 7}
			for range tc.violations {
				res.Violations = append(res.Violations, &explore.Violation{})
			}
			var errb bytes.Buffer
			got := exploreExit(&cmdEnv{stdout: &bytes.Buffer{}, stderr: &errb}, res)
			if got != tc.want {
				t.Fatalf("exit %d, want %d", got, tc.want)
			}
			if tc.want == exitError && !strings.Contains(errb.String(), "interrupted after 7 schedules") {
				t.Errorf("stderr %q does not say the search was interrupted", errb.String())
			}
		})
	}
}

// TestExploreWarnsUnfiredRule: explore --inject-plan says which rule of the
// plan fired in no schedule (it tested nothing), as run does.
func TestExploreWarnsUnfiredRule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-tpb")
	if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
		t.Fatalf("new: %s", errs)
	}
	toml := filepath.Join(dir, "scenario.toml")
	b, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "\n[[inject]]\nkind = \"nmi\"\ncpu = 1\nat = \"patcher_main\"\nhit = 1\n"...) // CPU 1 only calls traced_fn
	if err := os.WriteFile(toml, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "explore", dir, "--inject-plan", "--budget", "2", "--param", "patch_rounds=1,calls=20,dwell=2", "-o", t.TempDir(), "-q")
	if code != exitOK || !strings.Contains(errs, `[[inject]] 1 (kind = "nmi", cpu = 1, at = "patcher_main", hit = 1) never fired in any of the 2 schedules`) {
		t.Errorf("explore: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestExploreNothingExplored: a shard whose part of the search is empty
// ran no schedule: that is no verdict, so it says so and exits 2 (it said
// "0 schedules, no violation", status 0); --bound 0, which read as 1, is a
// usage error.
func TestExploreNothingExplored(t *testing.T) {
	out := t.TempDir()
	code, stdout, errs := runCLI(t, "explore", "text-poke-bp", "--budget", "3", "--shard", "5/10", "-q", "-o", out)
	if code != exitError || !strings.Contains(errs, "nothing was explored") {
		t.Errorf("an empty shard: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	code, _, errs = runCLI(t, "explore", "text-poke-bp", "--strategy", "bounded", "--bound", "0", "--budget", "1", "-q", "-o", out)
	if code != exitUsage || !strings.Contains(errs, "--bound 0") {
		t.Errorf("--bound 0: exit %d, stderr %q", code, errs)
	}
}

// TestExploreStaleResults: a shard directory holding a previous run's
// results is refused before any schedule runs (the failing trace of the
// last run stood beside a new summary saying no violation, and DuckDB's
// DIR/**/*.parquet glob read on); --force replaces them, removing the
// violation files this run does not write.
func TestExploreStaleResults(t *testing.T) {
	dir := t.TempDir()
	shard := filepath.Join(dir, "scenario=text-poke-bp", "shard=0")
	// Too small a budget: every schedule is a progress violation.
	code, out, errs := runCLI(t, "explore", "text-poke-bp", "--budget", "1", "--max-insns", "50", "--no-shrink", "-o", dir, "-q")
	if code != exitFinding {
		t.Fatalf("explore --max-insns 50: exit %d\n%s%s", code, out, errs)
	}
	old, _ := filepath.Glob(filepath.Join(shard, "01-*"))
	if len(old) != 2 {
		t.Fatalf("violation files: %v", old)
	}
	args := []string{"explore", "text-poke-bp", "--budget", "1", "--param", "patch_rounds=1,calls=4,dwell=2", "-o", dir, "-q"}
	code, out, errs = runCLI(t, args...)
	if code != exitError || !strings.Contains(errs, "holds a previous run's results") || !strings.Contains(errs, "--force") || out != "" {
		t.Fatalf("explore into a used shard directory: exit %d, want %d and the directory named:\n%s%s", code, exitError, out, errs)
	}
	code, out, errs = runCLI(t, append(args, "--force")...)
	if code != exitOK || !strings.Contains(out, "no violation") {
		t.Fatalf("explore --force: exit %d\n%s%s", code, out, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(shard, "01-*")); len(left) != 0 {
		t.Errorf("the previous run's violation files are still there beside a summary of no violation: %v", left)
	}
	js, err := os.ReadFile(filepath.Join(shard, "summary.json"))
	if err != nil || !strings.Contains(string(js), `"violations": []`) {
		t.Errorf("summary.json: %v\n%s", err, js)
	}
}

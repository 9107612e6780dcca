package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpForEveryCommand(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := runCLI(t, c.name, "--help")
			if code != exitOK || !strings.Contains(out, "usage: patchtrace "+c.name) {
				t.Fatalf("exit %d, output %q", code, out)
			}
		})
	}
	code, out, _ := runCLI(t, "help")
	if code != exitOK || !strings.Contains(out, "commands:") {
		t.Fatalf("help: exit %d %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "usage: patchtrace COMMAND"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"run", "no-such-scenario"}, exitError, `unknown scenario "no-such-scenario"`},
		{[]string{"run", "--seed", "x"}, exitUsage, "invalid value"},
		{[]string{"inspect"}, exitUsage, "inspect: no trace FILE given"},
		// Usage errors say what was wrong (issue 13), not just the usage.
		{[]string{"check", "--seeds", "0"}, exitUsage, "--seeds 0: must be at least 1"},
		{[]string{"export", "x.arrow"}, exitUsage, "give --parquet OUT, --perfetto OUT or both"},
		{[]string{"export"}, exitUsage, "export: no trace FILE given"},
		{[]string{"analyze"}, exitUsage, "analyze: no trace FILE given"},
		{[]string{"run", "a", "b"}, exitUsage, "one SCENARIO at a time"},
		{[]string{"help", "nosuch"}, exitUsage, `unknown command "nosuch"`},
		{[]string{"help", "chek"}, exitUsage, `did you mean "check"?`},
		{[]string{"run", "text-poke-b"}, exitError, `did you mean "text-poke-bp"?`},
		{[]string{"run", "ftrace-int3-skp"}, exitError, `did you mean "ftrace-int3-skip"?`},
		{[]string{"inspect", "/nonexistent/t.arrow"}, exitError, "/nonexistent/t.arrow"},
		// Bad flag values are usage errors like unknown flags (issue 17).
		{[]string{"analyze", "--only", "nope", "x.arrow"}, exitUsage, `unknown analyzer "nope"`},
		{[]string{"analyze", "--format", "xml", "x.arrow"}, exitUsage, `unknown --format "xml"`},
		{[]string{"version", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"scenarios", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"bench", "--iters", "0"}, exitUsage, "--iters 0"},
		{[]string{"explore", "--injections", "-5", "text-poke-bp"}, exitUsage, "--injections -5"},
		{[]string{"explore", "--depth", "-1", "text-poke-bp"}, exitUsage, "--depth"},
		{[]string{"explore", "--shrink-runs", "-1", "text-poke-bp"}, exitUsage, "--shrink-runs"},
		// 0 is these flags' "not given": given, it silently meant the
		// default (--budget 0 ran 1000 schedules, --time 0s no limit).
		{[]string{"explore", "--budget", "0", "text-poke-bp"}, exitUsage, "--budget 0: must be positive"},
		{[]string{"explore", "--time", "0s", "text-poke-bp"}, exitUsage, "--time 0: must be positive"},
		{[]string{"explore", "--depth", "0", "text-poke-bp"}, exitUsage, "--depth 0: must be positive"},
		{[]string{"explore", "--shrink-time", "0s", "text-poke-bp"}, exitUsage, "--shrink-time 0: must be positive"},
		{[]string{"explore", "--max-insns", "0", "text-poke-bp"}, exitUsage, "--max-insns 0: must be positive"},
		{[]string{"explore", "--bound", "0", "--strategy", "bounded", "text-poke-bp"}, exitUsage, "--bound 0: k must be at least 1"},
		{[]string{"record", "--batch-rows", "-5", "-o", "/nonexistent/x.arrow"}, exitUsage, "--batch-rows -5"},
		{[]string{"run", "--cpus", "65"}, exitUsage, "--cpus 65"},
		{[]string{"run", "--cpus", "-1"}, exitUsage, "--cpus -1"},
		{[]string{"run", "--cpus", "0"}, exitUsage, "--cpus 0: must be positive"},
		{[]string{"record", "--max-insns", "0", "-o", "/nonexistent/x.arrow"}, exitUsage, "--max-insns 0: must be positive"},
		{[]string{"run", "--no-budget", "--max-insns", "5"}, exitUsage, "contradict"},
		{[]string{"explore", "--rate", "NaN", "text-poke-bp"}, exitUsage, "--rate NaN"},
		{[]string{"explore", "--shard", "3/2", "text-poke-bp"}, exitUsage, "--shard"},
		{[]string{"explore", "--only", "bogus", "text-poke-bp"}, exitUsage, `unknown analyzer "bogus"`},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.msg) {
			t.Errorf("%v: exit %d (want %d), output %q %q (want %q)", tc.args, code, tc.code, out, errs, tc.msg)
		}
	}
}

func TestRunSummary(t *testing.T) {
	code, out, errs := runCLI(t, "run", "text-poke-bp", "--seed", "2")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"outcome: done (all CPUs finished)", "cpu3", "#BP:", "text_poke:", "handler_calls", "decisions"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestOutcomeShown: a run that ends on its instruction budget says so in
// run, record and inspect (text and JSON), and does not exit 0.
func TestOutcomeShown(t *testing.T) {
	code, out, errs := runCLI(t, "run", "text-poke-bp", "--max-insns", "3000")
	if code != exitFinding || !strings.Contains(out, "outcome: budget (instruction budget exhausted)") {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	trace := filepath.Join(t.TempDir(), "t.arrow")
	code, out, errs = runCLI(t, "record", "text-poke-bp", "--max-insns", "3000", "-o", trace)
	if code != exitFinding || !strings.Contains(out, "outcome: budget (instruction budget exhausted)") {
		t.Fatalf("record: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "inspect", trace)
	if code != exitOK || !strings.Contains(out, "outcome: budget (instruction budget exhausted)") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "inspect", trace, "--json")
	var rep struct {
		Outcome string `json:"outcome"`
		Detail  string `json:"outcome_detail"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || rep.Outcome != "budget" || rep.Detail != "instruction budget exhausted" {
		t.Fatalf("inspect --json: exit %d %v %+v\n%s", code, err, rep, errs)
	}
	// --columns: each column's stored size, adding up to less than the file.
	code, out, errs = runCLI(t, "inspect", trace, "--columns", "--json")
	var cols struct {
		FileBytes int64 `json:"file_bytes"`
		Columns   []struct {
			Name    string `json:"name"`
			Bytes   int64  `json:"bytes"`
			NonNull int64  `json:"non_null"`
		} `json:"columns"`
	}
	if err := json.Unmarshal([]byte(out), &cols); code != exitOK || err != nil || len(cols.Columns) != format.NumColumns {
		t.Fatalf("inspect --columns --json: exit %d %v, %d columns\n%s", code, err, len(cols.Columns), errs)
	}
	var sum int64
	for _, c := range cols.Columns {
		sum += c.Bytes
	}
	if st, err := os.Stat(trace); err != nil || sum <= 0 || sum >= cols.FileBytes || cols.FileBytes != st.Size() {
		t.Errorf("inspect --columns: columns add up to %d bytes of a %d-byte file (%v)", sum, cols.FileBytes, err)
	}
	code, out, errs = runCLI(t, "inspect", trace, "--columns")
	if code != exitOK || !strings.Contains(out, "COLUMN") || !strings.Contains(out, "reg_rflags") {
		t.Fatalf("inspect --columns: exit %d\n%s%s", code, out, errs)
	}
}

// TestTruncatedTraceAnalyzed cuts a trace at several points: analyze reads
// what is complete, warns, and never panics or loses its output; the
// result is incomplete (exit 2) and says so.
func TestTruncatedTraceAnalyzed(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp-nosync", "-o", trace, "--batch-rows", "4096"); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	full, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	for _, frac := range []float64{0.95, 0.6, 0.3} {
		cut := filepath.Join(dir, "cut.arrow")
		if err := os.WriteFile(cut, full[:int(float64(len(full))*frac)], 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, "analyze", cut, "--format", "json")
		if code != exitError {
			t.Fatalf("cut at %.0f%%: exit %d: %s", frac*100, code, errs)
		}
		var res []struct {
			Truncated bool     `json:"truncated"`
			Warnings  []string `json:"warnings"`
			Events    uint64   `json:"events"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("cut at %.0f%%: %v", frac*100, err)
		}
		if !res[0].Truncated || res[0].Events == 0 || !strings.Contains(strings.Join(res[0].Warnings, " "), "truncated") || !strings.Contains(errs, "truncated") {
			t.Errorf("cut at %.0f%%: %+v, stderr %q", frac*100, res[0], errs)
		}
	}
	// A file that is not a trace.
	junk := filepath.Join(dir, "junk.arrow")
	os.WriteFile(junk, []byte("not a trace at all"), 0o644)
	if code, _, errs := runCLI(t, "analyze", junk); code != exitError || !strings.Contains(errs, "junk.arrow") {
		t.Errorf("junk file: exit %d, %q", code, errs)
	}
}

func TestAnalyzeOutputNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatal(errs)
	}
	out := filepath.Join(dir, "report.sarif")
	os.WriteFile(out, []byte("keep"), 0o644)
	if code, _, _ := runCLI(t, "analyze", trace, "--format", "sarif", "-o", out); code != exitError {
		t.Fatalf("overwrote without --force (exit %d)", code)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Fatal("existing report changed")
	}
	if code, _, errs := runCLI(t, "analyze", trace, "--format", "sarif", "-o", out, "--force"); code != exitOK {
		t.Fatalf("clean trace: exit %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitError {
		t.Fatal("record replaced an existing trace without --force")
	}
}

// TestHelpOnce: --help and help COMMAND print the usage once, to stdout
// (the flag package printed it to stderr as well), and a parse error says
// what was wrong on stderr without repeating the whole usage.
func TestHelpOnce(t *testing.T) {
	for _, args := range [][]string{{"help", "run"}, {"run", "--help"}, {"check", "-h"}, {"help", "export"}} {
		code, out, errs := runCLI(t, args...)
		if code != exitOK || strings.Count(out, "usage: patchtrace") != 1 || errs != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q: want the usage once on stdout, nothing on stderr", args, code, out, errs)
		}
	}
	code, out, errs := runCLI(t, "run", "--nosuchflag")
	if code != exitUsage || out != "" || !strings.Contains(errs, "-nosuchflag") || strings.Contains(errs, "usage: patchtrace") {
		t.Errorf("run --nosuchflag: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestVersionFlag: --version is the version command, not an unknown one.
func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}, {"-version"}} {
		code, out, errs := runCLI(t, args...)
		if code != exitOK || out != "patchtrace "+version+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	names := []string{"check", "explore", "text-poke-bp", "text-poke-bp-nosync"}
	for _, tc := range []struct{ in, want string }{
		{"chekc", "check"},
		{"text-poke-bpp", "text-poke-bp"},
		{"text-poke-bp-nosnc", "text-poke-bp-nosync"},
		{"zzz", ""},
		{"check", ""},
		{"x", ""},
	} {
		got := didYouMean(tc.in, names)
		want := ""
		if tc.want != "" {
			want = "; did you mean \"" + tc.want + "\"?"
		}
		if got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", tc.in, got, want)
		}
	}
}

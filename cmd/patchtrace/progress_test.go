package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// syncBuf is a bytes.Buffer safe for a progress meter's goroutine and the
// test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until b holds want (drawn by a meter's ticker), failing
// after a generous deadline.
func waitFor(t *testing.T, b *syncBuf, want string) {
	t.Helper()
	if !waitUntil(b, want) {
		t.Fatalf("no %q in %q", want, b.String())
	}
}

// waitUntil waits until b holds want, or a generous deadline has passed
// (then false); for goroutines other than the test's.
func waitUntil(b *syncBuf, want string) bool {
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// rowWriter records each write to check's stdout with the number of runs
// recorded so far.
type rowWriter struct {
	mu     sync.Mutex
	runs   *atomic.Int64
	writes []string
	at     []int64
}

func (w *rowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	w.at = append(w.at, w.runs.Load())
	return len(p), nil
}

// TestCheckRowsAsTheyFinish checks that check prints a scenario's row when
// the scenario is done, before the others have run (it printed the whole
// table at the end), and that the final summary still follows.
func TestCheckRowsAsTheyFinish(t *testing.T) {
	var runs atomic.Int64
	orig := recordRun
	defer func() { recordRun = orig }()
	recordRun = func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error) {
		defer runs.Add(1)
		return orig(spec, path, opt)
	}
	ids := []string{"text-poke-bp", "ftrace-int3-skip"}
	w := &rowWriter{runs: &runs}
	code := run(append([]string{"check", "-j", "1", "-q"}, ids...), nil, w, &bytes.Buffer{})
	out := strings.Join(w.writes, "")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	var rowAt []int64
	var order []string
	for i, s := range w.writes {
		for _, id := range ids {
			if strings.HasPrefix(s, id+" ") {
				rowAt = append(rowAt, w.at[i])
				order = append(order, id)
			}
		}
	}
	if len(rowAt) != 2 || rowAt[0] != 1 || rowAt[1] != 2 {
		t.Fatalf("rows printed after %v runs, want one row after each run:\n%s", rowAt, out)
	}
	// -j 1: the scenarios run, and their rows come, in the order given.
	if order[0] != ids[0] {
		t.Errorf("rows in order %v, want %v", order, ids)
	}
	if !strings.HasPrefix(out, "SCENARIO ") || !strings.Contains(out, "\n2 scenario(s), 1 seed(s) each: 2 as expected, 0 not\n") {
		t.Errorf("header or summary:\n%s", out)
	}
	// The columns stay aligned: every row's MAIL starts under the header's.
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[0], "MAIL")
	for _, l := range lines[1:3] {
		if col < 1 || len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("MAIL not at column %d in %q", col, l)
		}
	}
}

// TestProgressOnStderr checks that check, report and export write progress
// lines to stderr (plain lines: a buffer is no terminal) while a job is
// long enough, never to stdout, and nothing with --quiet or -q.
func TestProgressOnStderr(t *testing.T) {
	defer func(e time.Duration) { progressEvery = e }(progressEvery)
	progressEvery = time.Millisecond
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	// The jobs are held open until a progress line is on stderr (or, with
	// --quiet, for some intervals), so a line is due whatever the
	// machine's speed.
	var stderr *syncBuf
	var quiet bool
	hold := func(label string) {
		if quiet {
			time.Sleep(20 * progressEvery)
			return
		}
		waitUntil(stderr, label+": ") // else the line's absence fails the test below
	}
	origRec, origAn := recordRun, analyzeFile
	defer func() { recordRun, analyzeFile = origRec, origAn }()
	recordRun = func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error) {
		hold("check")
		return origRec(spec, path, opt)
	}
	var label string
	analyzeFile = func(path string, as []analyze.Analyzer, opts ...analyze.Option) (*analyze.Result, error) {
		hold(label)
		return origAn(path, as, opts...)
	}
	for _, c := range []struct {
		label string
		args  []string
		want  string
	}{
		{"check", []string{"check", "text-poke-bp"}, "check: 0/1 seeds (0%), "},
		{"report", []string{"report", trace, "-o", filepath.Join(dir, "r.html"), "--force"}, "report: 0/1 traces (0%), "},
		{"export", []string{"export", trace, "--perfetto", filepath.Join(dir, "t.pftrace"), "--force"}, "export: 0 bytes written, "},
	} {
		for _, q := range []string{"", "--quiet", "-q"} {
			t.Run(c.label+q, func(t *testing.T) {
				stderr, quiet, label = &syncBuf{}, q != "", c.label
				var stdout bytes.Buffer
				args := c.args
				if quiet {
					args = append(args[:len(args):len(args)], q)
				}
				if code := run(args, nil, &stdout, stderr); code != exitOK {
					t.Fatalf("exit %d\n%s%s", code, &stdout, stderr)
				}
				errs := stderr.String()
				if strings.Contains(stdout.String(), c.label+": ") {
					t.Errorf("progress on stdout:\n%s", &stdout)
				}
				if quiet != !strings.Contains(errs, c.want) {
					t.Errorf("%s: stderr %q, want a line with %q: %v", q, errs, c.want, !quiet)
				}
				if quiet && errs != "" {
					t.Errorf("%s: stderr %q", q, errs)
				}
			})
		}
	}
}

package analyze_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestNothingCheckedIncomplete: a result in which nothing was judged is
// incomplete, never clean. bench-fentry declares no contract.must_call,
// no [[inject]] and no preserving site, so missed-call, unmatched and
// regs, selected alone (analyze --only), have nothing to check: their
// silence is no verdict. With an analyzer that judges every trace (wx)
// the same selection is clean. A trace cut before its first complete
// batch, analyzed with AllowTruncated, gives the analyzers no event.
func TestNothingCheckedIncomplete(t *testing.T) {
	dir := t.TempDir()
	path, _ := recordFentry(t, dir, 100)
	for _, tc := range []struct {
		ids     []string
		verdict string
		why     string
	}{
		{[]string{"missed-call"}, analyze.VerdictIncomplete, "nothing was checked: missed-call had no rule"},
		{[]string{"missed-call", "unmatched", "regs"}, analyze.VerdictIncomplete, "missed-call, unmatched, regs had no rule"},
		{[]string{"missed-call", "wx"}, analyze.VerdictClean, ""},
	} {
		as, err := analyze.Select(tc.ids)
		if err != nil {
			t.Fatal(err)
		}
		res, err := analyze.AnalyzeFile(path, as)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != tc.verdict || !strings.Contains(res.Incomplete, tc.why) {
			t.Errorf("--only %s: verdict %q (incomplete %q), want %q saying %q", strings.Join(tc.ids, ","), res.Verdict, res.Incomplete, tc.verdict, tc.why)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The longest cut that leaves no complete batch: inside the only
	// batch, past the header (schema, dictionaries, the carried ELF).
	cut := filepath.Join(dir, "cut.arrow")
	for n := len(data) - 1; ; n -= 256 {
		if n <= 0 {
			t.Fatal("no cut of the trace reads as truncated with no complete batch")
		}
		if err := os.WriteFile(cut, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := format.Open(cut)
		if err != nil {
			continue
		}
		empty := r.Truncated() && r.NumBatches() == 0
		r.Close()
		if empty {
			break
		}
	}
	res, err := analyze.AnalyzeFile(cut, analyze.All(), analyze.AllowTruncated())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Events != 0 {
		t.Fatalf("cut trace: truncated %v, %d events: want a truncated trace of no complete batch", res.Truncated, res.Events)
	}
	if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "no event was analyzed") {
		t.Errorf("cut trace with AllowTruncated: verdict %q (incomplete %q), want incomplete: no event was analyzed", res.Verdict, res.Incomplete)
	}
}

// TestSeqGapsIncomplete: sequence numbers count every event of a run, so
// a trace whose numbers skip events its footer does not declare lost
// (patchtrace.dropped) is incomplete: a tool that filtered a trace's
// rows (here every write, which the analyzers and the replayed memory
// need) through the format's own writer, checksums and all, left the
// analyzers a part of the run. The same rewrite keeping every row is
// clean.
func TestSeqGapsIncomplete(t *testing.T) {
	dir := t.TempDir()
	path, _ := recordFentry(t, dir, 100)
	rewrite := func(name string, keep func(*format.Row) bool) string {
		out := filepath.Join(dir, name)
		testkit.RewriteTrace(t, path, out, nil, keep)
		return out
	}
	for _, tc := range []struct {
		name    string
		keep    func(*format.Row) bool
		verdict string
	}{
		{"all", func(*format.Row) bool { return true }, analyze.VerdictClean},
		{"no writes", func(r *format.Row) bool { return r.Kind != format.KindWrite }, analyze.VerdictIncomplete},
		{"no first event", func(r *format.Row) bool { return r.Seq != 0 }, analyze.VerdictIncomplete},
	} {
		res, err := analyze.AnalyzeFile(rewrite(strings.ReplaceAll(tc.name, " ", "-")+".arrow", tc.keep), analyze.All())
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != tc.verdict {
			t.Errorf("%s: verdict %q (incomplete %q), want %q", tc.name, res.Verdict, res.Incomplete, tc.verdict)
		}
		if tc.verdict == analyze.VerdictIncomplete && !strings.Contains(res.Incomplete, "patchtrace.dropped does not declare") {
			t.Errorf("%s: incomplete %q does not name the undeclared gap", tc.name, res.Incomplete)
		}
	}
}

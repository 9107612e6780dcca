package analyze_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// recordWith records bench-fentry (iters iterations) with opt into dir.
func recordWith(t *testing.T, dir, name string, iters uint64, opt emu.Options) string {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		t.Fatal(err)
	}
	spec.Params["bench_iters"] = iters
	path := filepath.Join(dir, name)
	if _, err := record.Run(spec, path, record.Options{Options: opt}); err != nil {
		t.Fatal(err)
	}
	return path
}

// rewriteMeta copies the trace at path to out through the format's own
// writer (checksums and all), every row kept, with its metadata changed
// by edit.
func rewriteMeta(t *testing.T, path, out string, edit func(*format.Meta)) string {
	t.Helper()
	testkit.RewriteTrace(t, path, out, edit, nil)
	return out
}

// TestRecordedClaimIncomplete: the analyzers believe what a trace's
// metadata says it records (patchtrace.recorded): lifetime judges the
// loads, regs the register deltas. A trace recorded with --no-loads (or
// --no-regs) whose metadata was rewritten, through the format's own
// writer, to claim loads (or register deltas) holds completed RETs with
// no load row of the return address they popped (no rsp delta): the
// result is incomplete and names what is missing, not a clean verdict
// over content that is not there. The same rewrite keeping the metadata
// is clean.
func TestRecordedClaimIncomplete(t *testing.T) {
	dir := t.TempDir()
	noLoads := recordWith(t, dir, "no-loads.arrow", 100, emu.Options{Seed: 1, NoLoads: true})
	noRegs := recordWith(t, dir, "no-regs.arrow", 100, emu.Options{Seed: 1, NoRegs: true})
	for _, tc := range []struct {
		name, path string
		edit       func(*format.Meta)
		want       string // in Incomplete; "" for clean
	}{
		{"no-loads kept", noLoads, func(*format.Meta) {}, ""},
		{"no-regs kept", noRegs, func(*format.Meta) {}, ""},
		{"loads claimed", noLoads, func(md *format.Meta) { md.Loads = true },
			`says it holds a load row for every data read, but `},
		{"regs claimed", noRegs, func(md *format.Meta) { md.Regs = true },
			`says it holds register deltas, but `},
	} {
		out := rewriteMeta(t, tc.path, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".arrow"), tc.edit)
		res, err := analyze.AnalyzeFile(out, analyze.All())
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			// Clean with every analyzer and with one that reads
			// neither op nor registers (analyze --only wx): the check
			// decodes what it reads itself.
			wx, err := analyze.AnalyzeFile(out, []analyze.Analyzer{mustSelect(t, "wx")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != analyze.VerdictClean || wx.Verdict != analyze.VerdictClean {
				t.Errorf("%s: verdict %q (incomplete %q), --only wx %q (%q), want clean", tc.name, res.Verdict, res.Incomplete, wx.Verdict, wx.Incomplete)
			}
			continue
		}
		if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "the trace contradicts its metadata") ||
			!strings.Contains(res.Incomplete, tc.want) || !strings.Contains(res.Incomplete, "RETs that completed") {
			t.Errorf("%s: verdict %q (incomplete %q), want incomplete naming %q", tc.name, res.Verdict, res.Incomplete, tc.want)
		}
	}
}

// TestRecordedDenied: the reverse, a trace holding load rows (register
// deltas) whose metadata says it records none. The format's writer
// refuses to write one, so the rows of a trace recorded with both are
// checked (format.RecordedCheck, as AnalyzeFile and inspect check a
// file's) against its metadata with the claim taken back, as another
// tool's file would say: the check names the rows the metadata denies.
func TestRecordedDenied(t *testing.T) {
	path := recordWith(t, t.TempDir(), "full.arrow", 100, emu.Options{Seed: 1})
	for _, tc := range []struct {
		name string
		edit func(*format.Meta)
		want string // "" for no problem
	}{
		{"kept", func(*format.Meta) {}, ""},
		{"loads denied", func(md *format.Meta) { md.Loads = false }, `load rows (the first at seq `},
		{"regs denied", func(md *format.Meta) { md.Regs = false }, `rows with register deltas (the first at seq `},
	} {
		r, err := format.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		md := *r.Meta()
		tc.edit(&md)
		c := format.NewRecordedCheck(&md)
		for row, err := range r.Events() {
			if err != nil {
				t.Fatal(err)
			}
			c.Add(row)
		}
		r.Close()
		got := c.Problem()
		if tc.want == "" && got != "" || tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, "says it records no")) {
			t.Errorf("%s: problem %q, want one naming %q", tc.name, got, tc.want)
		}
	}
}

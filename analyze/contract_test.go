package analyze_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestContractUnreadable: a trace whose scenario text does not parse (a
// key this version does not know, a damaged text) gives the contract
// analyzers nothing to check. A run with missed calls must then
// not come out clean: it is incomplete, and says why. Without the
// contract analyzers selected, nothing depends on the text.
func TestContractUnreadable(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "ftrace-int3-skip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		text    func(string) string
		only    string
		verdict string
	}{
		{"as recorded", func(s string) string { return s }, "", analyze.VerdictFindings},
		{"unknown key", func(s string) string { return s + "\nfuture_key = 1\n" }, "", analyze.VerdictIncomplete},
		{"unknown key, return-slot only", func(s string) string { return s + "\nfuture_key = 1\n" }, "return-slot", analyze.VerdictIncomplete},
		{"unknown key, wx only", func(s string) string { return s + "\nfuture_key = 1\n" }, "wx", analyze.VerdictClean},
		// regs and unmatched read the contract too (preserving sites,
		// [[inject]] and must_call rules): with wx, which judges every
		// trace, their silence was counted clean.
		{"unknown key, regs and wx", func(s string) string { return s + "\nfuture_key = 1\n" }, "regs,wx", analyze.VerdictIncomplete},
		{"unknown key, unmatched and wx", func(s string) string { return s + "\nfuture_key = 1\n" }, "unmatched,wx", analyze.VerdictIncomplete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := record.Meta(spec, img, spec.CPUs, 1)
			md.ScenarioText = tc.text(md.ScenarioText)
			path := filepath.Join(t.TempDir(), "t.arrow")
			f, err := format.CreateFile(path, md, false)
			if err != nil {
				t.Fatal(err)
			}
			m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 1, Sink: record.NewRecorder(f, img)})
			if err != nil {
				t.Fatal(err)
			}
			res := m.Run(src)
			outcome, detail := record.Outcome(res)
			f.SetFinal(format.Final{Decisions: emu.EncodeDecisions(res.Decisions), DecisionsFormat: emu.DecisionsFormat,
				DecisionCount: len(res.Decisions), Outcome: outcome, OutcomeDetail: detail})
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			as := analyze.All()
			if tc.only != "" {
				if as, err = analyze.Select(strings.Split(tc.only, ",")); err != nil {
					t.Fatal(err)
				}
			}
			ar, err := analyze.AnalyzeFile(path, as)
			if err != nil {
				t.Fatal(err)
			}
			if ar.Verdict != tc.verdict {
				t.Fatalf("verdict %q, want %q (incomplete %q, %d findings)", ar.Verdict, tc.verdict, ar.Incomplete, len(ar.Findings))
			}
			if tc.verdict == analyze.VerdictIncomplete && !strings.Contains(ar.Incomplete, "scenario") {
				t.Errorf("incomplete %q does not say the scenario text is unreadable", ar.Incomplete)
			}
		})
	}
}

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

// TestDroppedEventsIncomplete: a trace whose footer says events were lost
// (patchtrace.dropped) is incomplete, not clean: the analyzers did not see
// every event of the run; so is one whose version 3 footer records no
// outcome. The same run with nothing dropped is clean.
func TestDroppedEventsIncomplete(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec.Params = map[string]uint64{"patch_rounds": 2, "calls": 50, "dwell": 4}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		dropped []format.Drop
		blank   bool // the footer's outcome left empty
		verdict string
		why     string
	}{
		{"none dropped", nil, false, analyze.VerdictClean, ""},
		{"dropped", []format.Drop{{AfterSeq: 100, Count: 7}}, false, analyze.VerdictIncomplete, "7 events lost after seq 100"},
		// A version 3 footer always records the outcome: an empty one
		// says nothing of how the run ended.
		{"outcome empty", nil, true, analyze.VerdictIncomplete, "records no outcome"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.arrow")
			f, err := format.CreateFile(path, record.Meta(spec, img, spec.CPUs, 1), false)
			if err != nil {
				t.Fatal(err)
			}
			m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 1, Sink: record.NewRecorder(f, img)})
			if err != nil {
				t.Fatal(err)
			}
			res := m.Run(src)
			outcome, detail := record.Outcome(res)
			if outcome != format.OutcomeDone {
				t.Fatalf("outcome %s (%s)", outcome, detail)
			}
			if tc.blank {
				outcome, detail = "", ""
			}
			f.SetFinal(format.Final{Decisions: emu.EncodeDecisions(res.Decisions), DecisionsFormat: emu.DecisionsFormat,
				DecisionCount: len(res.Decisions), Outcome: outcome, OutcomeDetail: detail, Dropped: tc.dropped})
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			ar, err := analyze.AnalyzeFile(path, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			if ar.Verdict != tc.verdict {
				t.Fatalf("verdict %q, want %q (incomplete %q)", ar.Verdict, tc.verdict, ar.Incomplete)
			}
			if !strings.Contains(ar.Incomplete, tc.why) {
				t.Errorf("incomplete %q does not say %q", ar.Incomplete, tc.why)
			}
		})
	}
}

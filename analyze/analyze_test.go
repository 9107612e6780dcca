package analyze_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/scenarios"
)

// want is an expected finding: analyzer, CPU (-1: any) and the symbol the
// finding's rip is in.
type want struct {
	analyzer string
	cpu      int
	symbol   string
}

// A scenario run for the analyzer tests: the built-in scenario with its
// default params, seed 1, unless the case says otherwise.
type analyzerCase struct {
	id     string
	seed   uint64
	params map[string]uint64
	want   []want // empty: clean
}

var analyzerCases = []analyzerCase{
	{id: "text-poke-bp", seed: 1, params: map[string]uint64{"patch_rounds": 20, "calls": 600}},
	{id: "text-poke-bp-nosync", seed: 1, want: []want{{"cmc", -1, "traced_fn"}}},
	{id: "int3-emulate-ret", seed: 1, params: map[string]uint64{"patch_rounds": 10, "calls": 200}, want: []want{{"missed-call", -1, "traced_fn"}}},
}

// runBoth analyzes one run twice: live, as the machine emits it
// (check.Run), and from the trace file the same run wrote. Both must
// agree.
func runBoth(t *testing.T, c analyzerCase) *analyze.Result {
	t.Helper()
	spec := testkit.Load(t, c.id, c.params)
	path := filepath.Join(t.TempDir(), c.id+".arrow")
	r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: c.seed}, Path: path})
	if err == nil {
		err = r.Run.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	fromDisk, err := analyze.AnalyzeFile(path, analyze.All())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := summary(r.Analysis), summary(fromDisk); a != b {
		t.Fatalf("in-memory and on-disk analyses differ:\n%s\n---\n%s", a, b)
	}
	return fromDisk
}

func summary(r *analyze.Result) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s cpu%d %s %d..%d x%d %s\n", f.Analyzer, f.CPU, f.Where, f.SeqFirst, f.SeqLast, f.Count, f.Message)
	}
	if r.Verdict != analyze.VerdictClean && len(r.Findings) == 0 {
		fmt.Fprintf(&b, "verdict %s (outcome %s: %s)\n", r.Verdict, r.Outcome, r.OutcomeDetail)
	}
	return b.String()
}

func TestAnalyzers(t *testing.T) {
	for _, c := range analyzerCases {
		t.Run(c.id, func(t *testing.T) {
			res := runBoth(t, c)
			if len(c.want) == 0 {
				if len(res.Findings) != 0 {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			for _, w := range c.want {
				found := false
				for _, f := range res.Findings {
					if f.Analyzer == w.analyzer && (w.cpu < 0 || f.CPU == w.cpu) && f.Symbol == w.symbol {
						found = true
						if len(f.Story) == 0 || f.Message == "" || len(f.Evidence) == 0 {
							t.Errorf("finding without story/message/evidence: %+v", f)
						}
					}
				}
				if !found {
					t.Errorf("no %s finding on cpu %d in %s; got:\n%s", w.analyzer, w.cpu, w.symbol, summary(res))
				}
			}
		})
	}
}

// TestRenderers checks the JSON, SARIF and JUnit outputs of a run with a
// finding parse and carry it.
func TestRenderers(t *testing.T) {
	res := runBoth(t, analyzerCases[1])
	if len(res.Findings) == 0 {
		t.Fatal("no finding to render")
	}
	dir := t.TempDir()
	render := func(name string, fn func(*os.File) error) []byte {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, _ := os.ReadFile(p)
		return b
	}
	js := render("r.json", func(f *os.File) error { return analyze.WriteJSON(f, []*analyze.Result{res}) })
	var back []analyze.Result
	if err := json.Unmarshal(js, &back); err != nil || len(back) != 1 || len(back[0].Findings) != len(res.Findings) {
		t.Fatalf("JSON does not round-trip: %v", err)
	}
	junit := render("r.xml", func(f *os.File) error { return analyze.WriteJUnit(f, []*analyze.Result{res}) })
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Text string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit, &suites); err != nil {
		t.Fatalf("JUnit XML does not parse: %v", err)
	}
	if suites.Tests != len(analyze.All())+1 || suites.Failures == 0 {
		t.Fatalf("JUnit: %d tests, %d failures", suites.Tests, suites.Failures)
	}
	loc := analyze.SourceLocator(scenarios.FS)
	sarif := render("r.sarif", func(f *os.File) error { return analyze.WriteSARIF(f, []*analyze.Result{res}, "test", loc) })
	validateSARIF(t, sarif)
	var log struct {
		Runs []struct {
			Properties struct {
				Traces []struct {
					Outcome string `json:"outcome"`
					Verdict string `json:"verdict"`
				} `json:"patchtraceTraces"`
			} `json:"properties"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string } `json:"artifactLocation"`
						Region           *struct{ StartLine int }
					} `json:"physicalLocation"`
				}
			}
		}
	}
	if err := json.Unmarshal(sarif, &log); err != nil {
		t.Fatal(err)
	}
	if tr := log.Runs[0].Properties.Traces; len(tr) != 1 || tr[0].Outcome != "done" || tr[0].Verdict != "findings" {
		t.Errorf("SARIF run properties: %+v", tr)
	}
	r0 := log.Runs[0].Results[0]
	if r0.RuleID != res.Findings[0].Analyzer {
		t.Errorf("SARIF ruleId %q", r0.RuleID)
	}
	pl := r0.Locations[0].PhysicalLocation
	if !strings.HasPrefix(pl.ArtifactLocation.URI, "scenarios/") || pl.Region == nil || pl.Region.StartLine == 0 {
		t.Errorf("SARIF location %+v: want the slice source line of %s", pl, res.Findings[0].Symbol)
	}
}

// TestSelectOnce: an analyzer named twice runs once (two instances folded
// their findings into one, doubling its counts: --only
// missed-call,missed-call said "578 times" for 289 missed calls).
func TestSelectOnce(t *testing.T) {
	as, err := analyze.Select([]string{"missed-call", "wx", "missed-call", "wx"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID())
	}
	if strings.Join(ids, ",") != "missed-call,wx" {
		t.Errorf("Select(missed-call, wx, missed-call, wx) = %v, want [missed-call wx]", ids)
	}
}

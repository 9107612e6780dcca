package analyze_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestSARIFAlwaysHasRegion: every SARIF result has a physical location
// with a region, for findings in the slice sources (located at their
// symbol), for findings no source defines (wx on a module_alloc'ed
// trampoline: the scenario file's slice line) and without a locator (the
// trace, from its start).
func TestSARIFAlwaysHasRegion(t *testing.T) {
	var results []*analyze.Result
	for _, id := range []string{"dyn-tramp-wx", "ftrace-int3-skip"} {
		spec := testkit.Load(t, id, nil)
		res := analyzeRun(t, spec, emu.Options{Seed: 1})
		res.File = id + ".arrow"
		results = append(results, res)
	}
	wx := 0
	for _, f := range results[0].Findings {
		if f.Analyzer == "wx" {
			wx++
		}
	}
	if wx == 0 {
		t.Fatal("dyn-tramp-wx: no wx finding")
	}
	for _, tc := range []struct {
		name     string
		loc      analyze.Locator
		fallback string // the URI of a finding no source places
	}{
		{"source locator", analyze.SourceLocator(scenarios.FS), "scenarios/dyn-tramp-wx/scenario.toml"},
		{"no locator", nil, "dyn-tramp-wx.arrow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := analyze.WriteSARIF(&b, results, "test", tc.loc); err != nil {
				t.Fatal(err)
			}
			validateSARIF(t, b.Bytes())
			var log struct {
				Runs []struct {
					Results []struct {
						RuleID    string `json:"ruleId"`
						Locations []struct {
							PhysicalLocation *struct {
								ArtifactLocation struct{ URI string } `json:"artifactLocation"`
								Region           *struct{ StartLine int }
							} `json:"physicalLocation"`
						}
					}
				}
			}
			if err := json.Unmarshal(b.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			fallback := 0
			for i, r := range log.Runs[0].Results {
				pl := r.Locations[0].PhysicalLocation
				if pl == nil || pl.Region == nil || pl.Region.StartLine < 1 {
					t.Errorf("result %d (%s): no region: %+v", i, r.RuleID, pl)
					continue
				}
				if pl.ArtifactLocation.URI == tc.fallback {
					fallback++
				}
			}
			if fallback == 0 {
				t.Errorf("no result located at %s", tc.fallback)
			}
		})
	}
}

// TestSARIFSourceRegion: a finding is placed at the file:line its rip was
// built from (the line table of the trace's ELF): for a built-in scenario
// the repository's file (scenarios/lib/ftrace/..., at the opening of the
// function the finding is in), for another scenario its own file relative
// to its directory and the rest as staged.
func TestSARIFSourceRegion(t *testing.T) {
	spec := testkit.Load(t, "ftrace-int3-skip", nil)
	res := analyzeRun(t, spec, emu.Options{Seed: 1})
	res.File = "t.arrow"
	mine := &analyze.Result{File: "m.arrow", Scenario: "mine", Verdict: "findings", Findings: []*analyze.Finding{
		{Analyzer: "trap", Severity: "error", Symbol: "f", Where: "f", Source: "mine/patch.c:7"},
		{Analyzer: "trap", Severity: "error", Symbol: "g", Where: "g", Source: "base/traps.c:9"},
	}}
	type region struct {
		uri  string
		line int
	}
	regions := func(loc analyze.Locator, results ...*analyze.Result) []region {
		var b bytes.Buffer
		if err := analyze.WriteSARIF(&b, results, "test", loc); err != nil {
			t.Fatal(err)
		}
		validateSARIF(t, b.Bytes())
		var log struct {
			Runs []struct {
				Results []struct {
					Locations []struct {
						PhysicalLocation struct {
							ArtifactLocation struct{ URI string } `json:"artifactLocation"`
							Region           struct{ StartLine int }
						} `json:"physicalLocation"`
					}
				}
			}
		}
		if err := json.Unmarshal(b.Bytes(), &log); err != nil {
			t.Fatal(err)
		}
		var out []region
		for _, r := range log.Runs[0].Results {
			pl := r.Locations[0].PhysicalLocation
			out = append(out, region{pl.ArtifactLocation.URI, pl.Region.StartLine})
		}
		return out
	}
	got := regions(analyze.SourceLocator(scenarios.FS), res)
	if len(got) == 0 || len(got) != len(res.Findings) {
		t.Fatalf("%d regions for %d findings", len(got), len(res.Findings))
	}
	for i, f := range res.Findings {
		r := got[i]
		if f.Source == "" || !strings.HasPrefix(r.uri, "scenarios/lib/ftrace/") || "scenarios/"+f.Source != fmt.Sprintf("%s:%d", r.uri, r.line) {
			t.Errorf("finding %d (%s at %s, source %q): region %s:%d", i, f.Analyzer, f.Where, f.Source, r.uri, r.line)
			continue
		}
		text, err := fs.ReadFile(scenarios.FS, strings.TrimPrefix(r.uri, "scenarios/"))
		if err != nil {
			t.Fatal(err)
		}
		// gcc places a function's entry at its opening brace, the line
		// after the name.
		if lines := strings.Split(string(text), "\n"); r.line < 2 || r.line > len(lines) || !strings.Contains(lines[r.line-2]+lines[r.line-1], f.Symbol) {
			t.Errorf("finding %d in %s: %s:%d does not define it", i, f.Symbol, r.uri, r.line)
		}
	}
	want := []region{{"patch.c", 7}, {"base/traps.c", 9}}
	for _, loc := range []analyze.Locator{nil, analyze.SourceLocator(scenarios.FS)} {
		if got := regions(loc, mine); !slices.Equal(got, want) {
			t.Errorf("scenario of one's own: regions %v, want %v", got, want)
		}
	}
}

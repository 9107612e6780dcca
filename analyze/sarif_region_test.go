package analyze_test

import (
	"bytes"
	"encoding/json"
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

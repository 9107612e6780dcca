package check_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

func load(t *testing.T, id string) *scenario.Spec {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestVerdictMatches(t *testing.T) {
	clean := scenario.Expect{}
	cmc := scenario.Expect{Findings: []string{"cmc"}}
	for _, c := range []struct {
		name    string
		e       scenario.Expect
		f       map[string]int
		verdict string
		matches bool
	}{
		{"clean as expected", clean, nil, "clean", true},
		{"a finding where clean is expected", clean, map[string]int{"trap": 1}, "trap", false},
		{"the expected finding and another", cmc, map[string]int{"trap": 2, "cmc": 1}, "cmc,trap", true},
		{"another finding only", cmc, map[string]int{"trap": 1}, "trap", false},
		{"clean where a finding is expected", cmc, map[string]int{}, "clean", false},
		// A rule that never matched: the expected finding came from a run
		// that did not test what the scenario says.
		{"the expected finding and an unmatched rule", cmc, map[string]int{"cmc": 1, "unmatched": 1}, "cmc,unmatched", false},
		{"an expected unmatched rule", scenario.Expect{Findings: []string{"unmatched"}}, map[string]int{"unmatched": 1}, "unmatched", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := check.Verdict(c.f); got != c.verdict {
				t.Errorf("Verdict = %q, want %q", got, c.verdict)
			}
			var fs []*analyze.Finding
			for id, n := range c.f {
				for range n {
					fs = append(fs, &analyze.Finding{Analyzer: id})
				}
			}
			if got := check.Matches(c.e, fs); got != c.matches {
				t.Errorf("Matches = %v, want %v", got, c.matches)
			}
		})
	}
}

// TestRunOutcomes: a run is judged by how it ended; a run that did not
// finish is never clean, even with no finding, and never matches a clean
// expectation.
func TestRunOutcomes(t *testing.T) {
	spec := load(t, "text-poke-bp")
	for _, c := range []struct {
		name    string
		src     emu.DecisionSource
		outcome string
		verdict string
	}{
		{"finished", nil, "done", "clean"},
		{"decisions exhausted", &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}}}, "decisions-exhausted", "incomplete"},
		{"emulator error", &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}, {Kind: emu.DecStep, CPU: 99, N: 1}}}, "error", "incomplete"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: 1}, Source: c.src})
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome != c.outcome || r.Verdict() != c.verdict {
				t.Fatalf("outcome %s (%s), verdict %s, want %s, %s", r.Outcome, r.Detail, r.Verdict(), c.outcome, c.verdict)
			}
			if want := c.verdict == "clean"; r.Matches(spec.Expect) != want || r.Complete() != want {
				t.Errorf("Matches %v, Complete %v, want %v", r.Matches(spec.Expect), r.Complete(), want)
			}
			if c.verdict == "incomplete" && r.Analysis.Incomplete == "" {
				t.Errorf("incomplete without a reason")
			}
		})
	}
}

// TestScenarioRow: a row counts every seed's outcome and fails when one
// seed does, the others still running.
func TestScenarioRow(t *testing.T) {
	spec := load(t, "text-poke-bp")
	row := check.Scenario(spec, check.ScenarioOptions{Seeds: 3, Record: func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error) {
		if opt.Seed == 2 {
			opt.Source = &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}}}
		}
		return record.Run(spec, path, opt)
	}})
	if row.OK || row.Outcomes["done"] != 2 || row.Outcomes["decisions-exhausted"] != 1 || len(row.Seeds) != 3 {
		t.Fatalf("row %+v", row)
	}
	if row.Got != "clean | incomplete" {
		t.Errorf("Got %q", row.Got)
	}
	for _, s := range row.Seeds {
		if want := s.Seed != 2; s.OK != want || (s.Verdict == analyze.VerdictIncomplete) == want {
			t.Errorf("seed %d: ok %v verdict %s", s.Seed, s.OK, s.Verdict)
		}
	}
}

// TestSelect: the analyzers that judge how a run ended are always
// selected, so a run that did not finish cannot pass as clean under a
// narrow selection.
func TestSelect(t *testing.T) {
	for _, c := range []struct {
		ids  []string
		want string
	}{
		{nil, strings.Join(analyze.IDs(), ",")},
		{[]string{"cmc"}, "cmc,trap,progress"},
		{[]string{"progress", "wx"}, "progress,wx,trap"},
	} {
		as, err := check.Select(c.ids)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range as {
			got = append(got, a.ID())
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("Select(%v) = %v, want %s", c.ids, got, c.want)
		}
	}
	if _, err := check.Select([]string{"nosuch"}); err == nil {
		t.Error("Select(nosuch): no error")
	}
}

// TestRunNarrowSelectionStillJudgesOutcome: with only cmc asked for, a
// run that ends in an oops (text-poke-bp-early-clear: the int3 is removed
// before the sync, a caller traps) is still a finding, not clean.
func TestRunNarrowSelectionStillJudgesOutcome(t *testing.T) {
	spec := load(t, "text-poke-bp-early-clear")
	as, err := check.Select([]string{"cmc"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: 1}, Analyzers: as})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict() == "clean" || !r.Matches(spec.Expect) {
		t.Errorf("outcome %s (%s): verdict %s, findings %v; want the trap finding the scenario expects", r.Outcome, r.Detail, r.Verdict(), r.Findings)
	}
}

// TestEnded: only a finished run (or an open-ended scenario out of budget)
// is Finished; the emulator stopping is Stopped; every other end, a replay
// that ran out included, is Failed.
func TestEnded(t *testing.T) {
	no := false
	closed, open := &scenario.Spec{}, &scenario.Spec{}
	open.Contract.Terminates = &no
	for _, c := range []struct {
		stop emu.StopReason
		spec *scenario.Spec
		want check.Ending
	}{
		{emu.StopDone, closed, check.Finished},
		{emu.StopBudget, open, check.Finished},
		{emu.StopBudget, closed, check.Failed},
		{emu.StopOops, closed, check.Failed},
		{emu.StopPanic, open, check.Failed},
		{emu.StopBug, closed, check.Failed},
		{emu.StopHung, open, check.Failed},
		{emu.StopDecisions, closed, check.Failed},
		{emu.StopNone, closed, check.Failed},
		{emu.StopUnsupported, closed, check.Stopped},
		{emu.StopError, open, check.Stopped},
	} {
		if got := check.Ended(c.spec, emu.Result{Stop: c.stop}); got != c.want {
			t.Errorf("%v (open-ended %v): %d, want %d", c.stop, c.spec.OpenEnded(), got, c.want)
		}
	}
}

// A seed that could not run (a scenario naming a symbol its slice lacks)
// has no findings: what a failing seed's line says it got must not be
// "clean" (check printed "expected clean, got clean; error: ...").
func TestSeedErrorSaidIncomplete(t *testing.T) {
	for _, s := range []check.Seed{
		{Seed: 1, Error: `task 2: address "no_such_main": no symbol "no_such_main" in the slice`, Findings: map[string]int{}},
		{Seed: 2, Error: "writing the report: disk full", Verdict: analyze.VerdictClean, Findings: map[string]int{}},
	} {
		if got := s.Said(); got != analyze.VerdictIncomplete {
			t.Errorf("seed %d with error %q: Said() = %q, want %q", s.Seed, s.Error, got, analyze.VerdictIncomplete)
		}
		if got := s.Got(); got != analyze.VerdictIncomplete {
			t.Errorf("seed %d: Got() = %q, want %q", s.Seed, got, analyze.VerdictIncomplete)
		}
	}
	s := check.Seed{Incomplete: "the run is incomplete", Findings: map[string]int{}}
	if got := s.Said(); got != "incomplete: the run is incomplete" {
		t.Errorf("Said() = %q", got)
	}
}

// TestScenarioRowBadSlice: a scenario whose slice the machine cannot load
// runs no seed: the row fails, says why, and got is "incomplete" (it was
// empty: "got": "" in JSON, "got ;" in KTAP).
func TestScenarioRowBadSlice(t *testing.T) {
	spec := load(t, "text-poke-bp")
	spec.ELF = []byte("not an ELF")
	row := check.Scenario(spec, check.ScenarioOptions{Seeds: 2})
	if row.OK || row.Error == "" || len(row.Seeds) != 0 || row.Got != analyze.VerdictIncomplete {
		t.Errorf("row: ok %v, error %q, %d seeds, got %q; want a failed row, incomplete", row.OK, row.Error, len(row.Seeds), row.Got)
	}
}

// TestBugExpectedRunEndedEarly: a scenario that expects a bug (here
// missed-call) fails its seed when the run ends before it could show it:
// on its instruction budget (a progress finding is not the expected
// one), on a decision log that runs out, or on an emulator error.
func TestBugExpectedRunEndedEarly(t *testing.T) {
	spec := load(t, "ftrace-int3-skip")
	for _, c := range []struct {
		name    string
		opt     check.Options
		outcome string
	}{
		{"budget", check.Options{Options: emu.Options{Seed: 1, MaxInsns: 5_000}}, "budget"},
		{"decisions exhausted", check.Options{Options: emu.Options{Seed: 1}, Source: &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}}}}, "decisions-exhausted"},
		{"emulator error", check.Options{Options: emu.Options{Seed: 1}, Source: &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}, {Kind: emu.DecStep, CPU: 99, N: 1}}}}, "error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := check.Run(spec, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome != c.outcome {
				t.Fatalf("outcome %s (%s), want %s", r.Outcome, r.Detail, c.outcome)
			}
			if r.Matches(spec.Expect) {
				t.Errorf("a run that ended %s (verdict %s, findings %v) matches expect %s", r.Outcome, r.Verdict(), r.Analysis.Findings, spec.Expect)
			}
		})
	}
}

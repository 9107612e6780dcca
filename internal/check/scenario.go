package check

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// Row is one scenario's outcome over its seeds (one row of check's table
// and JSON).
type Row struct {
	ID       string         `json:"id"`
	Mail     string         `json:"seed_mail"` // the mailing-list mail of docs/background.md
	Expect   string         `json:"expect"`
	Got      string         `json:"got"` // the seeds' verdicts (Seed.Got), distinct, sorted, " | "-separated
	OK       bool           `json:"ok"`
	Findings map[string]int `json:"findings_by_analyzer"` // summed over seeds
	Outcomes map[string]int `json:"outcomes"`             // seeds per run outcome
	Seeds    []Seed         `json:"seeds"`
	Events   uint64         `json:"events"`
	Seconds  float64        `json:"seconds"`
	Error    string         `json:"error,omitempty"`
}

// Seed is one seed's judged run.
type Seed struct {
	Seed uint64 `json:"seed"`
	// Outcome is how the run ended (done, oops, budget, unsupported, ...;
	// "" when the seed could not run at all), Detail what ended it.
	Outcome string `json:"outcome"`
	Detail  string `json:"outcome_detail,omitempty"`
	// Verdict is the analysis verdict (clean, findings, incomplete) and
	// Incomplete why, for an incomplete one.
	Verdict    string         `json:"verdict"`
	Incomplete string         `json:"incomplete,omitempty"`
	OK         bool           `json:"ok"` // as the scenario expects
	Findings   map[string]int `json:"findings_by_analyzer"`
	Events     uint64         `json:"events"`
	Trace      string         `json:"trace,omitempty"`
	Report     string         `json:"report,omitempty"`
	HTML       string         `json:"html,omitempty"`  // the timeline page (report)
	Error      string         `json:"error,omitempty"` // the seed could not be run or analyzed
	// Unmatched are the messages of the unmatched analyzer's findings:
	// which scenario rules never matched (they fail the seed, see Compare).
	Unmatched []string `json:"unmatched,omitempty"`
	// Mismatch says which expectations the findings did not meet and
	// which findings none expected (Compare); empty when they match.
	Mismatch
}

// maxSaid bounds the unexpected findings a failing seed's report lists.
const maxSaid = 8

// Got is the seed's verdict in a word: "incomplete" for a run that cannot
// be judged whole or could not run, else Verdict(Findings).
func (s *Seed) Got() string {
	if s.Verdict == analyze.VerdictIncomplete || s.Error != "" {
		return analyze.VerdictIncomplete
	}
	return Verdict(s.Findings)
}

// Said is the seed's verdict as reported for a seed that failed: why it is
// incomplete, "incomplete" for a seed that could not run or be analyzed
// (Error says why), or Verdict(Findings). A seed with an error has no
// findings: Verdict would call it clean.
func (s *Seed) Said() string {
	if s.Incomplete != "" {
		return "incomplete: " + s.Incomplete
	}
	if s.Error != "" {
		return analyze.VerdictIncomplete
	}
	return Verdict(s.Findings)
}

// ScenarioOptions configure Scenario.
type ScenarioOptions struct {
	// Seeds is how many seeds run: 1..Seeds.
	Seeds int
	// NoLoads and NoRegs leave loads and register deltas out of the
	// runs' traces (emu.Options).
	NoLoads, NoRegs bool
	// TracePath, when set, says where a seed's trace is written ("" for
	// none).
	TracePath func(id string, seed uint64) (string, error)
	// Written, when set, is called for each seed whose trace was written,
	// with its analysis (to write reports next to it, setting
	// Seed.Report and Seed.HTML); an error fails the seed.
	Written func(spec *scenario.Spec, s *Seed, a *analyze.Result) error
	// FailPath, when set, says where to record again, deterministically,
	// a seed that did not go as expected and has no trace ("" to skip).
	FailPath func(id string, seed uint64) (string, error)
	// Record records each run; nil means record.Run (tests replace it).
	Record func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error)
	// SeedDone, when set, is called after each seed is judged (and, when
	// it failed, recorded again under FailPath): for progress displays.
	SeedDone func(s *Seed)
}

// Scenario runs and judges spec for seeds 1..opt.Seeds. Every seed runs,
// whatever the others did; a seed fails the row when its verdict does not
// match the expectation, when its run is incomplete (the emulator stopped
// on an unsupported instruction or an error, the decisions ran out), or
// when it could not run at all.
func Scenario(spec *scenario.Spec, opt ScenarioOptions) (row Row) {
	row = Row{ID: spec.ID, Mail: spec.SeedMail, Expect: spec.Expect.String(), Findings: map[string]int{}, Outcomes: map[string]int{}}
	start := time.Now()
	defer func() { row.Seconds = time.Since(start).Seconds() }()
	if _, err := emu.LoadImage(spec.ID, spec.ELF); err != nil {
		// No seed ran: the row is incomplete (Got was empty, which the
		// JSON and KTAP gave as "got": "" and "got ;").
		row.Error, row.Got = err.Error(), analyze.VerdictIncomplete
		return row
	}
	rec := opt.Record
	if rec == nil {
		rec = record.Run
	}
	verdicts := map[string]bool{}
	row.OK = true
	for seed := uint64(1); seed <= uint64(opt.Seeds); seed++ {
		cs := runSeed(spec, seed, opt, rec)
		if !cs.OK && cs.Trace == "" && cs.Outcome != "" && opt.FailPath != nil {
			if path, err := opt.FailPath(spec.ID, seed); err == nil && path != "" {
				if _, err := rec(spec, path, record.Options{Options: emu.Options{Seed: seed, NoLoads: opt.NoLoads, NoRegs: opt.NoRegs}, Force: true}); err == nil || fileExists(path) {
					cs.Trace = path
				}
			}
		}
		row.Events += cs.Events
		for id, k := range cs.Findings {
			row.Findings[id] += k
		}
		outcome := cs.Outcome
		if outcome == "" {
			outcome = "error"
		}
		row.Outcomes[outcome]++
		verdicts[cs.Got()] = true
		if !cs.OK {
			row.OK = false
		}
		row.Seeds = append(row.Seeds, cs)
		if opt.SeedDone != nil {
			opt.SeedDone(&row.Seeds[len(row.Seeds)-1])
		}
	}
	gots := make([]string, 0, len(verdicts))
	for g := range verdicts {
		gots = append(gots, g)
	}
	sort.Strings(gots)
	row.Got = strings.Join(gots, " | ")
	return row
}

// runSeed runs and judges one seed.
func runSeed(spec *scenario.Spec, seed uint64, opt ScenarioOptions, rec func(*scenario.Spec, string, record.Options) (*record.Result, error)) (cs Seed) {
	cs = Seed{Seed: seed, Findings: map[string]int{}}
	fail := func(err error) Seed {
		cs.Error, cs.OK = err.Error(), false
		return cs
	}
	path := ""
	if opt.TracePath != nil {
		p, err := opt.TracePath(spec.ID, seed)
		if err != nil {
			return fail(err)
		}
		path = p
	}
	r, err := Run(spec, Options{Options: emu.Options{Seed: seed, NoLoads: opt.NoLoads, NoRegs: opt.NoRegs}, Path: path, Force: true, Record: rec})
	if r == nil {
		return fail(err)
	}
	cs.Trace = path
	cs.Outcome, cs.Detail = r.Outcome, r.Detail
	cs.Verdict, cs.Incomplete, cs.Events = r.Analysis.Verdict, r.Analysis.Incomplete, r.Run.Events
	cs.Findings = r.Findings
	for _, f := range r.Analysis.Findings {
		if f.Analyzer == UnmatchedAnalyzer {
			cs.Unmatched = append(cs.Unmatched, f.Message)
		}
	}
	cs.OK = r.Matches(spec.Expect)
	if r.Complete() {
		cs.Mismatch = Compare(spec.Expect, r.Analysis.Findings)
		if n := len(cs.Unexpected); n > maxSaid {
			cs.Unexpected = append(cs.Unexpected[:maxSaid:maxSaid], fmt.Sprintf("and %d more", n-maxSaid))
		}
	}
	if path != "" && opt.Written != nil {
		if err := opt.Written(spec, &cs, r.Analysis); err != nil {
			return fail(err)
		}
	}
	return cs
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

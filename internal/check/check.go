// Package check runs a scenario and judges the run: the one place where the
// sequence machine configuration -> trace metadata -> live analyzers -> run
// -> outcome -> verdict is written. The check command, explore, the run and
// record commands' exit status and the tests all go through it.
//
// A run is judged by how it ended as well as by what the analyzers found:
// only a run whose every CPU finished (outcome done), or one of an
// open-ended scenario (contract.terminates = false) that the progress
// analyzer accepts, can be clean. A run that ended in an oops, panic or
// BUG, the budget, a hang, on an instruction the emulator does not
// implement, on an emulator error or with its replayed decisions exhausted
// is never clean: it is a finding or incomplete. The judgement of an
// outcome by the analyzers is analyze.Live's (the same for a trace file
// and a live run); this package always asks it, through Judge, and never
// decides a verdict otherwise. Ended is the outcome alone, for commands
// that run no analyzer.
//
// The API in order: Prepare builds a scenario's image, configuration and
// metadata; Select picks analyzers (the outcome analyzers always among
// them); Run records and judges one seed (Judge, for a caller that drives
// the machine itself); Verdict and Matches compare what a run showed with a
// scenario's expectation; Scenario runs seeds 1..N and gathers them into a
// Row, what check prints.
package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
)

// Options configure Run.
type Options struct {
	emu.Options // the seed and the machine's options
	// Analyzers judge the run; nil means analyze.All().
	Analyzers []analyze.Analyzer
	// Path, when set, also writes the run's trace there (replacing an
	// existing file when Force).
	Path  string
	Force bool
	// Source, when set, supplies the run's decisions instead of the seeded
	// random source (record.Options.Source).
	Source emu.DecisionSource
	// Record records the run; nil means record.Run (tests replace it).
	Record func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error)
}

// Result is a judged run.
type Result struct {
	// Run is the run as recorded (its emu.Result, event counts, the trace
	// path).
	Run *record.Result
	// Analysis is the analyzers' result, its Verdict and Incomplete
	// judging the outcome as well as the findings.
	Analysis *analyze.Result
	// Outcome is how the run ended (format.Outcomes: done, oops, budget,
	// unsupported, ...) and Detail what ended it.
	Outcome, Detail string
	// Findings counts the findings per analyzer.
	Findings map[string]int
}

// Complete reports whether the run can be judged whole: a complete run
// either is clean or has findings.
func (r *Result) Complete() bool { return r.Analysis.Verdict != analyze.VerdictIncomplete }

// Verdict is what the run showed: "incomplete" for a run that cannot be
// judged whole, else Verdict(r.Findings).
func (r *Result) Verdict() string {
	if !r.Complete() {
		return analyze.VerdictIncomplete
	}
	return Verdict(r.Findings)
}

// Matches reports whether the run went as e expects: it is complete and
// its findings match (see Compare).
func (r *Result) Matches(e scenario.Expect) bool {
	return r.Complete() && Compare(e, r.Analysis.Findings).OK()
}

// Setup is a scenario prepared for runs: its slice image, the machine
// configuration and the trace metadata the analyzers start from. Explore
// builds it once and shares it (read-only) among many runs.
type Setup struct {
	Img    *emu.Image
	Config emu.Config
	Meta   format.Meta
}

// Prepare loads spec's slice and builds the machine configuration (for
// opt) and the trace metadata (record.Meta) of its runs.
func Prepare(spec *scenario.Spec, opt emu.Options) (*Setup, error) {
	img, err := emu.LoadImage(spec.ID+"/"+spec.Slice, spec.ELF)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", spec.ID, err)
	}
	cfg, _, err := emu.ConfigFor(spec, opt)
	if err != nil {
		return nil, err
	}
	md := record.Meta(spec, img, cfg.CPUs, opt.Seed)
	md.Loads, md.Regs = !opt.NoLoads, !opt.NoRegs
	return &Setup{Img: img, Config: cfg, Meta: md}, nil
}

// OutcomeAnalyzers judge how a run ended (an oops, panic or BUG; the
// budget, a hang): Select always adds them, so that a run that did not
// finish is a finding whatever analyzers were asked for.
var OutcomeAnalyzers = []string{"trap", "progress"}

// UnmatchedAnalyzer is the analyzer that reports scenario rules (an
// [[inject]], a contract.must_call window) that never matched: its
// findings fail a row whatever the scenario expects (see Matches).
const UnmatchedAnalyzer = "unmatched"

// Select returns the analyzers ids (all when empty) together with the
// OutcomeAnalyzers.
func Select(ids []string) ([]analyze.Analyzer, error) {
	if len(ids) == 0 {
		return analyze.All(), nil
	}
	sel := slices.Clone(ids)
	for _, id := range OutcomeAnalyzers {
		if !slices.Contains(sel, id) {
			sel = append(sel, id)
		}
	}
	return analyze.Select(sel)
}

// Run records spec for opt.Seed with the analyzers attached live (and the
// trace written to opt.Path when set) and judges it. A run the emulator
// stopped (an error, an unsupported instruction) is not an error: it is
// returned, judged incomplete. The error is for a run that could not be
// made at all (a bad configuration, a trace that could not be written).
func Run(spec *scenario.Spec, opt Options) (*Result, error) {
	su, err := Prepare(spec, opt.Options)
	if err != nil {
		return nil, err
	}
	as := opt.Analyzers
	if as == nil {
		as = analyze.All()
	}
	live, err := analyze.NewLive(&su.Meta, as) // one run: no template kept
	if err != nil {
		return nil, err
	}
	j := &Judge{live: live}
	rec := opt.Record
	if rec == nil {
		rec = record.Run
	}
	// record.Run tells the judge the outcome (record.Options.Tee).
	res, err := rec(spec, opt.Path, record.Options{Options: opt.Options, Force: opt.Force, Tee: j.live, Source: opt.Source})
	if res == nil {
		return nil, err
	}
	ar := j.live.Finish()
	ar.File = opt.Path
	r := &Result{Run: res, Analysis: ar, Findings: map[string]int{}}
	r.Outcome, r.Detail = record.Outcome(res.Result)
	for _, f := range ar.Findings {
		r.Findings[f.Analyzer]++
	}
	return r, nil
}

// Ending is how a run ended, judged without analyzers (the run and record
// commands' exit status).
type Ending int

// Endings of a run.
const (
	// Finished: every CPU finished, or an open-ended scenario
	// (contract.terminates = false) ran out of budget.
	Finished Ending = iota
	// Failed: an oops, panic or BUG, the budget, a hang, or a replayed
	// decision log that ran out: not a run that can be called clean.
	Failed
	// Stopped: the emulator could not go on (an instruction it does not
	// implement, an error): the run is incomplete.
	Stopped
)

// Ended classifies res, a run of spec, by its outcome alone.
func Ended(spec *scenario.Spec, res emu.Result) Ending {
	switch res.Stop {
	case emu.StopDone:
		return Finished
	case emu.StopBudget:
		if spec.OpenEnded() {
			return Finished
		}
	case emu.StopUnsupported, emu.StopError:
		return Stopped
	}
	return Failed
}

// Judge is the analyzers attached live to a run that its caller drives
// (explore builds the machine once and runs it many times): rows go to
// Append (as a record.Appender) and Finish judges the run's end.
type Judge struct{ live *analyze.Live }

// NewJudge returns a judge of runs with metadata md (record.Meta) by the
// analyzers as (all when nil).
//
// The start state (scenario parsed, symbols indexed, slice image loaded)
// is built once per md and shared copy-on-write by the judges made from it
// (replay.Template): a caller judging many runs passes the same md, which
// it must not change in place meanwhile.
func NewJudge(md *format.Meta, as []analyze.Analyzer) (*Judge, error) {
	if as == nil {
		as = analyze.All()
	}
	t, err := templateFor(md)
	if err != nil {
		return nil, err
	}
	live, err := analyze.NewLiveFrom(t, as)
	if err != nil {
		return nil, err
	}
	return &Judge{live: live}, nil
}

// templates holds the start states of the last few metadata NewJudge saw
// (explore's workers each judge runs of one machine).
var templates struct {
	sync.Mutex
	recent []*replay.Template // oldest first
}

const maxTemplates = 8

// templateFor returns the start state for md, built on first use. An entry
// is found by md's address and checked against the fields the state is
// built from, so a Meta value replaced or re-filled at the same address
// builds anew.
func templateFor(md *format.Meta) (*replay.Template, error) {
	templates.Lock()
	for _, t := range templates.recent {
		if t.For(md) {
			templates.Unlock()
			return t, nil
		}
	}
	templates.Unlock()
	t, err := replay.NewTemplate(md)
	if err != nil {
		return nil, err
	}
	templates.Lock()
	if len(templates.recent) == maxTemplates {
		templates.recent = slices.Delete(templates.recent, 0, 1)
	}
	templates.recent = append(templates.recent, t)
	templates.Unlock()
	return t, nil
}

// Append implements record.Appender.
func (j *Judge) Append(r *format.Row) error { return j.live.Append(r) }

// Finish judges the run that ended with res: its outcome, then what the
// analyzers found.
func (j *Judge) Finish(res emu.Result) *analyze.Result {
	j.live.SetOutcome(record.Outcome(res))
	return j.live.Finish()
}

// Verdict is "clean" when there is no finding, else the analyzers that
// reported, sorted and comma-separated.
func Verdict(findings map[string]int) string {
	if len(findings) == 0 {
		return analyze.VerdictClean
	}
	ids := make([]string, 0, len(findings))
	for id := range findings {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// Mismatch is how a run's findings differ from its expectation
// (analyze.Mismatch).
type Mismatch = analyze.Mismatch

// Compare judges findings against e (analyze.Compare: the one place an
// expectation is judged, shared with the HTML report).
func Compare(e scenario.Expect, findings []*analyze.Finding) Mismatch {
	return analyze.Compare(e, findings)
}

// Matches reports whether findings are what e expects (Compare finds no
// mismatch).
func Matches(e scenario.Expect, findings []*analyze.Finding) bool { return Compare(e, findings).OK() }

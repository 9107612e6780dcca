// Package rerun re-executes a recorded run from its trace alone: the
// scenario text, the slice ELF, the CPU count and the decision log the
// trace carries are enough to build the same machine and feed it the same
// decisions (emu.LogSource). Verify compares every re-executed event with
// the trace's, in lockstep, and reports the first divergence; Until stops
// after a given event and snapshots the machine (registers, must_call
// sites, per-CPU return slots, stacks).
//
// It imports emu, so it lives apart from package replay, which analyze
// imports and which must not reach the emulator.
package rerun

import (
	"errors"
	"fmt"
	"iter"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// Run is a recorded run, ready to re-execute.
type Run struct {
	Meta      *format.Meta
	Spec      *scenario.Spec
	Img       *emu.Image
	Decisions []emu.Decision
	cfg       emu.Config
}

// ErrNoDecisions is returned for a trace without a decision log (a
// truncated trace: the log is written when the run ends).
var ErrNoDecisions = errors.New("rerun: the trace has no decision log (truncated?)")

// FromMeta prepares the re-execution of the run md describes.
func FromMeta(md *format.Meta) (*Run, error) {
	if md.ScenarioText == "" || len(md.ELF) == 0 {
		return nil, fmt.Errorf("rerun: the trace carries no scenario text or slice ELF")
	}
	if md.DecisionsFormat != "" && md.DecisionsFormat != emu.DecisionsFormat {
		return nil, fmt.Errorf("rerun: decision log format %q, want %q", md.DecisionsFormat, emu.DecisionsFormat)
	}
	if md.Decisions == nil && md.DecisionCount == 0 && md.Status != format.StatusComplete {
		return nil, ErrNoDecisions
	}
	ds, err := emu.DecodeDecisions(md.Decisions)
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	if md.DecisionCount != 0 && md.DecisionCount != len(ds) {
		return nil, fmt.Errorf("rerun: decision log holds %d decisions, metadata says %d", len(ds), md.DecisionCount)
	}
	spec, err := scenario.Parse(md.Scenario+"/scenario.toml", []byte(md.ScenarioText))
	if err != nil {
		return nil, fmt.Errorf("rerun: the trace's scenario: %w", err)
	}
	spec.ELF = md.ELF
	img, err := emu.LoadImage(md.Scenario+"/"+spec.Slice, md.ELF)
	if err != nil {
		return nil, fmt.Errorf("rerun: the trace's slice: %w", err)
	}
	// What the trace records (loads, register deltas; neither before
	// version 4): the re-execution records the same, so rows compare.
	cfg, _, err := emu.ConfigFor(spec, emu.Options{Seed: md.Seed, CPUs: md.CPUs, NoLoads: !md.Loads, NoRegs: !md.Regs})
	if err != nil {
		return nil, fmt.Errorf("rerun: %w", err)
	}
	if b := md.Budget; b != nil {
		// The budget the run was recorded with (--max-insns, --no-budget):
		// the scenario's own would stop the replay elsewhere.
		cfg.MaxInsns, cfg.MaxDecisions = b.MaxInsns, b.MaxDecisions
		cfg.NoBudget = b.MaxInsns == 0 && b.MaxDecisions == 0
	}
	return &Run{Meta: md, Spec: spec, Img: img, Decisions: ds, cfg: cfg}, nil
}

// Machine builds a fresh machine for the run, sending events to sink.
func (r *Run) Machine(sink emu.Sink) (*emu.Machine, error) {
	cfg := r.cfg
	cfg.Sink = sink
	cfg.Inject = append([]emu.InjectRule(nil), cfg.Inject...)
	return emu.New(r.Img, cfg)
}

// Execute re-executes the run on a fresh machine with sink attached (nil:
// no events) until the decision log runs out, or, when until >= 0, until
// the step that emits event number until has run (decisions are then
// split into single steps, which runs the same machine: nothing else
// happens between the steps of one decision).
func (r *Run) Execute(sink emu.Sink, until int64) (*emu.Machine, emu.Result, error) {
	if until >= 0 && sink == nil {
		sink = discard{} // events must be emitted to be counted
	}
	m, err := r.Machine(sink)
	if err != nil {
		return nil, emu.Result{}, err
	}
	var src emu.DecisionSource = &emu.LogSource{Log: r.Decisions}
	if until >= 0 {
		src = &stepper{log: r.Decisions, until: uint64(until)}
	}
	res := m.Run(src)
	if res.Err != nil && !(until < 0 && r.stoppedAsRecorded(res)) {
		return m, res, fmt.Errorf("rerun: %w", res.Err)
	}
	return m, res, nil
}

// stoppedAsRecorded says whether a re-execution the machine stopped
// (unsupported instruction, emulator error: Result.Err) stopped as the
// recorded run did: that is the run reproduced, not a failure to replay
// it (replay --verify of a run that ended on an unsupported instruction
// exited 2 with the instruction's error and never compared its events).
func (r *Run) stoppedAsRecorded(res emu.Result) bool {
	return res.Err != nil && r.Meta.Outcome != "" && sameOutcome(r.Meta.Outcome, res.Stop.String())
}

// Until re-executes the run up to the step that emits event seq and
// returns the machine's state there. It fails when the run has fewer
// events.
func (r *Run) Until(seq uint64) (*State, error) {
	m, _, err := r.Execute(nil, int64(seq))
	if err != nil {
		return nil, err
	}
	if m.Seq() <= seq {
		return nil, fmt.Errorf("rerun: the run has %d events; there is no event %d", m.Seq(), seq)
	}
	st := Snapshot(m, r.Spec, m.Seq())
	if stop, _ := m.Stopped(); stop == emu.StopHung {
		// The stepper ended the run, not the machine.
		st.Stop = fmt.Sprintf("stopped after the step that emitted event %d", seq)
	}
	return st, nil
}

// Probe re-executes the run once, one step at a time, and calls fn with
// the machine after the step that emits each event of at (ascending
// sequence numbers; a step that emits several of them is reported once,
// with the last event it emitted). fn returning false ends the run. It
// fails when the run ends before an event of at.
func (r *Run) Probe(at []uint64, fn func(m *emu.Machine, last uint64) bool) error {
	m, err := r.Machine(discard{})
	if err != nil {
		return err
	}
	p := &prober{stepper: stepper{log: r.Decisions, until: ^uint64(0)}, at: at, fn: fn}
	res := m.Run(p)
	p.check(m) // the last step's events
	if p.stop {
		return nil
	}
	if res.Err != nil {
		return fmt.Errorf("rerun: %w", res.Err)
	}
	if len(p.at) > 0 {
		return fmt.Errorf("rerun: the run has %d events; there is no event %d", m.Seq(), p.at[0])
	}
	return nil
}

type prober struct {
	stepper
	at   []uint64
	fn   func(*emu.Machine, uint64) bool
	stop bool
}

func (p *prober) check(m *emu.Machine) {
	if len(p.at) == 0 || p.stop || m.Seq() <= p.at[0] {
		return
	}
	for len(p.at) > 0 && p.at[0] < m.Seq() {
		p.at = p.at[1:]
	}
	if !p.fn(m, m.Seq()-1) {
		p.stop = true
	}
}

func (p *prober) Next(m *emu.Machine) (emu.Decision, bool) {
	p.check(m)
	if p.stop || len(p.at) == 0 {
		return emu.Decision{}, false
	}
	return p.stepper.Next(m)
}

type discard struct{}

func (discard) Event(*emu.Event) {}

// stepper replays a log one step at a time and ends the run once event
// until has been emitted.
type stepper struct {
	log   []emu.Decision
	i     int
	left  uint32 // steps left of log[i]
	until uint64
	begun bool
}

func (s *stepper) Next(m *emu.Machine) (emu.Decision, bool) {
	if m.Seq() > s.until {
		return emu.Decision{}, false
	}
	if s.begun && m.QuantumCut() {
		// The quantum ended early at a text_poke byte (torn fetch): the
		// recorded run dropped the rest of it.
		s.left = 0
	}
	for s.i < len(s.log) {
		d := s.log[s.i]
		if d.Kind != emu.DecStep {
			s.i++
			return d, true
		}
		if !s.begun {
			s.left, s.begun = d.N, true
		}
		if s.left == 0 {
			s.i++
			s.begun = false
			continue
		}
		s.left--
		return emu.Decision{Kind: emu.DecStep, CPU: d.CPU, N: 1}, true
	}
	return emu.Decision{}, false
}

// Divergence is the first difference between a re-execution and its
// trace.
type Divergence struct {
	Seq      uint64 // the event's sequence number
	CPU      uint16
	Kind     string // the expected event's kind ("" when the trace ended)
	Field    string // the first column that differs ("event" when one side has no event)
	Expected string
	Got      string
}

func (d *Divergence) Error() string {
	return fmt.Sprintf("diverged at seq %d (cpu %d, %s): %s: expected %s, got %s", d.Seq, d.CPU, d.Kind, d.Field, d.Expected, d.Got)
}

// Verify re-executes the run and compares every event, as the recorder
// turns it into a row, with the trace's rows, in lockstep; the run stops
// at the first divergence. It returns the number of identical events and
// the divergence, if any. An error means the comparison could not be made
// (the trace cannot be read, the emulator failed).
func (r *Run) Verify(rows iter.Seq2[*format.Row, error]) (uint64, *Divergence, error) {
	next, stop := iter.Pull2(rows)
	defer stop()
	v := &verifier{next: next}
	rec := record.NewRecorder(v, r.Img)
	m, err := r.Machine(rec)
	if err != nil {
		return 0, nil, err
	}
	res := m.Run(&untilDiverged{src: &emu.LogSource{Log: r.Decisions}, v: v})
	if v.err != nil {
		return v.n, nil, v.err
	}
	if v.div != nil {
		return v.n, v.div, nil
	}
	if res.Err != nil && !r.stoppedAsRecorded(res) {
		return v.n, nil, fmt.Errorf("rerun: %w", res.Err)
	}
	// The trace must have ended too.
	want, err, ok := next()
	if err != nil {
		return v.n, nil, err
	}
	if ok {
		return v.n, &Divergence{Seq: want.Seq, CPU: want.CPU, Kind: want.Kind.String(), Field: "event",
			Expected: describe(want), Got: "end of run (" + res.Stop.String() + ")"}, nil
	}
	// And ended the same way: the outcome is what analyze judges a run
	// by, so a footer that says otherwise is a divergence too.
	if d := r.OutcomeDivergence(res); d != nil {
		d.Seq = v.n
		return v.n, d, nil
	}
	return v.n, nil, nil
}

// OutcomeDivergence compares how a re-execution ended (res, from Execute
// or Verify) with the outcome the trace records: nil when they agree or
// the trace records none (format versions 1 and 2).
func (r *Run) OutcomeDivergence(res emu.Result) *Divergence {
	want, got := r.Meta.Outcome, res.Stop.String()
	if want == "" || sameOutcome(want, got) {
		return nil
	}
	return &Divergence{Seq: res.Events, Kind: "end of run", Field: "outcome", Expected: want, Got: got + " (" + res.Msg + ")"}
}

// sameOutcome: a re-executed run ends as recorded, except that a log
// that runs out ends it as hung (the replaying source is not a
// LogReplayer): so did the recorded run when it hung (its source had
// nothing to run) or when it replayed a log itself (decisions-exhausted).
func sameOutcome(recorded, rerun string) bool {
	if rerun == format.OutcomeHung {
		return recorded == format.OutcomeHung || recorded == format.OutcomeDecisions
	}
	return recorded == rerun
}

type untilDiverged struct {
	src emu.DecisionSource
	v   *verifier
}

func (u *untilDiverged) Next(m *emu.Machine) (emu.Decision, bool) {
	if u.v.div != nil || u.v.err != nil {
		return emu.Decision{}, false
	}
	return u.src.Next(m)
}

// verifier is the recorder's appender during Verify.
type verifier struct {
	next func() (*format.Row, error, bool)
	n    uint64
	div  *Divergence
	err  error
	// stored is the re-executed row in its stored form (reused: no
	// allocation per row).
	stored format.Row
}

var errStop = errors.New("rerun: diverged")

func (v *verifier) Append(got *format.Row) error {
	if v.div != nil || v.err != nil {
		return errStop
	}
	want, err, ok := v.next()
	if err != nil {
		v.err = err
		return errStop
	}
	if !ok {
		v.div = &Divergence{Seq: got.Seq, CPU: got.CPU, Field: "event", Expected: "end of trace", Got: describe(got)}
		return errStop
	}
	g := &v.stored
	got.CopyStored(g)
	if *want == *g {
		v.n++
		return nil
	}
	for i, c := range format.Columns {
		if e, a := want.Field(i), g.Field(i); e != a {
			v.div = &Divergence{Seq: want.Seq, CPU: want.CPU, Kind: want.Kind.String(), Field: c.Name, Expected: e, Got: a}
			return errStop
		}
	}
	// Equal in every compared column (a difference only in a field the
	// trace does not store).
	v.n++
	return nil
}

func describe(r *format.Row) string {
	return fmt.Sprintf("%s event %d on cpu %d at rip %#x", r.Kind, r.Seq, r.CPU, r.RIP)
}

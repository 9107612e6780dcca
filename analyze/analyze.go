// Package analyze holds the analyzers — each a small consumer of the replay
// stream — the findings model, and its renderers (text, JSON, SARIF 2.1.0,
// JUnit XML). It reads traces only; it never imports the emulator, so the
// same analyzers run over a trace file and over the rows of a live run.
package analyze

import (
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// Severity of a finding.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Finding is one thing an analyzer reports.
type Finding struct {
	Analyzer string   `json:"analyzer"`
	Severity Severity `json:"severity"`
	CPU      int      `json:"cpu"`
	Task     uint32   `json:"task"`
	Context  string   `json:"context"` // "task 2", "task 2 in #BP", ...
	SeqFirst uint64   `json:"seq_first"`
	SeqLast  uint64   `json:"seq_last"`
	RIP      uint64   `json:"rip"`
	Where    string   `json:"where"` // symbol+offset
	// Source is RIP as "file:line" of the slice's sources, from the DWARF
	// line table of the trace's ELF (staged names: "base/traps.c",
	// "lib/ftrace/ftrace.c", "ID/patch.c"); "" when the table does not
	// cover it or the slice has none.
	Source   string   `json:"source,omitempty"`
	Symbol   string   `json:"symbol"`
	Message  string   `json:"message"`
	Evidence []uint64 `json:"evidence"` // event sequence numbers
	// Story is the interleaving around it and its causes (lines marked
	// "[cause: ...]": the stores the failing context read, the writes of
	// the code it ran, the switches that took a task away), in sequence
	// order, then notes on what could not be told ("cause: ...").
	Story []string `json:"story"`
	Count int      `json:"count"` // occurrences folded into this finding (same analyzer, rule and place)
	// Contexts lists every CPU and task ("cpu2 task 4") the folded
	// occurrences happened on, the first's first, in first-seen order, so
	// that a finding does not name one context for hits spread over
	// several.
	Contexts []string `json:"contexts"`
	// FaultAddr is the address a #PF faulted on (CR2), for findings of a
	// page fault; HasFaultAddr says it is set (0 is an address too).
	FaultAddr    uint64 `json:"fault_addr,omitempty"`
	HasFaultAddr bool   `json:"has_fault_addr,omitempty"`
	key          string
}

// maxAlso bounds the other contexts the text header names.
const maxAlso = 8

// placeName is the CPU and task a finding happened on ("cpu2 task 4", its
// context up to any ", trap depth N"), to say where folded occurrences
// happened.
func (f *Finding) placeName() string {
	c := f.Context
	if c == "" {
		c = fmt.Sprintf("task %d", f.Task)
	}
	c, _, _ = strings.Cut(c, ",")
	return fmt.Sprintf("cpu%d %s", f.CPU, c)
}

// alsoText says where else folded occurrences happened: "" when all were
// where the first was, else ", also on cpu2 task 4, cpu3 task 5".
func (f *Finding) alsoText() string {
	if len(f.Contexts) < 2 {
		return ""
	}
	also := f.Contexts[1:]
	if len(also) > maxAlso {
		return fmt.Sprintf(", also on %s and %d more", strings.Join(also[:maxAlso], ", "), len(also)-maxAlso)
	}
	return ", also on " + strings.Join(also, ", ")
}

// Analyzer is one check. Start is called once with the initial state; Event
// for every row after the state has applied it (so memory reflects a write
// row); Finish at the end of the stream.
type Analyzer interface {
	ID() string
	Doc() string
	Start(ctx *Context) error
	Event(ctx *Context, r *format.Row)
	Finish(ctx *Context)
}

// Needs says what of the row stream an analyzer reads, so that rows and
// columns nobody reads are neither handed over nor decoded. An analyzer
// declares it by implementing Needer; one that does not sees every row
// with every column (the safe default for a new analyzer).
type Needs struct {
	// Kinds are the kinds of rows Event is called with; rows of other
	// kinds are not passed to it. nil: every kind; empty (not nil): none.
	// (The replay state sees every row: each CPU's last event is in
	// replay.CPU.) Needs is asked after Start, so it may depend on what
	// Start found.
	Kinds []format.Kind
	// Columns are the columns (format.Col* indexes) Event reads of those
	// rows beyond the common ones (seq, kind, cpu, task, depth, rip, which
	// every row has); a column not listed may read as zero. nil: all.
	Columns []int
}

// Needer is implemented by an analyzer that declares its Needs.
type Needer interface{ Needs() Needs }

// Registered analyzers, by id.
func All() []Analyzer {
	return []Analyzer{&missedCall{}, &returnSlot{}, &wx{}, &cmc{}, &trapCheck{}, &frame{}, &lifetime{}, &progress{}, &unmatched{}, &regsCheck{}}
}

// IDs lists the registered analyzer ids.
func IDs() []string {
	var ids []string
	for _, a := range All() {
		ids = append(ids, a.ID())
	}
	return ids
}

// Select returns the analyzers named in ids (all when ids is empty), each
// once: an id named twice ran two instances that folded their findings
// into one, doubling its counts ("--only missed-call,missed-call" said
// 578 times for 289 missed calls).
func Select(ids []string) ([]Analyzer, error) {
	if len(ids) == 0 {
		return All(), nil
	}
	var out []Analyzer
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			continue
		}
		found := false
		for _, a := range All() {
			if a.ID() == id {
				out = append(out, a)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown analyzer %q (have %s)", id, strings.Join(IDs(), ", "))
		}
	}
	return out, nil
}

// Context is what analyzers share: the replay state, the story window and
// the findings so far.
type Context struct {
	St *replay.State
	// Outcome is how the run ended (format.Outcomes; "" when the trace does
	// not record it) and OutcomeDetail what ended it; Truncated says the
	// events stop before the run's end. Analyzers read them in Finish.
	Outcome       string
	OutcomeDetail string
	Truncated     bool
	ids           []string // the analyzers' ids
	cur           int      // the analyzer whose Start, Event or Finish runs (index into ids)
	findings      []*Finding
	byKey         map[string]*Finding
	story         *storyWindow
	warnings      []string // what an analyzer could not check (Warn)
	cannot        []string // what makes the result incomplete (CannotCheck)
	causes        *causeTracker
}

// Warn records, once, something the current analyzer could not check (the
// trace lacks what it needs): it becomes one of the result's warnings.
func (ctx *Context) Warn(msg string) {
	msg = ctx.ids[ctx.cur] + ": " + msg
	if !slices.Contains(ctx.warnings, msg) {
		ctx.warnings = append(ctx.warnings, msg)
	}
}

// CannotCheck says the current analyzer could not check something it was
// asked to (the trace lacks what it reads, a bound was reached): the
// result is incomplete, never clean, and says why. (Warn is for a check
// done in part.)
func (ctx *Context) CannotCheck(why string) {
	ctx.cannot = append(ctx.cannot, ctx.ids[ctx.cur]+" could not check: "+why)
}

// Report adds a finding for the current analyzer. Findings with the same
// key (analyzer, rule, place) are folded into the first, counting repeats.
func (ctx *Context) Report(f Finding, key string) {
	f.Analyzer = ctx.ids[ctx.cur]
	if f.Severity == "" {
		f.Severity = SevError
	}
	k := f.Analyzer + "|" + key
	if old := ctx.byKey[k]; old != nil && key != "" {
		old.Count++
		if c := f.placeName(); !slices.Contains(old.Contexts, c) {
			old.Contexts = append(old.Contexts, c)
		}
		if f.SeqLast > old.SeqLast {
			old.SeqLast = f.SeqLast
		}
		return
	}
	if f.Where == "" {
		f.Where = ctx.St.Syms.Describe(f.RIP)
	}
	if f.Source == "" && f.RIP != 0 {
		f.Source = ctx.St.Syms.Line(f.RIP)
	}
	if f.Symbol == "" {
		if s, ok := ctx.St.Syms.At(f.RIP); ok {
			f.Symbol = s.Name
		}
	}
	if f.Context == "" {
		f.Context = fmt.Sprintf("task %d", f.Task)
	}
	if f.Story == nil {
		f.Story = ctx.story.tell(ctx.St, f.CPU, f.Evidence)
	}
	f.Count = 1
	f.Contexts = []string{f.placeName()}
	f.key = k
	ctx.byKey[k] = &f
	ctx.findings = append(ctx.findings, &f)
	if len(f.Story) > 0 && ctx.causes != nil {
		// Its causes join the story once the loads of the finding's
		// instruction are in (an empty story, not nil, is a finding
		// about no one context: a whole run's hang).
		ctx.causes.pend(ctx.St, &f)
	}
}

// Describe renders an address as symbol+offset.
func (ctx *Context) Describe(addr uint64) string { return ctx.St.Syms.Describe(addr) }

// Result is the outcome of analyzing one trace.
type Result struct {
	File      string   `json:"file"`
	Scenario  string   `json:"scenario"`
	Analyzers []string `json:"analyzers"`
	Events    uint64   `json:"events"`
	// Outcome is how the run ended ("" when not recorded: format versions
	// 1 and 2, or a truncated file) and OutcomeDetail what ended it.
	Outcome       string `json:"outcome"`
	OutcomeDetail string `json:"outcome_detail"`
	Truncated     bool   `json:"truncated"`
	// Incomplete says why the trace cannot be judged whole ("" when it
	// can): the run stopped on an emulator limit or error, the file was
	// cut short, or the run did not finish and nothing selected judges it.
	// An incomplete result is never clean (see Verdict).
	Incomplete string     `json:"incomplete,omitempty"`
	Verdict    string     `json:"verdict"` // see Verdict
	Warnings   []string   `json:"warnings"`
	Findings   []*Finding `json:"findings"`
	// Seconds is the wall time from NewLive to Finish (for a live run it
	// includes the machine's) and AnalyzerSeconds each analyzer's share
	// (Start, Finish, and Event estimated from every 64th row). Wall-clock
	// figures, for JUnit's time attributes: not in the JSON, which stays
	// the same for the same trace.
	Seconds         float64            `json:"-"`
	AnalyzerSeconds map[string]float64 `json:"-"`
}

// Verdicts of a Result.
const (
	VerdictClean      = "clean"      // every CPU finished and nothing was found
	VerdictFindings   = "findings"   // some analyzer reported
	VerdictIncomplete = "incomplete" // see Result.Incomplete (it wins over findings)
)

// judge sets Verdict from the findings and Incomplete.
func (r *Result) judge() {
	switch {
	case r.Incomplete != "":
		r.Verdict = VerdictIncomplete
	case len(r.Findings) > 0:
		r.Verdict = VerdictFindings
	default:
		r.Verdict = VerdictClean
	}
}

// judgedBy names the analyzer that reports each outcome that is a finding.
var judgedBy = map[string]string{
	format.OutcomeOops: "trap", format.OutcomePanic: "trap", format.OutcomeBug: "trap",
	format.OutcomeBudget: "progress", format.OutcomeHung: "progress",
}

// Option configures AnalyzeFile.
type Option func(*options)

type options struct{ allowTruncated bool }

// AllowTruncated judges a truncated trace by the events it has: it is still
// marked truncated, but not incomplete.
func AllowTruncated() Option { return func(o *options) { o.allowTruncated = true } }

// Live analyzes rows as they are produced (by a running machine through the
// recorder, or by a trace reader): the one implementation behind both
// `analyze` and in-process checks.
type Live struct {
	ctx   *Context
	as    []Analyzer
	ids   []string
	res   *Result
	start time.Time
	spent []time.Duration // per analyzer: Start, sampled Event calls (scaled), Finish
	rows  uint64
	// byKind lists, for each row kind, the analyzers whose Needs ask for
	// it, in selection order (each with its index into as).
	byKind [numKinds][]kindAnalyzer
	// recorded checks the rows of a trace file against what its
	// metadata says it records (loads, register deltas), which the
	// analyzers believe (nil for rows a caller feeds: a recorder's
	// rows and metadata agree by construction, a hand-made stream's
	// need not).
	recorded *format.RecordedCheck
}

// kindAnalyzer is an analyzer byKind hands a row to, and its index.
type kindAnalyzer struct {
	a Analyzer
	i int
}

// numKinds bounds the row kinds (format.Kind values) byKind indexes.
const numKinds = 64

// timeEvery: one row in timeEvery has each analyzer's Event call timed
// (scaled up), so per-analyzer times cost two clock reads per analyzer
// every timeEvery rows, not per row.
const timeEvery = 1024

// NewLive prepares the state for a run described by md and starts the
// analyzers.
func NewLive(md *format.Meta, as []Analyzer) (*Live, error) {
	st, err := replay.NewState(md)
	if err != nil {
		return nil, err
	}
	return newLive(st, as)
}

// NewLiveFrom is NewLive for a run whose start state t holds (built once
// for many runs of one machine: see replay.Template).
func NewLiveFrom(t *replay.Template, as []Analyzer) (*Live, error) {
	return newLive(t.State(), as)
}

func newLive(st *replay.State, as []Analyzer) (*Live, error) {
	ctx := &Context{St: st, byKey: map[string]*Finding{}, story: newStoryWindow(len(st.CPUs)), causes: newCauseTracker(st)}
	res := &Result{Scenario: st.Meta.Scenario, Warnings: append([]string{}, st.Warnings...)}
	l := &Live{ctx: ctx, as: as, res: res, start: time.Now(), spent: make([]time.Duration, len(as))}
	for _, a := range as {
		l.ids = append(l.ids, a.ID())
	}
	ctx.ids = l.ids
	for i, a := range as {
		res.Analyzers = append(res.Analyzers, a.ID())
		ctx.cur = i
		t0 := time.Now()
		if err := a.Start(ctx); err != nil {
			return nil, fmt.Errorf("analyzer %s: %w", a.ID(), err)
		}
		l.spent[i] += time.Since(t0)
		for k := range l.byKind {
			if wants(a, format.Kind(k)) {
				l.byKind[k] = append(l.byKind[k], kindAnalyzer{a, i})
			}
		}
	}
	return l, nil
}

// stateNeeds is what the replay state (replay.State.Apply) reads of the
// rows beyond the common columns.
var stateNeeds = Needs{Kinds: []format.Kind{format.KindWrite, format.KindPerm, format.KindSwitch},
	Columns: []int{format.ColAddr, format.ColSize, format.ColNew, format.ColAlias, format.ColPermNew}}

// Projection is what the analyzers (by their Needs), the replay state and
// the story window read of a trace: a reader decodes no more
// (format.Reader.Scan).
func (l *Live) Projection() format.Projection {
	needs := []Needs{stateNeeds, storyNeeds, causeNeeds}
	if l.recorded != nil {
		needs = append(needs, Needs{Kinds: []format.Kind{format.KindInsn}, Columns: format.RecordedColumns()})
	}
	for _, a := range l.as {
		n, ok := a.(Needer)
		if !ok {
			return format.AllColumns
		}
		needs = append(needs, n.Needs())
	}
	var p format.Projection
	p.Kinds, p.Columns = []format.Kind{}, []int{}
	for _, n := range needs {
		if n.Kinds != nil && len(n.Kinds) == 0 {
			// Passed no row (an analyzer with nothing to check in
			// this trace: missed-call without must_call sites, regs
			// without register rules): it reads no column, whatever
			// Columns says (nil there is "all", which made every
			// column be decompressed for nothing).
			continue
		}
		if n.Kinds == nil {
			p.Kinds = nil
		} else if p.Kinds != nil {
			p.Kinds = append(p.Kinds, n.Kinds...)
		}
		if n.Columns == nil {
			p.Columns = nil
		} else if p.Columns != nil {
			p.Columns = append(p.Columns, n.Columns...)
		}
	}
	return p
}

// wants reports whether analyzer a's Event takes rows of kind k.
func wants(a Analyzer, k format.Kind) bool {
	n, ok := a.(Needer)
	if !ok {
		return true
	}
	kinds := n.Needs().Kinds
	return kinds == nil || slices.Contains(kinds, k)
}

// Append implements record.Appender: it applies one row and runs the
// analyzers on it.
func (l *Live) Append(r *format.Row) error {
	if err := format.CheckRow(r, len(l.ctx.St.CPUs)); err != nil {
		return fmt.Errorf("analyze: row seq %d: %w", r.Seq, err)
	}
	return l.appendChecked(r)
}

// appendChecked is Append for a row whose values were checked as
// format.CheckRow checks them (a Reader checks every row it decodes).
func (l *Live) appendChecked(r *format.Row) error {
	st := l.ctx.St
	st.Apply(r)
	if st.Mem.Overflowed() {
		return fmt.Errorf("analyze: row seq %d: %w", r.Seq, st.Err())
	}
	l.ctx.story.add(st, r)
	l.ctx.causes.add(st, r)
	if l.recorded != nil {
		l.recorded.Add(r)
	}
	l.rows++
	as := l.byKind[r.Kind&(numKinds-1)]
	ctx := l.ctx
	if l.rows%timeEvery == 1 {
		for _, ka := range as {
			ctx.cur = ka.i
			t0 := time.Now()
			ka.a.Event(ctx, r)
			l.spent[ka.i] += time.Since(t0) * timeEvery
		}
		return nil
	}
	for _, ka := range as {
		ctx.cur = ka.i
		ka.a.Event(ctx, r)
	}
	return nil
}

// SetOutcome tells the analyzers how the run ended (record.Outcome of the
// machine's result); call it before Finish. Without it the outcome is
// not recorded and the analyzers judge by the events alone.
// The detail comes from the trace: it is kept printable (format.Printable)
// for the findings and reports that quote it.
func (l *Live) SetOutcome(outcome, detail string) {
	l.ctx.Outcome, l.ctx.OutcomeDetail = outcome, format.Printable(detail)
}

// SetTruncated says the rows stop before the run's end (a file cut
// short): the analyzers do not judge what they cannot see.
func (l *Live) SetTruncated() { l.ctx.Truncated = true }

// Finish ends the stream and returns the result.
func (l *Live) Finish() *Result {
	res := l.res
	res.AnalyzerSeconds = map[string]float64{}
	for i, a := range l.as {
		l.ctx.cur = i
		t0 := time.Now()
		a.Finish(l.ctx)
		l.spent[i] += time.Since(t0)
		res.AnalyzerSeconds[a.ID()] = l.spent[i].Seconds()
	}
	l.ctx.causes.flush(l.ctx.St, -1)
	res.Warnings = append(res.Warnings, l.ctx.warnings...)
	res.Seconds = time.Since(l.start).Seconds()
	res.Events = l.ctx.St.Applied
	sort.SliceStable(l.ctx.findings, func(i, j int) bool { return l.ctx.findings[i].SeqFirst < l.ctx.findings[j].SeqFirst })
	res.Findings = l.ctx.findings
	if res.Findings == nil {
		res.Findings = []*Finding{}
	}
	res.Outcome, res.OutcomeDetail, res.Truncated = l.ctx.Outcome, l.ctx.OutcomeDetail, l.ctx.Truncated
	l.judgeOutcome(res)
	l.judgeContract(res)
	l.judgeVacuous(res)
	if p := l.recordedProblem(); p != "" {
		// The analyzers believed the metadata: those that read loads
		// or registers judged what is not there (or missed what is).
		l.ctx.cannot = append(l.ctx.cannot, "the trace contradicts its metadata: "+p)
	}
	if len(l.ctx.cannot) > 0 {
		res.Incomplete = strings.Join(append(slices.DeleteFunc([]string{res.Incomplete}, func(s string) bool { return s == "" }), l.ctx.cannot...), "; ")
	}
	res.judge()
	return res
}

// recordedProblem says how a trace file's rows contradict its metadata
// ("" when they do not, or the rows are not a file's).
func (l *Live) recordedProblem() string {
	if l.recorded == nil {
		return ""
	}
	return l.recorded.Problem()
}

// contractAnalyzers are the analyzers that check the scenario's rules,
// read from the trace's scenario text: must_call sites and return slots,
// the registers sites preserve (regs), the [[inject]] and must_call rules
// that must match (unmatched).
var contractAnalyzers = []string{"missed-call", "return-slot", "regs", "unmatched"}

// judgeContract marks a result incomplete when a selected analyzer had no
// contract to check: the trace's scenario text did not parse (a key this
// version does not know, a damaged text), so its must_call sites and
// return slots are unknown and their silence says nothing.
func (l *Live) judgeContract(res *Result) {
	if l.ctx.St.Spec != nil || res.Incomplete != "" {
		return
	}
	var ids []string
	for _, a := range l.as {
		if slices.Contains(contractAnalyzers, a.ID()) {
			ids = append(ids, a.ID())
		}
	}
	if len(ids) == 0 {
		return
	}
	why := "it is missing"
	for _, w := range l.ctx.St.Warnings {
		if strings.HasPrefix(w, "scenario text does not parse: ") {
			why = strings.TrimPrefix(w, "scenario text does not parse: ")
		}
	}
	res.Incomplete = fmt.Sprintf("the trace's scenario text does not parse (%s): %s had no contract to check", why, strings.Join(ids, " and "))
}

// judgeVacuous marks a result incomplete when nothing was judged, so its
// silence says nothing: no event reached the analyzers (a trace cut
// before its first complete batch, analyzed with AllowTruncated), or
// every selected analyzer had nothing to check in this trace (Needs with
// no kind after Start: missed-call in a scenario without
// contract.must_call, unmatched without rules, regs without preserving
// sites, as `analyze --only` can select them).
func (l *Live) judgeVacuous(res *Result) {
	if res.Incomplete != "" || len(res.Findings) > 0 || len(l.ctx.cannot) > 0 {
		return
	}
	if res.Events == 0 {
		res.Incomplete = "no event was analyzed (the trace holds none): nothing was checked"
		return
	}
	var idle []string
	for _, a := range l.as {
		n, ok := a.(Needer)
		if !ok {
			return
		}
		if k := n.Needs().Kinds; k == nil || len(k) > 0 {
			return
		}
		idle = append(idle, a.ID())
	}
	if len(idle) == 0 {
		return
	}
	res.Incomplete = fmt.Sprintf("nothing was checked: %s had no rule of this scenario to judge (contract.must_call, contract.asm_sites, [[inject]]); run the other analyzers (analyze without --only) for a verdict",
		strings.Join(idle, ", "))
}

// judgeOutcome marks a result whose run did not end in a way the selected
// analyzers can call clean.
func (l *Live) judgeOutcome(res *Result) {
	o, detail := res.Outcome, res.OutcomeDetail
	if detail != "" {
		detail = ": " + detail
	}
	switch o {
	case format.OutcomeDone:
		return
	case format.OutcomeUnsupported:
		res.Incomplete = "the run is incomplete: it stopped on an instruction the emulator does not implement" + detail
		return
	case format.OutcomeError:
		res.Incomplete = "the run is incomplete: the emulator could not go on" + detail
		return
	case "":
		if !res.Truncated {
			res.Warnings = append(res.Warnings, fmt.Sprintf("outcome not recorded (format version %d): judged by the events alone", l.ctx.St.Meta.Version))
		}
		return
	case format.OutcomeDecisions:
		if len(res.Findings) == 0 {
			res.Incomplete = "the run is incomplete: it replayed a decision log that ended before every CPU finished (outcome decisions-exhausted" + detail + "), and shows no finding up to there"
		}
		return
	case format.OutcomeBudget:
		if l.ctx.St.Spec != nil && l.ctx.St.Spec.OpenEnded() {
			return
		}
	}
	id := judgedBy[o]
	for _, f := range res.Findings {
		if f.Analyzer == id {
			return
		}
	}
	if len(res.Findings) == 0 {
		res.Incomplete = fmt.Sprintf("the run ended with outcome %s%s, which the %s analyzer judges, and it did not run or report", o, detail, id)
	}
}

// Run feeds rows through the state and the analyzers. It does not know
// how the run ended (AnalyzeFile reads that from the trace): the result
// is judged by the events alone, with a warning. A row the analyzers
// refuse (format.CheckRow) ends it with an error, as a read error does.
func Run(st *replay.State, rows iter.Seq2[*format.Row, error], as []Analyzer) (*Result, error) {
	l, err := newLive(st, as)
	if err != nil {
		return nil, err
	}
	for r, err := range rows {
		if err != nil {
			return l.Finish(), err
		}
		if err := l.Append(r); err != nil {
			return l.Finish(), err
		}
	}
	return l.Finish(), nil
}

// AnalyzeFile opens a trace and runs the analyzers over it. A truncated
// trace is analyzed up to its last complete batch, with a warning, and is
// incomplete unless AllowTruncated is given. A trace whose footer records
// lost events (patchtrace.dropped), or (version 3 on) no outcome, is
// incomplete.
func AnalyzeFile(path string, as []Analyzer, opts ...Option) (*Result, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	r, err := format.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	md := r.Meta()
	st, err := replay.NewState(md)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l, err := newLive(st, as)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The analyzers believe what the metadata says the trace records:
	// a rewritten one is caught by the rows.
	l.recorded = format.NewRecordedCheck(md)
	if r.Truncated() {
		l.SetTruncated()
	} else {
		l.SetOutcome(md.Outcome, md.OutcomeDetail)
	}
	for row, err := range r.Scan(l.Projection()) {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := l.appendChecked(row); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	res := l.Finish()
	res.File = path
	if err := fileReach(r, l.ctx.St, l.ctx.causes); err != nil {
		return nil, fmt.Errorf("%s: naming causes beyond the story's ring: %w", path, err)
	}
	if !r.Truncated() && !r.Verified() {
		res.Warnings = append(res.Warnings, r.Unverified())
	}
	if !r.Truncated() && md.Outcome == "" && md.Version >= 3 && res.Incomplete == "" {
		// Version 3 writers always record how the run ended: an empty
		// outcome is a footer that does not say, not an old file.
		res.Incomplete = fmt.Sprintf("the trace's footer records no outcome (format version %d records one for every run): how the run ended is unknown", md.Version)
		res.judge()
	}
	if len(md.Dropped) > 0 && res.Incomplete == "" {
		// The analyzers saw only part of the run: what they did not
		// see may hold what they judge.
		var lost []string
		for _, d := range md.Dropped {
			lost = append(lost, fmt.Sprintf("%d events lost after seq %d", d.Count, d.AfterSeq))
		}
		res.Incomplete = "the trace is incomplete: " + strings.Join(lost, ", ") + " (patchtrace.dropped)"
		res.judge()
	}
	if res.Incomplete == "" {
		// Sequence numbers count every event of the run from 0: a
		// gap no patchtrace.dropped entry declares is events missing
		// (a trace filtered or rewritten by another tool), which the
		// analyzers never saw.
		missing, first, err := r.SeqGaps()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var declared uint64
		for _, d := range md.Dropped {
			declared += d.Count
		}
		if missing > declared {
			res.Incomplete = fmt.Sprintf("the trace is incomplete: its sequence numbers skip %d events that patchtrace.dropped does not declare (the first %s): the analyzers did not see them", missing-declared, first)
			res.judge()
		}
	}
	if r.Truncated() {
		cut := r.TruncatedError().Error()
		res.Warnings = append(res.Warnings, cut+": analyzed up to there")
		if !o.allowTruncated {
			res.Incomplete = "the trace is truncated (" + cut + "): findings up to the cut are reported, the rest of the run is unknown"
			res.judge()
		}
	}
	return res, nil
}

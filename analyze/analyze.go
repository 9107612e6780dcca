// Package analyze holds the analyzers — each a small consumer of the replay
// stream — the findings model, and its renderers (text, JSON, SARIF 2.1.0,
// JUnit XML). It reads traces only; it never imports the emulator, so the
// same analyzers run over a trace file and over the rows of a live run.
package analyze

import (
	"fmt"
	"iter"
	"sort"
	"strings"

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
	Symbol   string   `json:"symbol"`
	Message  string   `json:"message"`
	Evidence []uint64 `json:"evidence"` // event sequence numbers
	Story    []string `json:"story"`    // the interleaving around it, in order
	Count    int      `json:"count"`    // occurrences folded into this finding (same analyzer, rule and place)
	key      string
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

// Registered analyzers, by id.
func All() []Analyzer {
	return []Analyzer{&missedCall{}, &returnSlot{}, &wx{}, &cmc{}, &trapCheck{}}
}

// IDs lists the registered analyzer ids.
func IDs() []string {
	var ids []string
	for _, a := range All() {
		ids = append(ids, a.ID())
	}
	return ids
}

// Select returns the analyzers named in ids (all when ids is empty).
func Select(ids []string) ([]Analyzer, error) {
	if len(ids) == 0 {
		return All(), nil
	}
	var out []Analyzer
	for _, id := range ids {
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
	St       *replay.State
	analyzer string
	findings []*Finding
	byKey    map[string]*Finding
	story    *storyWindow
}

// Report adds a finding for the current analyzer. Findings with the same
// key (analyzer, rule, place) are folded into the first, counting repeats.
func (ctx *Context) Report(f Finding, key string) {
	f.Analyzer = ctx.analyzer
	if f.Severity == "" {
		f.Severity = SevError
	}
	k := ctx.analyzer + "|" + key
	if old := ctx.byKey[k]; old != nil && key != "" {
		old.Count++
		if f.SeqLast > old.SeqLast {
			old.SeqLast = f.SeqLast
		}
		return
	}
	if f.Where == "" {
		f.Where = ctx.St.Syms.Describe(f.RIP)
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
	f.key = k
	ctx.byKey[k] = &f
	ctx.findings = append(ctx.findings, &f)
}

// Describe renders an address as symbol+offset.
func (ctx *Context) Describe(addr uint64) string { return ctx.St.Syms.Describe(addr) }

// Result is the outcome of analyzing one trace.
type Result struct {
	File      string     `json:"file"`
	Scenario  string     `json:"scenario"`
	Analyzers []string   `json:"analyzers"`
	Events    uint64     `json:"events"`
	Truncated bool       `json:"truncated"`
	Warnings  []string   `json:"warnings"`
	Findings  []*Finding `json:"findings"`
}

// Live analyzes rows as they are produced (by a running machine through the
// recorder, or by a trace reader): the one implementation behind both
// `analyze` and in-process checks.
type Live struct {
	ctx *Context
	as  []Analyzer
	res *Result
}

// NewLive prepares the state for a run described by md and starts the
// analyzers.
func NewLive(md *format.Meta, as []Analyzer) (*Live, error) {
	st, err := replay.NewState(md)
	if err != nil {
		return nil, err
	}
	return newLive(st, as)
}

func newLive(st *replay.State, as []Analyzer) (*Live, error) {
	ctx := &Context{St: st, byKey: map[string]*Finding{}, story: newStoryWindow(len(st.CPUs))}
	res := &Result{Scenario: st.Meta.Scenario, Warnings: append([]string{}, st.Warnings...)}
	for _, a := range as {
		res.Analyzers = append(res.Analyzers, a.ID())
		ctx.analyzer = a.ID()
		if err := a.Start(ctx); err != nil {
			return nil, fmt.Errorf("analyzer %s: %w", a.ID(), err)
		}
	}
	return &Live{ctx: ctx, as: as, res: res}, nil
}

// Append implements record.Appender: it applies one row and runs the
// analyzers on it.
func (l *Live) Append(r *format.Row) error {
	l.ctx.St.Apply(r)
	l.ctx.story.add(l.ctx.St, r)
	for _, a := range l.as {
		l.ctx.analyzer = a.ID()
		a.Event(l.ctx, r)
	}
	return nil
}

// Finish ends the stream and returns the result.
func (l *Live) Finish() *Result {
	for _, a := range l.as {
		l.ctx.analyzer = a.ID()
		a.Finish(l.ctx)
	}
	res := l.res
	res.Events = l.ctx.St.Applied
	sort.SliceStable(l.ctx.findings, func(i, j int) bool { return l.ctx.findings[i].SeqFirst < l.ctx.findings[j].SeqFirst })
	res.Findings = l.ctx.findings
	if res.Findings == nil {
		res.Findings = []*Finding{}
	}
	return res
}

// Run feeds rows through the state and the analyzers.
func Run(st *replay.State, rows iter.Seq2[*format.Row, error], as []Analyzer) (*Result, error) {
	l, err := newLive(st, as)
	if err != nil {
		return nil, err
	}
	for r, err := range rows {
		if err != nil {
			return l.Finish(), err
		}
		l.Append(r)
	}
	return l.Finish(), nil
}

// AnalyzeFile opens a trace and runs the analyzers over it. A truncated
// trace is analyzed up to its last complete batch, with a warning.
func AnalyzeFile(path string, as []Analyzer) (*Result, error) {
	r, err := format.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	st, err := replay.NewState(r.Meta())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res, err := Run(st, r.Events(), as)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.File = path
	if r.Truncated() {
		res.Truncated = true
		res.Warnings = append(res.Warnings, r.TruncatedError().Error()+": analyzed up to there")
	}
	return res, nil
}

// Package report renders a trace and its analysis as one self-contained
// HTML file: a per-CPU timeline (x = global sequence number, one lane per
// CPU, a sub-lane per task) with function spans, trap/IRQ/NMI nesting as
// stacked bands, text_poke writes, IPIs and scenario markers as marks, the
// int3 window of every patch site shaded across all lanes, and each finding
// drawn on it: its story events linked across CPUs in story order, the
// story beside it, and a click on an event showing its row.
//
// The file stays small on any trace: the whole run is embedded as a fixed
// number of per-bucket summaries (one bucket is a slice of the sequence
// range, summarised per CPU), and full rows only in windows around the
// findings' events, with every list capped. The viewer (report.js,
// report.css) is embedded with go:embed; the page loads nothing from the
// network.
package report

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// Options tunes a report; the zero value is the default.
type Options struct {
	// Expect is the expected verdict ("clean" or analyzer ids joined by
	// ","), judged by analyzer only; "" takes the expectation from the
	// scenario the trace records and judges it as check does
	// (analyze.Compare: counts, CPUs, symbols, lines).
	Expect string
	// Buckets is the number of summary buckets over the run (default 4096).
	Buckets int
	// Margin is how many events around each finding event are kept in
	// full (default 1500).
	Margin uint64
	// MaxDetail caps the rows kept in full over all windows (default 60000).
	MaxDetail int
	// MaxMarks caps each list of marks (writes, IPIs, markers; default 20000).
	MaxMarks int
}

func (o *Options) defaults() {
	if o.Buckets <= 0 {
		o.Buckets = 4096
	}
	if o.Margin == 0 {
		o.Margin = 1500
	}
	if o.MaxDetail <= 0 {
		o.MaxDetail = 60000
	}
	if o.MaxMarks <= 0 {
		o.MaxMarks = 20000
	}
}

// Flags of a summary bucket (per CPU): what happened in it.
const (
	flagBP     = 1 << iota // a #BP (int3) trap
	flagIRQ                // an external interrupt (vector >= 32)
	flagNMI                // an NMI
	flagTrap               // another exception
	flagPoke               // a text_poke (alias) write
	flagIPI                // an IPI sent or an interrupt injected
	flagMarker             // a scenario marker
	flagFault              // a fault (oops, panic, BUG)
)

// Data is everything the page shows, as embedded (JSON).
type Data struct {
	Title    string       `json:"title"`
	File     string       `json:"file"`
	Scenario string       `json:"scenario"`
	Seed     uint64       `json:"seed"`
	CPUs     int          `json:"cpus"`
	Events   uint64       `json:"events"`
	SeqLo    uint64       `json:"seq_lo"`
	SeqHi    uint64       `json:"seq_hi"`
	Decision int          `json:"decisions"`
	Outcome  string       `json:"outcome"`
	Verdict  string       `json:"verdict"`
	Got      string       `json:"got"`    // clean, or the analyzers that reported
	Expect   string       `json:"expect"` // "" when unknown
	Match    *bool        `json:"match"`  // got vs expect; null when expect is unknown
	Incomp   string       `json:"incomplete,omitempty"`
	Warnings []string     `json:"warnings"`
	Tasks    [][]uint32   `json:"tasks"` // per CPU, the tasks seen (sub-lanes), in order
	Strings  []string     `json:"strings"`
	Summary  Summary      `json:"summary"`
	Pokes    [][]any      `json:"pokes"`   // [seq, cpu, where(str), size, "old->new"]
	IPIs     [][]any      `json:"ipis"`    // [seq, cpu, what(str)]
	Markers  [][]any      `json:"markers"` // [seq, cpu, id, value (hex string past 2^53), name(str; "" if none)]
	Windows  []Int3Window `json:"int3_windows"`
	Detail   []Window     `json:"detail"`
	Findings []Finding    `json:"findings"`
	Capped   []string     `json:"capped"` // lists that hit their cap
}

// Summary is the whole run in Buckets buckets: per CPU, per bucket.
type Summary struct {
	Buckets int     `json:"buckets"`
	Width   float64 `json:"width"` // events per bucket
	Count   [][]int `json:"count"`
	Depth   [][]int `json:"depth"` // deepest trap nesting
	Flags   [][]int `json:"flags"`
	Sym     [][]int `json:"sym"`  // the function most instructions ran in (string index, -1 none)
	Task    [][]int `json:"task"` // sub-lane index of the last task
}

// Int3Window is the stretch during which a patch site's first byte was
// 0xcc (an int3), from the write that put it there to the one that
// replaced it (SeqHi = the run's end if none did).
type Int3Window struct {
	Site  string `json:"site"`
	SeqLo uint64 `json:"seq_lo"`
	SeqHi uint64 `json:"seq_hi"`
}

// Window is a stretch of the run kept in full.
type Window struct {
	SeqLo uint64 `json:"seq_lo"`
	SeqHi uint64 `json:"seq_hi"`
	// Rows: [seq, kind(str), cpu, task, depth, where(str), fields(str)];
	// fields is a string index of a JSON object with the row's other
	// columns (shared by identical rows), so the panel shows whatever
	// columns a row has.
	Rows [][]any `json:"rows"`
	// Spans: [cpu, sublane, depth, seq_lo, seq_hi, sym(str), ctx] where ctx
	// lists the vector taken at each trap depth, outermost first.
	Spans [][]any `json:"spans"`
}

// Finding is an analyze.Finding with the story events located.
type Finding struct {
	*analyze.Finding
	Events []StoryEvent `json:"events"` // story order (sequence order)
}

// StoryEvent is one event of a finding's story.
type StoryEvent struct {
	Seq      uint64 `json:"seq"`
	CPU      int    `json:"cpu"`
	Text     string `json:"text"`
	Evidence bool   `json:"evidence"`
}

var storySeq = regexp.MustCompile(`^seq (\d+) cpu(\d+)`)

// Build reads the trace at path a second time (res is its analysis) and
// gathers what the page shows.
func Build(path string, res *analyze.Result, opt Options) (*Data, error) {
	opt.defaults()
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
	d := &Data{File: path, Scenario: md.Scenario, Seed: md.Seed, CPUs: md.CPUs, Decision: md.DecisionCount,
		Outcome: analyze.OutcomeText(res), Verdict: res.Verdict, Incomp: res.Incomplete, Warnings: res.Warnings,
		Expect: opt.Expect, Pokes: [][]any{}, IPIs: [][]any{}, Markers: [][]any{}, Windows: []Int3Window{},
		Detail: []Window{}, Findings: []Finding{}, Capped: []string{}}
	d.Title = fmt.Sprintf("patchtrace: %s seed %d", md.Scenario, md.Seed)
	got := map[string]bool{}
	for _, f := range res.Findings {
		got[f.Analyzer] = true
	}
	d.Got = "clean"
	if len(got) > 0 {
		d.Got = joinSorted(got)
	}
	switch {
	case opt.Expect != "":
		m := res.Verdict != analyze.VerdictIncomplete && expectMatches(d.Expect, got)
		d.Match = &m
	case st.Spec != nil:
		// The scenario the trace records, judged as check judges it.
		d.Expect = st.Spec.Expect.String()
		m := res.Verdict != analyze.VerdictIncomplete && analyze.Compare(st.Spec.Expect, res.Findings).OK()
		d.Match = &m
	}
	b := newBuilder(d, st, md, opt)
	b.findings(res)
	first := true
	for row, err := range r.Events() {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if first {
			d.SeqLo, first = row.Seq, false
			total := md.Events
			if total == 0 || r.Truncated() {
				total = r.NumEvents()
			}
			b.setRange(row.Seq, total)
		}
		b.add(row)
		d.SeqHi = row.Seq
		d.Events++
	}
	b.finish()
	return d, nil
}

func joinSorted(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	s := ""
	for i, k := range ks {
		if i > 0 {
			s += ","
		}
		s += k
	}
	return s
}

// expectMatches follows check: clean needs no finding, otherwise every
// expected analyzer must report.
func expectMatches(expect string, got map[string]bool) bool {
	if expect == "clean" {
		return len(got) == 0
	}
	start := 0
	for i := 0; i <= len(expect); i++ {
		if i == len(expect) || expect[i] == ',' {
			if id := expect[start:i]; id != "" && !got[id] {
				return false
			}
			start = i + 1
		}
	}
	return true
}

type cpuState struct {
	vectors []int // trap stack: vectors
	span    []any // open span
	symIdx  int
	bucket  int
	symCnt  map[int]int
}

type builder struct {
	d      *Data
	st     *replay.State
	md     *format.Meta
	opt    Options
	strIdx map[string]int
	width  float64
	seq0   uint64
	cpus   []cpuState
	taskIx []map[uint32]int
	// windows to keep, merged, in order
	wins   []Window
	wi     int // current window index
	detail int
	// int3 windows open per site address
	open map[uint64]int
}

func newBuilder(d *Data, st *replay.State, md *format.Meta, opt Options) *builder {
	b := &builder{d: d, st: st, md: md, opt: opt, strIdx: map[string]int{}, open: map[uint64]int{}}
	n := md.CPUs
	s := &d.Summary
	s.Buckets = opt.Buckets
	for _, p := range []*[][]int{&s.Count, &s.Depth, &s.Flags, &s.Sym, &s.Task} {
		*p = make([][]int, n)
		for c := range *p {
			(*p)[c] = make([]int, opt.Buckets)
		}
	}
	for c := 0; c < n; c++ {
		for i := range s.Sym[c] {
			s.Sym[c][i] = -1
		}
	}
	b.cpus = make([]cpuState, n)
	for c := range b.cpus {
		b.cpus[c].bucket = -1
		b.cpus[c].symCnt = map[int]int{}
	}
	b.taskIx = make([]map[uint32]int, n)
	d.Tasks = make([][]uint32, n)
	for c := range b.taskIx {
		b.taskIx[c] = map[uint32]int{}
	}
	return b
}

func (b *builder) str(s string) int {
	if i, ok := b.strIdx[s]; ok {
		return i
	}
	i := len(b.d.Strings)
	b.d.Strings = append(b.d.Strings, s)
	b.strIdx[s] = i
	return i
}

func (b *builder) setRange(seq0, total uint64) {
	b.seq0 = seq0
	if total == 0 {
		total = 1
	}
	b.width = math.Max(1, float64(total)/float64(b.opt.Buckets))
	b.d.Summary.Width = b.width
}

// findings locates each finding's story and plans the windows kept in full.
func (b *builder) findings(res *analyze.Result) {
	type iv struct{ lo, hi uint64 }
	var ivs []iv
	m := b.opt.Margin
	for _, f := range res.Findings {
		ev := map[uint64]bool{}
		for _, s := range f.Evidence {
			ev[s] = true
		}
		var events []StoryEvent
		seen := map[uint64]bool{}
		for _, line := range f.Story {
			if g := storySeq.FindStringSubmatch(line); g != nil {
				seq, _ := strconv.ParseUint(g[1], 10, 64)
				cpu, _ := strconv.Atoi(g[2])
				events = append(events, StoryEvent{Seq: seq, CPU: cpu, Text: line, Evidence: ev[seq]})
				seen[seq] = true
			}
		}
		for _, s := range f.Evidence {
			if !seen[s] {
				events = append(events, StoryEvent{Seq: s, CPU: f.CPU, Text: fmt.Sprintf("seq %d cpu%d: evidence", s, f.CPU), Evidence: true})
			}
		}
		sort.SliceStable(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
		if events == nil {
			events = []StoryEvent{}
		}
		b.d.Findings = append(b.d.Findings, Finding{Finding: f, Events: events})
		pts := []uint64{f.SeqFirst}
		for _, e := range events {
			pts = append(pts, e.Seq)
		}
		for _, p := range pts {
			lo := uint64(0)
			if p > m {
				lo = p - m
			}
			ivs = append(ivs, iv{lo, p + m})
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].lo < ivs[j].lo })
	for _, v := range ivs {
		if n := len(b.wins); n > 0 && v.lo <= b.wins[n-1].SeqHi+1 {
			b.wins[n-1].SeqHi = max(b.wins[n-1].SeqHi, v.hi)
			continue
		}
		b.wins = append(b.wins, Window{SeqLo: v.lo, SeqHi: v.hi, Rows: [][]any{}, Spans: [][]any{}})
	}
}

func (b *builder) sublane(c int, task uint32) int {
	if i, ok := b.taskIx[c][task]; ok {
		return i
	}
	i := len(b.d.Tasks[c])
	b.taskIx[c][task] = i
	b.d.Tasks[c] = append(b.d.Tasks[c], task)
	return i
}

func (b *builder) capped(name string) {
	for _, c := range b.d.Capped {
		if c == name {
			return
		}
	}
	b.d.Capped = append(b.d.Capped, name)
}

func (b *builder) add(r *format.Row) {
	c := int(r.CPU)
	if c >= len(b.cpus) {
		return
	}
	cs := &b.cpus[c]
	s := &b.d.Summary
	bk := int(float64(r.Seq-b.seq0) / b.width)
	if bk >= s.Buckets {
		bk = s.Buckets - 1
	}
	if bk != cs.bucket {
		b.closeBucket(c)
		cs.bucket = bk
	}
	lane := b.sublane(c, r.Task)
	s.Count[c][bk]++
	s.Task[c][bk] = lane
	if int(r.Depth) > s.Depth[c][bk] {
		s.Depth[c][bk] = int(r.Depth)
	}
	sym := -1
	switch r.Kind {
	case format.KindInsn:
		if len(cs.vectors) > int(r.Depth) {
			cs.vectors = cs.vectors[:r.Depth]
		}
		if sy, ok := b.st.Syms.At(r.RIP); ok {
			sym = b.str(sy.Name)
		}
		cs.symCnt[sym]++
	case format.KindTrap:
		switch {
		case r.Vector == 3:
			s.Flags[c][bk] |= flagBP
		case r.Vector == 2:
			s.Flags[c][bk] |= flagNMI
		case r.Vector >= 32:
			s.Flags[c][bk] |= flagIRQ
		default:
			s.Flags[c][bk] |= flagTrap
		}
		cs.vectors = append(cs.vectors, int(r.Vector))
	case format.KindIret:
		if n := len(cs.vectors); n > 0 {
			cs.vectors = cs.vectors[:n-1]
		}
	case format.KindWrite:
		if r.Alias {
			s.Flags[c][bk] |= flagPoke
			b.poke(r)
		}
	case format.KindService:
		if r.Service == 7 { // pt_send_ipi
			s.Flags[c][bk] |= flagIPI
			b.mark(&b.d.IPIs, "ipis", []any{r.Seq, c, b.str(fmt.Sprintf("pt_send_ipi(cpu %d, vector %#x)", int64(r.Args[0]), r.Args[1]))})
		}
	case format.KindInject:
		s.Flags[c][bk] |= flagIPI
		b.mark(&b.d.IPIs, "ipis", []any{r.Seq, c, b.str(fmt.Sprintf("%s raised on cpu%d", format.VectorName(r.Vector), r.Addr))})
	case format.KindMarker:
		s.Flags[c][bk] |= flagMarker
		var val any = r.Args[1]
		if r.Args[1] >= 1<<53 { // beyond a JavaScript number's exact range
			val = hex(r.Args[1])
		}
		b.mark(&b.d.Markers, "markers", []any{r.Seq, c, r.Args[0], val, b.str(r.Msg)})
	case format.KindFault:
		s.Flags[c][bk] |= flagFault
	}
	// keep in full
	for b.wi < len(b.wins) && r.Seq > b.wins[b.wi].SeqHi {
		b.closeSpans(b.wi)
		b.wi++
	}
	if b.wi < len(b.wins) && r.Seq >= b.wins[b.wi].SeqLo {
		if b.detail >= b.opt.MaxDetail {
			b.capped("detail")
			return
		}
		b.detail++
		b.keep(&b.wins[b.wi], r, c, lane, sym)
	}
}

func (b *builder) closeBucket(c int) {
	cs := &b.cpus[c]
	if cs.bucket < 0 || len(cs.symCnt) == 0 {
		return
	}
	best, bn := -1, 0
	for k, n := range cs.symCnt {
		if n > bn || (n == bn && k < best) {
			best, bn = k, n
		}
	}
	b.d.Summary.Sym[c][cs.bucket] = best
	clear(cs.symCnt)
}

func (b *builder) mark(list *[][]any, name string, m []any) {
	if len(*list) >= b.opt.MaxMarks {
		b.capped(name)
		return
	}
	*list = append(*list, m)
}

func (b *builder) poke(r *format.Row) {
	n := int(r.Size)
	if n > 8 {
		n = 8
	}
	b.mark(&b.d.Pokes, "pokes", []any{r.Seq, int(r.CPU), b.str(b.st.Syms.Describe(r.Addr)), r.Size,
		b.str(fmt.Sprintf("%s -> %s", leBytes(r.Old, n), leBytes(r.New, n)))})
	for i := 0; i < n; i++ {
		old, nw := byte(r.Old>>(8*i)), byte(r.New>>(8*i))
		a := r.Addr + uint64(i)
		switch {
		case nw == 0xcc && old != 0xcc:
			if _, ok := b.open[a]; !ok {
				b.open[a] = len(b.d.Windows)
				b.d.Windows = append(b.d.Windows, Int3Window{Site: b.st.Syms.Describe(a), SeqLo: r.Seq, SeqHi: math.MaxUint64})
			}
		case old == 0xcc && nw != 0xcc:
			if i, ok := b.open[a]; ok {
				b.d.Windows[i].SeqHi = r.Seq
				delete(b.open, a)
			}
		}
	}
}

func leBytes(v uint64, n int) string {
	s := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%02x", byte(v>>(8*i)))
	}
	return s
}

func hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

// keep adds a row to a window and extends or opens its CPU's span.
func (b *builder) keep(w *Window, r *format.Row, c, lane, sym int) {
	d := b.st.Syms.Describe
	f := map[string]string{"rip": hex(r.RIP)}
	switch r.Kind {
	case format.KindInsn:
		op := ""
		if int(r.Op) < len(b.md.OpNames) {
			op = b.md.OpNames[r.Op]
		}
		f["instruction"] = op
		f["bytes"] = leBytesOf(r.Instruction())
	case format.KindWrite:
		f["store"] = fmt.Sprintf("%s (%d bytes): %s -> %s", d(r.Addr), r.Size, hex(r.Old), hex(r.New))
		f["addr"] = hex(r.Addr)
		if r.Alias {
			f["alias"] = hex(r.AliasAddr)
		}
		if r.PercpuVar != "" {
			f["percpu"] = fmt.Sprintf("%s[cpu%d]", r.PercpuVar, r.PercpuCPU)
		}
	case format.KindPercpuRead:
		f["load"] = fmt.Sprintf("per-CPU %s[cpu%d] = %s", r.PercpuVar, r.PercpuCPU, d(r.New))
	case format.KindLoad:
		if r.Percpu {
			f["load"] = fmt.Sprintf("per-CPU %s[cpu%d] = %s", r.PercpuVar, r.PercpuCPU, d(r.New))
		} else {
			f["load"] = fmt.Sprintf("%s = %s (%d bytes)", d(r.Addr), d(r.New), r.Size)
		}
	case format.KindTrap:
		f["vector"] = format.VectorName(r.Vector)
		f["handler"] = d(r.Handler)
		if r.IST != 0 {
			f["ist"] = strconv.Itoa(int(r.IST))
		}
		if r.HasErrCode {
			f["error_code"] = hex(r.ErrCode)
		}
		if r.HasAddr {
			f["addr"] = hex(r.Addr)
		}
	case format.KindIret:
		f["back_to"] = d(r.Handler)
	case format.KindPerm:
		f["perm"] = fmt.Sprintf("%s: %s %s -> %s", r.Service, d(r.Addr), format.PermString(r.PermOld), format.PermString(r.PermNew))
	case format.KindSerialize:
		f["cause"] = r.Cause.String()
	case format.KindSwitch:
		f["switch"] = fmt.Sprintf("task %d -> %d", r.Old, r.New)
	case format.KindService:
		f["service"] = r.Service.String()
		f["args"] = fmt.Sprintf("%s, %s, %s, %s", hex(r.Args[0]), hex(r.Args[1]), hex(r.Args[2]), hex(r.Args[3]))
		f["ret"] = hex(r.Ret)
	case format.KindMarker:
		f["marker"] = fmt.Sprintf("id %d value %d", r.Args[0], r.Args[1])
		if r.Msg != "" {
			f["name"] = r.Msg
		}
	case format.KindFault:
		f["message"] = r.Msg
	case format.KindInject:
		f["vector"] = format.VectorName(r.Vector)
		f["target"] = fmt.Sprintf("cpu%d", r.Addr)
	}
	w.Rows = append(w.Rows, []any{r.Seq, b.str(r.Kind.String()), c, r.Task, r.Depth, b.str(d(r.RIP)), b.str(fieldsJSON(f))})
	if r.Kind != format.KindInsn {
		return
	}
	cs := &b.cpus[c]
	// The trap stack as the span's context: the vector at each depth
	// (-1 where the stack does not say, e.g. a trace that starts nested).
	ctx := make([]int, r.Depth)
	for i := range ctx {
		ctx[i] = -1
		if i < len(cs.vectors) {
			ctx[i] = cs.vectors[i]
		}
	}
	if sp := cs.span; sp != nil && sp[1] == lane && sp[2] == int(r.Depth) && sp[5] == sym && slices.Equal(sp[6].([]int), ctx) {
		sp[4] = r.Seq
		return
	}
	b.closeSpan(w, c)
	cs.span = []any{c, lane, int(r.Depth), r.Seq, r.Seq, sym, ctx}
}

func (b *builder) closeSpan(w *Window, c int) {
	if sp := b.cpus[c].span; sp != nil {
		w.Spans = append(w.Spans, sp)
		b.cpus[c].span = nil
	}
}

func (b *builder) closeSpans(wi int) {
	for c := range b.cpus {
		b.closeSpan(&b.wins[wi], c)
	}
}

func (b *builder) finish() {
	for c := range b.cpus {
		b.closeBucket(c)
	}
	if b.wi < len(b.wins) {
		b.closeSpans(b.wi)
	}
	for i := range b.d.Windows {
		if b.d.Windows[i].SeqHi == math.MaxUint64 {
			b.d.Windows[i].SeqHi = b.d.SeqHi
		}
	}
	for _, w := range b.wins {
		if len(w.Rows) > 0 {
			w.SeqLo = max(w.SeqLo, b.d.SeqLo)
			w.SeqHi = min(w.SeqHi, b.d.SeqHi)
			b.d.Detail = append(b.d.Detail, w)
		}
	}
}

func leBytesOf(bs []byte) string {
	s := ""
	for i, x := range bs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%02x", x)
	}
	return s
}

package analyze

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// The causes of a finding: what, across CPUs, produced the values and the
// code the failing context ran on its way to the failure, chosen by
// causality rather than by a window of time. Kept in one pass, in memory
// that grows with the pages the run writes, never with its events:
//
//   - the last store to every byte written (a shadow of memory: per byte
//     the store's seq, per 8-byte word the last store's row), so that each
//     load names the store it read from when it is made;
//   - per CPU, its last causeRing instructions and loads (the loads with
//     the store each read from);
//   - the stores to code (through the text_poke alias, or to a page that
//     was executable or is in the slice image), in order, so that an
//     instruction names the store that put its bytes there even after
//     they were rewritten again;
//   - per task, the switches that took it off a CPU and back.
//
// When a finding is reported, causesOf walks back from its events through
// the failing context's recent instructions: the loads of the finding's
// own instructions (a ret's return word, a fault's operand) name their
// store whoever made it; the other loads name theirs when another CPU or
// task made it; an instruction whose bytes a text_poke (or another
// context) wrote names that write and the call that made it; and a task
// that was switched out while a cause happened, or came back within the
// window, names both switches. When the walk runs out of ring before the
// finding's first evidence, the analysis of a file names the causes
// before it in a second pass (reach.go).

const (
	causeRing       = 256  // instructions and loads kept per CPU
	causeMinInsns   = 48   // the window reaches at least this many instructions back
	causeMaxText    = 4096 // stores to code kept (the oldest half is let go when full)
	maxLoadCauses   = 4    // loads from another CPU told per finding
	maxDirectCauses = 6    // loads of the finding's own instructions told
	maxTaskCauses   = 2    // loads from another task on the same CPU told
	maxAwayTasks    = 2    // other tasks told switched out across the finding
	maxTextCauses   = 3    // code writes told per finding
	// causeMaxPages bounds the pages the last-store shadow covers (68 KiB
	// each): past it the shadow starts over, and stories say that stores
	// before then cannot be named. A slice's run writes tens of pages.
	causeMaxPages = 1024
	causeXRing    = 16 // loads of another CPU's store kept per CPU
	maxDeepCauses = 2  // causes of causes told per finding
)

// storeRec is a store, as a cause is told.
type storeRec struct {
	seq, rip, addr, val, old, aliasAddr uint64
	// caller is, for a store in a service (text_poke's alias writes),
	// the call that reached the service.
	caller    uint64
	size      uint32
	task      uint32
	cpu       uint16
	percpuCPU uint16
	depth     uint8
	alias     bool
	percpuVar uint16 // 1 + its index in the trace's percpu_var dictionary (0: not per-CPU)
}

// shadowPage is the last store to each byte of one page.
type shadowPage struct {
	seq [1 << 12]uint64 // seq+1 of the last store to the byte (0: none)
	rec [1 << 9]storeRec
}

// xload is a load of what another CPU stored, with that store.
type xload struct {
	s step
	w storeRec
}

// step is an instruction, a load or a trap of one CPU (no pointers: the
// rings are not scanned by the collector, and copying one needs no write
// barrier).
type step struct {
	seq, rip, addr, val uint64
	bytes               uint64 // an instruction: its first 8 bytes, as executed (little-endian)
	size                uint32
	task                uint32
	kind                format.Kind
	depth               uint8
	len                 uint8
	vector              uint8 // a trap: its vector
	hasW                bool  // a load: w holds the store it read from
	percpuCPU           uint16
	percpuVar           uint16 // as storeRec's
}

// switchRec is a task switch on a CPU.
type switchRec struct {
	seq, rip uint64
	cpu      uint16
	depth    uint8
	from, to uint32
	valid    bool
}

// taskSwitches is a task's last switches off a CPU and back (a ring, the
// newest at n-1), and the seq of its first switch in (0: none seen, it ran
// from the start).
type taskSwitches struct {
	ring  [8]switchRec // from == the task: a switch out; else in
	n     int
	first uint64
}

// trip returns the task's last switch out at or before seq hi, and the
// switch back in that followed it at or before hi (in.valid false: none).
func (ts *taskSwitches) trip(task uint32, hi uint64) (out, in switchRec) {
	for k := 1; k <= min(ts.n, len(ts.ring)); k++ {
		sw := ts.ring[(ts.n-k)%len(ts.ring)]
		if sw.seq > hi {
			continue
		}
		if sw.from == task {
			return sw, in
		}
		in = sw
	}
	return switchRec{}, switchRec{}
}

type causeTracker struct {
	shadow   map[uint64]*shadowPage
	reset    uint64 // seq of the last store before the shadow last started over (0: never)
	cacheVPN uint64
	cacheP   *shadowPage
	ring     [][causeRing]step
	w        [][causeRing]storeRec // for each load in ring, the store it read from
	// x is, per CPU, its last loads of what another CPU stored (a ring
	// of causeXRing, the newest at xn-1): what happened before its own
	// stores, for a cause's cause.
	x        [][causeXRing]xload
	xn       []int
	n        []int
	vars     []string // the trace's percpu_var dictionary
	text     []storeRec
	perms    []format.Row // permission changes of pages (not the alias's), in order
	switches map[uint32]*taskSwitches
	lastInsn []uint64 // per CPU, the rip of its last instruction
	caller   []uint64 // per CPU, the call that reached its last service
	loads    bool     // the trace records loads
	pending  []pendingCause
	gaps     []*reachGap // findings whose walk ran out of ring before their first evidence
	curSeq   uint64      // the seq of the store being recorded
}

// pendingCause is a finding whose causes are told when its CPU's next
// instruction comes (the loads of the instruction it was reported at
// follow that instruction's row), or at the end.
type pendingCause struct {
	f      *Finding
	anchor uint64
}

// pend queues f's causes, anchored at the last of its evidence (or the
// event being analyzed).
func (t *causeTracker) pend(st *replay.State, f *Finding) {
	anchor := st.Seq
	if len(f.Evidence) > 0 {
		anchor = min(anchor, slices.Max(f.Evidence))
	}
	t.pending = append(t.pending, pendingCause{f, anchor})
}

// flush tells the causes of the pending findings of CPU cpu (-1: all).
func (t *causeTracker) flush(st *replay.State, cpu int) {
	kept := t.pending[:0]
	for _, p := range t.pending {
		if cpu >= 0 && p.f.CPU != cpu {
			kept = append(kept, p)
			continue
		}
		lines, notes := t.causesOf(st, p.f, p.anchor)
		p.f.Story = withCauses(p.f.Story, lines, notes)
	}
	clear(t.pending[len(kept):])
	t.pending = kept
}

func newCauseTracker(st *replay.State) *causeTracker {
	cpus := len(st.CPUs)
	return &causeTracker{shadow: map[uint64]*shadowPage{}, ring: make([][causeRing]step, cpus), w: make([][causeRing]storeRec, cpus), n: make([]int, cpus),
		x: make([][causeXRing]xload, cpus), xn: make([]int, cpus), vars: st.Meta.PercpuVars,
		switches: map[uint32]*taskSwitches{}, lastInsn: make([]uint64, cpus), caller: make([]uint64, cpus),
		loads: st.Meta.Loads}
}

// causeNeeds is what the cause tracker reads of the rows.
var causeNeeds = Needs{
	Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindLoad, format.KindPercpuRead, format.KindService, format.KindSwitch, format.KindTrap, format.KindPerm},
	Columns: []int{format.ColLen, format.ColBytes, format.ColVector, format.ColAddr, format.ColSize, format.ColOld, format.ColNew, format.ColAlias, format.ColAliasAddr,
		format.ColPercpuCPU, format.ColPercpuVar},
}

func (t *causeTracker) page(vpn uint64, create bool) *shadowPage {
	if t.cacheP != nil && t.cacheVPN == vpn {
		return t.cacheP
	}
	p := t.shadow[vpn]
	if p == nil {
		if !create {
			return nil
		}
		if len(t.shadow) >= causeMaxPages {
			// Forget every page, keeping the bound (a hostile stream
			// writes everywhere; a run writes a few pages).
			clear(t.shadow)
			t.reset = t.curSeq
		}
		p = &shadowPage{}
		t.shadow[vpn] = p
	}
	t.cacheVPN, t.cacheP = vpn, p
	return p
}

// varIndex is a per-CPU variable's storeRec.percpuVar.
func (t *causeTracker) varIndex(v string) uint16 {
	if v == "" {
		return 0
	}
	return uint16(slices.Index(t.vars, v) + 1)
}

// writer sets *w to the last store to any byte of [addr, addr+size) so
// far, and reports whether there is one.
func (t *causeTracker) writer(w *storeRec, addr uint64, size uint32) bool {
	n := uint64(min(max(size, 1), 8))
	var best, bestAddr uint64
	if addr&0xfff+n <= 1<<12 {
		// Within one page (nearly every load).
		p := t.page(addr>>12, false)
		if p == nil {
			return false
		}
		for i, s := range p.seq[addr&0xfff : addr&0xfff+n] {
			if s > best {
				best, bestAddr = s, addr+uint64(i)
			}
		}
	} else {
		for i := uint64(0); i < n; i++ {
			a := addr + i
			if p := t.page(a>>12, false); p != nil && p.seq[a&0xfff] > best {
				best, bestAddr = p.seq[a&0xfff], a
			}
		}
	}
	if best == 0 {
		return false
	}
	*w = t.page(bestAddr>>12, false).rec[(bestAddr&0xfff)>>3]
	if w.seq != best-1 {
		// The word's record is a later store to its other bytes: the
		// store to these bytes is known by its seq alone.
		*w = storeRec{seq: best - 1}
	}
	return true
}

func (t *causeTracker) add(st *replay.State, r *format.Row) {
	c := int(r.CPU)
	if c >= len(t.ring) {
		return
	}
	switch r.Kind {
	case format.KindInsn:
		if len(t.pending) > 0 {
			t.flush(st, c)
		}
		t.lastInsn[c] = r.RIP
		s := &t.ring[c][t.n[c]%causeRing]
		s.seq, s.rip, s.task, s.depth, s.kind, s.len, s.hasW = r.Seq, r.RIP, r.Task, r.Depth, r.Kind, r.Len, false
		s.bytes = binary.LittleEndian.Uint64(r.Bytes[:8])
		t.n[c]++
	case format.KindLoad, format.KindPercpuRead:
		if !r.HasAddr && r.Kind == format.KindPercpuRead {
			return
		}
		i := t.n[c] % causeRing
		s := &t.ring[c][i]
		*s = step{seq: r.Seq, rip: r.RIP, addr: r.Addr, val: r.New, size: r.Size, task: r.Task, depth: r.Depth, kind: r.Kind,
			percpuCPU: r.PercpuCPU, percpuVar: t.varIndex(r.PercpuVar)}
		s.hasW = t.writer(&t.w[c][i], r.Addr, r.Size)
		if w := &t.w[c][i]; s.hasW && w.cpu != uint16(c) && w.size != 0 {
			t.x[c][t.xn[c]%causeXRing] = xload{*s, *w}
			t.xn[c]++
		}
		t.n[c]++
	case format.KindTrap:
		t.push(c, step{seq: r.Seq, rip: r.RIP, task: r.Task, depth: r.Depth, kind: r.Kind, vector: r.Vector, addr: r.Addr, hasW: r.HasAddr})
	case format.KindPerm:
		if !r.Alias {
			if len(t.perms) == causeMaxText {
				t.perms = append(t.perms[:0], t.perms[causeMaxText/2:]...)
			}
			t.perms = append(t.perms, *r)
		}
	case format.KindService:
		t.caller[c] = t.lastInsn[c]
	case format.KindSwitch:
		sw := switchRec{seq: r.Seq, rip: r.RIP, cpu: r.CPU, depth: r.Depth, from: uint32(r.Old), to: uint32(r.New), valid: true}
		for _, task := range []uint32{sw.from, sw.to} {
			ts := t.switches[task]
			if ts == nil {
				ts = &taskSwitches{}
				t.switches[task] = ts
			}
			ts.ring[ts.n%len(ts.ring)] = sw
			ts.n++
			if task == sw.to && ts.first == 0 {
				ts.first = sw.seq
			}
		}
	case format.KindWrite:
		t.noteWrite(r, r.Alias || st.Mem.Perm(r.Addr)&replay.PermX != 0)
	}
}

// noteWrite records store r as the last to its bytes, and among the
// stores to code when text says r wrote code.
func (t *causeTracker) noteWrite(r *format.Row, text bool) {
	c := int(r.CPU)
	t.curSeq = r.Seq
	rec := storeRec{seq: r.Seq, rip: r.RIP, addr: r.Addr, val: r.New, old: r.Old, size: r.Size, task: r.Task, cpu: r.CPU,
		depth: r.Depth, alias: r.Alias, aliasAddr: r.AliasAddr, percpuCPU: r.PercpuCPU, percpuVar: t.varIndex(r.PercpuVar)}
	if r.Alias && c < len(t.caller) {
		rec.caller = t.caller[c]
	}
	n := uint64(min(max(r.Size, 1), 8))
	if a := r.Addr; a&0xfff+n <= 1<<12 {
		p := t.page(a>>12, true)
		for i := a & 0xfff; i < a&0xfff+n; i++ {
			p.seq[i] = r.Seq + 1
		}
		p.rec[(a&0xfff)>>3] = rec
		if e := (a + n - 1) & 0xfff; e>>3 != (a&0xfff)>>3 {
			p.rec[e>>3] = rec
		}
	} else {
		for i := uint64(0); i < n; i++ {
			a := r.Addr + i
			p := t.page(a>>12, true)
			p.seq[a&0xfff] = r.Seq + 1
			p.rec[(a&0xfff)>>3] = rec
		}
	}
	if text {
		if len(t.text) == causeMaxText {
			t.text = append(t.text[:0], t.text[causeMaxText/2:]...)
		}
		t.text = append(t.text, rec)
	}
}

func (t *causeTracker) push(c int, s step) {
	t.ring[c][t.n[c]%causeRing] = s
	t.n[c]++
}

// textWriter returns the last store to code that wrote a byte of
// [addr, addr+n) before seq.
func (t *causeTracker) textWriter(addr uint64, n uint8, seq uint64) (storeRec, bool) {
	for i := len(t.text) - 1; i >= 0; i-- {
		w := &t.text[i]
		if w.seq >= seq {
			continue
		}
		if w.addr < addr+uint64(max(n, 1)) && addr < w.addr+uint64(max(w.size, 1)) {
			return *w, true
		}
	}
	return storeRec{}, false
}

// before returns the last load, by the context that made store w, of
// what another CPU stored, before w (false: none kept).
func (t *causeTracker) before(w *storeRec) (*xload, bool) {
	c := int(w.cpu)
	if c >= len(t.x) {
		return nil, false
	}
	for k := 1; k <= min(t.xn[c], causeXRing); k++ {
		x := &t.x[c][(t.xn[c]-k)%causeXRing]
		if x.s.seq < w.seq && x.s.task == w.task {
			return x, true
		}
	}
	return nil, false
}

// permWriter returns the last permission change of the page holding
// addr before seq.
func (t *causeTracker) permWriter(addr, seq uint64) (*format.Row, bool) {
	vpn := addr >> 12
	for i := len(t.perms) - 1; i >= 0; i-- {
		p := &t.perms[i]
		if p.Seq < seq && vpn >= p.Addr>>12 && vpn < p.Addr>>12+uint64(max(p.Size, 1)) {
			return p, true
		}
	}
	return nil, false
}

// codeWriter returns the store that wrote the bytes an instruction at
// addr (n bytes) executed at seq, if any store did: the shadow when
// nothing wrote them since, else the stores to code.
func (t *causeTracker) codeWriter(addr uint64, n uint8, seq uint64) (storeRec, bool) {
	var w storeRec
	if !t.writer(&w, addr, uint32(max(n, 1))) {
		return storeRec{}, false
	}
	if w.seq < seq && w.size != 0 {
		return w, true
	}
	return t.textWriter(addr, n, seq)
}

// causeLine is a story line with the seq it tells, and what it adds to
// the window's line for the same event when the story has one.
type causeLine struct {
	seq        uint64
	text, note string
}

// causesOf returns the story lines that tell a finding's causes (in no
// particular order), and notes (lines without a seq) on what could not
// be told.
func (t *causeTracker) causesOf(st *replay.State, f *Finding, anchor uint64) (lines []causeLine, notes []string) {
	c := f.CPU
	if c < 0 || c >= len(t.ring) || t.n[c] == 0 {
		return nil, nil
	}
	lo := anchor
	for _, e := range f.Evidence {
		lo = min(lo, e)
	}
	// The failing context's steps up to the anchor (and the loads of the
	// anchor's instruction, which follow it), newest first.
	cnt := min(t.n[c], causeRing)
	after := ^uint64(0) // the first instruction after the anchor
	for j := 0; j < cnt; j++ {
		if s := &t.ring[c][(t.n[c]-1-j)%causeRing]; s.seq > anchor && s.kind == format.KindInsn {
			after = s.seq
		}
	}
	var win []*step
	var winIdx []int // each step's index in the ring
	insns := 0
	clipped := true
	for j := 0; j < cnt; j++ {
		i := (t.n[c] - 1 - j) % causeRing
		s := &t.ring[c][i]
		if s.seq >= after || (s.seq > anchor && s.kind == format.KindTrap) {
			continue
		}
		if s.seq < lo && insns >= causeMinInsns {
			clipped = false
			break
		}
		if s.task != f.Task {
			continue
		}
		win = append(win, s)
		winIdx = append(winIdx, i)
		if s.kind == format.KindInsn {
			insns++
		}
	}
	if len(win) == 0 {
		return nil, nil
	}
	if cnt < causeRing {
		clipped = false
	}
	from := win[len(win)-1].seq
	evHi := anchor
	if last := win[0].seq; last > anchor {
		anchor = last
	}
	where := fmt.Sprintf("cpu%d task %d", c, f.Task)
	var gap *reachGap
	if clipped && from > lo {
		note := fmt.Sprintf("cause: %s's events before seq %d are beyond the story's reach (its last %d instructions and loads)", where, from, causeRing)
		notes = append(notes, note)
		gap = &reachGap{f: f, cpu: c, lo: lo, from: from, reachNote: note}
		t.gaps = append(t.gaps, gap)
	}
	told := map[uint64]bool{}
	add := func(seq uint64, text, note string) {
		if !told[seq] {
			told[seq] = true
			if note != "" {
				text += " " + note
			}
			lines = append(lines, causeLine{seq, text, note})
		}
	}
	// Loads: those of the finding's own instructions (evidence, and the
	// context's last instruction) name their store whoever made it; the
	// others when another CPU or task made it, newest first. A load
	// belongs to the instruction before it: walk oldest first.
	// An instruction is the finding's own when it is evidence (the
	// context's last, for a finding without evidence), or the one an exception (a fault: not #DB, NMI,
	// #BP or an interrupt) was raised at.
	ownInsn := map[uint64]bool{}
	var prevInsn uint64
	for i := len(win) - 1; i >= 0; i-- {
		switch s := win[i]; s.kind {
		case format.KindInsn:
			prevInsn = s.seq
			if slices.Contains(f.Evidence, s.seq) || (len(f.Evidence) == 0 && i == lastInsnIndex(win)) {
				ownInsn[s.seq] = true
			}
		case format.KindTrap:
			if s.vector < 32 && s.vector != 1 && s.vector != 2 && s.vector != 3 && prevInsn != 0 {
				ownInsn[prevInsn] = true
			}
		}
	}
	direct := map[uint64]bool{}
	var insnOf uint64
	for i := len(win) - 1; i >= 0; i-- {
		switch s := win[i]; s.kind {
		case format.KindInsn:
			insnOf = s.seq
		case format.KindLoad, format.KindPercpuRead:
			if ownInsn[insnOf] {
				direct[s.seq] = true
			}
		}
	}
	// A store by another context is a cause when it was made while the
	// loading task lived (after its first switch in): what set the
	// machine up before it ran is not.
	var born uint64
	if ts := t.switches[f.Task]; ts != nil {
		born = ts.first
	}
	nLoads, nCross, nTask, nDirect := 0, 0, 0, 0
	var causeSeqs []uint64
	nDeep := 0
	for k, s := range win {
		if s.kind != format.KindLoad && s.kind != format.KindPercpuRead {
			continue
		}
		nLoads++
		if !s.hasW {
			continue
		}
		w := &t.w[c][winIdx[k]]
		cross := w.cpu != uint16(c) && w.seq > born && w.size != 0
		otherTask := w.cpu == uint16(c) && w.task != s.task && w.seq > born && w.size != 0
		switch {
		case direct[s.seq] && nDirect < maxDirectCauses:
			nDirect++
		case cross && nCross < maxLoadCauses:
			nCross++
		case otherTask && nTask < maxTaskCauses:
			nTask++
		default:
			continue
		}
		add(w.seq, t.tellStore(st, w), fmt.Sprintf("[cause: read by cpu%d task %d at seq %d, %s]", c, s.task, s.seq, placeOf(st, s.rip)))
		add(s.seq, t.tellLoad(st, c, s), storedBy(w))
		causeSeqs = append(causeSeqs, w.seq)
		if (cross || otherTask) && nDeep < maxDeepCauses {
			// The cause's cause: what the storing context had read of
			// another CPU's stores just before it stored (it happened
			// before, and the store may have waited for it).
			if x, ok := t.before(w); ok && !told[x.w.seq] {
				nDeep++
				add(x.w.seq, t.tellStore(st, &x.w), fmt.Sprintf("[cause: read by cpu%d task %d at seq %d, %s, before its store at seq %d]", w.cpu, x.s.task, x.s.seq, placeOf(st, x.s.rip), w.seq))
				add(x.s.seq, t.tellLoad(st, int(w.cpu), &x.s), storedBy(&x.w))
			}
		}
	}
	if t.reset != 0 && t.reset >= from-min(from, 1) {
		notes = append(notes, fmt.Sprintf("cause: the record of the last store to each byte started over at seq %d (more than %d pages written): the stores read before it cannot be named", t.reset, causeMaxPages))
	}
	if !t.loads {
		notes = append(notes, fmt.Sprintf("cause: loads not recorded (the trace was recorded with --no-loads): the stores %s read on its way here cannot be named", where))
	} else if nCross+nTask == 0 {
		note := fmt.Sprintf("cause: none of the %d loads of %s in seq %d..%d read a value another CPU or task stored", nLoads, where, from, anchor)
		notes = append(notes, note)
		if gap != nil {
			gap.noneNote = note
		}
	}
	if gap != nil {
		gap.born, gap.cross, gap.task = born, maxLoadCauses-nCross, maxTaskCauses-nTask
	}
	// Code: the instructions whose bytes a store wrote after the slice
	// image was loaded, through text_poke or by another context.
	nText := 0
	seenW := map[uint64]bool{}
	for _, s := range win {
		if s.kind != format.KindInsn || nText >= maxTextCauses {
			continue
		}
		w, ok := t.codeWriter(s.rip, s.len, s.seq)
		if !ok || seenW[w.seq] || w.size == 0 || w.seq <= born {
			continue
		}
		if !w.alias && w.cpu == uint16(c) && w.task == s.task {
			continue
		}
		seenW[w.seq] = true
		nText++
		ran := "executed these bytes"
		if !sameBytes(&w, s) {
			ran = "ran a stale decode instead of these bytes"
		}
		add(w.seq, t.tellStore(st, &w), fmt.Sprintf("[cause: cpu%d task %d %s at seq %d, %s]", c, s.task, ran, s.seq, placeOf(st, s.rip)))
		causeSeqs = append(causeSeqs, w.seq)
	}
	// The task's last trip off the CPU, when a cause happened while it
	// was away or it came back within the window.
	if ts := t.switches[f.Task]; ts != nil {
		if out, in := ts.trip(f.Task, anchor); out.valid && in.valid {
			away := in.seq >= from
			for _, cs := range causeSeqs {
				if cs > out.seq && cs < in.seq {
					away = true
				}
			}
			if away {
				add(out.seq, tellSwitch(st, out), fmt.Sprintf("[task %d switched out]", f.Task))
				add(in.seq, tellSwitch(st, in), fmt.Sprintf("[task %d switched back in]", f.Task))
			}
		}
	}
	// Page faults: the permission change that left the page as the
	// fault found it (a free that unmapped it, a protect), whoever made
	// it.
	nPerm := 0
	for _, s := range win {
		if s.kind != format.KindTrap || s.vector != 14 || !s.hasW || nPerm >= maxTextCauses {
			continue
		}
		if p, ok := t.permWriter(s.addr, s.seq); ok && !(p.CPU == uint16(c) && p.Task == s.task && p.Seq >= from) {
			nPerm++
			add(p.Seq, tellRow(st, p), fmt.Sprintf("[cause: cpu%d task %d faulted on this page at seq %d, address %#x]", c, s.task, s.seq, s.addr))
		}
	}
	// Other tasks switched out within the finding's span (its first to
	// its last evidence) and not run again by its end, the first first:
	// left wherever they were, which a finding about a region they may
	// still be in is about.
	if len(f.Evidence) > 1 {
		var away []switchRec
		for task, ts := range t.switches {
			if out, in := ts.trip(task, evHi); task != f.Task && out.valid && out.seq >= lo && !in.valid {
				away = append(away, out)
			}
		}
		slices.SortFunc(away, func(a, b switchRec) int { return cmp.Compare(a.seq, b.seq) })
		for _, out := range away[:min(len(away), maxAwayTasks)] {
			add(out.seq, tellSwitch(st, out), fmt.Sprintf("[task %d switched out, not run again by seq %d]", out.from, evHi))
		}
	}
	return lines, notes
}

// sameBytes reports whether instruction s executed the bytes store w
// wrote (those of them within its first 8 bytes): a CPU that kept a stale
// decode executed others.
func sameBytes(w *storeRec, s *step) bool {
	for j := max(w.addr, s.rip); j < min(w.addr+uint64(min(w.size, 8)), s.rip+uint64(min(s.len, 8))); j++ {
		if byte(w.val>>(8*(j-w.addr))) != byte(s.bytes>>(8*(j-s.rip))) {
			return false
		}
	}
	return true
}

// lastInsnIndex is the index in win (newest first) of the newest
// instruction.
func lastInsnIndex(win []*step) int {
	for i, s := range win {
		if s.kind == format.KindInsn {
			return i
		}
	}
	return -1
}

// placeOf is an instruction's place: symbol+off (file:line).
func placeOf(st *replay.State, rip uint64) string {
	if fl := st.Syms.Line(rip); fl != "" {
		return st.Syms.Describe(rip) + " (" + fl + ")"
	}
	return st.Syms.Describe(rip)
}

func ctxHead(seq uint64, cpu uint16, task uint32, depth uint8) string {
	h := fmt.Sprintf("seq %d cpu%d task %d", seq, cpu, task)
	if depth > 0 {
		h += fmt.Sprintf(" (trap depth %d)", depth)
	}
	return h
}

// memName names the bytes a load or store touched.
func (t *causeTracker) memName(st *replay.State, addr uint64, v, cpu uint16) string {
	if v > 0 && int(v) <= len(t.vars) {
		return fmt.Sprintf("per-CPU %s[cpu%d]", t.vars[v-1], cpu)
	}
	return st.Syms.Describe(addr)
}

// tellStore tells a store that caused something.
func (t *causeTracker) tellStore(st *replay.State, w *storeRec) string {
	d := st.Syms.Describe
	head := ctxHead(w.seq, w.cpu, w.task, w.depth)
	if w.alias {
		s := fmt.Sprintf("%s: text_poke writes %s (%d bytes, %#x -> %#x) through the alias %#x", head, d(w.addr), w.size, w.old, w.val, w.aliasAddr)
		if w.caller != 0 {
			s += " from " + placeOf(st, w.caller)
		}
		return s
	}
	return fmt.Sprintf("%s: %s stores %s at %s (%d bytes, was %s)", head, placeOf(st, w.rip), d(w.val), t.memName(st, w.addr, w.percpuVar, w.percpuCPU), w.size, d(w.old))
}

// tellLoad tells a load.
func (t *causeTracker) tellLoad(st *replay.State, c int, s *step) string {
	return fmt.Sprintf("%s: %s reads %s = %s (%d bytes)", ctxHead(s.seq, uint16(c), s.task, s.depth), placeOf(st, s.rip),
		t.memName(st, s.addr, s.percpuVar, s.percpuCPU), st.Syms.Describe(s.val), s.size)
}

// storedBy is the note a load's line gets: the store it read from.
func storedBy(w *storeRec) string {
	if w.size == 0 {
		return fmt.Sprintf("[stored at seq %d]", w.seq)
	}
	return fmt.Sprintf("[stored at seq %d by cpu%d task %d]", w.seq, w.cpu, w.task)
}

func tellSwitch(st *replay.State, sw switchRec) string {
	return fmt.Sprintf("%s: switches task %d -> %d at %s", ctxHead(sw.seq, sw.cpu, sw.from, sw.depth), sw.from, sw.to, placeOf(st, sw.rip))
}

// withCauses merges a finding's cause lines into its story: in seq order,
// the window's line for an event a cause line tells keeping its text with
// the cause's note added, the notes last.
func withCauses(story []string, causes []causeLine, notes []string) []string {
	if len(causes) == 0 && len(notes) == 0 {
		return story
	}
	bySeq := map[uint64]string{}
	for _, c := range causes {
		bySeq[c.seq] = c.note
	}
	var lines []causeLine
	var rest []string
	for _, l := range story {
		seq, ok := storyLineSeq(l)
		if !ok {
			rest = append(rest, l)
			continue
		}
		if note, ok := bySeq[seq]; ok {
			if note != "" {
				l += " " + note
			}
			delete(bySeq, seq)
		}
		lines = append(lines, causeLine{seq: seq, text: l})
	}
	for _, c := range causes {
		if _, ok := bySeq[c.seq]; ok {
			lines = append(lines, c)
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].seq < lines[j].seq })
	out := make([]string, 0, len(lines)+len(rest)+len(notes))
	for _, l := range lines {
		out = append(out, l.text)
	}
	out = append(out, rest...)
	return append(out, notes...)
}

// storyLineSeq reads the seq a story line tells ("seq N cpuM ...").
func storyLineSeq(l string) (uint64, bool) {
	rest, ok := strings.CutPrefix(l, "seq ")
	if !ok {
		return 0, false
	}
	var seq uint64
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		seq = seq*10 + uint64(rest[n]-'0')
		n++
	}
	return seq, n > 0
}

package gdbserver

import (
	"errors"
	"fmt"
	"sort"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/replay"
)

// target is the recorded run as the debugger sees it: a position in the
// trace (after event seq, or before the first event) and the breakpoints
// and watchpoints set.
//
// The position is global: every CPU's state is the trace's after the
// position's event. A CPU's pc is the rip of its next insn, service or
// trap row after the position (a trap's rip: the instruction it
// interrupted or returns to); its registers are the fold of its register
// deltas up to the position. A stop is a position just before one of a
// CPU's "step rows": an insn row, or a service row (a native service such
// as text_poke runs at its stub's address as one instruction).
type target struct {
	r    *format.Reader
	cur  *replay.Cursor
	md   *format.Meta
	syms *replay.Symbols
	ncpu int

	bps     map[uint64]bool
	watches []watch

	// lastPC[c] is the seq of cpu c's last insn, service or trap row
	// (hasPC false: it has none): past it the CPU's pc is unknown.
	lastPC []uint64
	hasPC  []bool
	// gsBase[c] is cpu c's GS base (the slice ABI's per-CPU area), or
	// 0 when the slice has no per-CPU section.
	gsBase   []uint64
	hasLoads bool // the trace has a load row for every data read (format version 4)
	// recorded is how the trace's rows contradict what its metadata says
	// it records (format.RecordedCheck; "" when they do not), checked
	// once when first needed (recordedChecked).
	recorded        string
	recordedErr     error
	recordedChecked bool

	batches batchCache

	pcs      []uint64 // the CPUs' pcs at the position (pcsOK), computed on demand
	pcsKnown []bool
	pcsOK    bool
}

// watch is a hardware watchpoint: Z2 (write), Z3 (read) or Z4 (access).
type watch struct {
	kind    byte
	addr, n uint64
}

func (w watch) hits(addr, n uint64) bool {
	end := w.addr + w.n
	if end < w.addr {
		end = ^uint64(0) // a range to the top of the address space
	}
	return n > 0 && addr < end && addr+n > w.addr
}

// stop is where a resume ended and why.
type stop struct {
	cpu    int
	reason string // the T packet's stop reason ("swbreak:;", "watch:ADDR;", "replaylog:end;", "")
}

func newTarget(r *format.Reader, progress func(batch, batches int)) (*target, error) {
	md := r.Meta()
	cur, err := replay.NewCursor(r, nil)
	if err != nil {
		return nil, err
	}
	t := &target{r: r, cur: cur, md: md, syms: cur.State().Syms, ncpu: md.CPUs, bps: map[uint64]bool{}, batches: batchCache{r: r}}
	t.lastPC = make([]uint64, t.ncpu)
	t.hasPC = make([]bool, t.ncpu)
	t.gsBase = make([]uint64, t.ncpu)
	if e, err := slice.Open(md.ELF); err == nil && len(e.Percpu) > 0 {
		stride := slice.PercpuStride(uint64(len(e.Percpu)))
		for c := range t.gsBase {
			t.gsBase[c] = slice.PercpuBase + uint64(c)*stride
		}
	}
	t.hasLoads = md.Loads
	// Every snapshot up front (any later seek costs at most the interval
	// between two), then each CPU's last pc row, from the end back.
	if err := cur.Index(progress); err != nil {
		return nil, fmt.Errorf("reading the trace: %w", err)
	}
	left := t.ncpu
	err = t.scanBack(func(row *format.Row) bool {
		c := int(row.CPU)
		if c < t.ncpu && isPCRow(row) && !t.hasPC[c] {
			t.lastPC[c], t.hasPC[c] = row.Seq, true
			left--
		}
		return left > 0
	})
	if err != nil {
		return nil, err
	}
	// Start before the first step row.
	cur.Rewind()
	first := -1
	var firstSeq uint64
	err = t.scan(func(row *format.Row) bool {
		if isStepRow(row) {
			first, firstSeq = int(row.CPU), row.Seq
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if first < 0 {
		return nil, errors.New("the trace has no instruction")
	}
	if err := t.seekBefore(firstSeq); err != nil {
		return nil, err
	}
	return t, nil
}

// isStepRow: an instruction of the CPU (a native service is one).
func isStepRow(r *format.Row) bool {
	return r.Kind == format.KindInsn || r.Kind == format.KindService
}

// isPCRow: a row whose rip is the CPU's pc before it (a halt row's rip
// is the instruction after the HLT, where a halted CPU's RIP points: SDM
// Vol. 2A HLT).
func isPCRow(r *format.Row) bool {
	return isStepRow(r) || r.Kind == format.KindTrap || r.Kind == format.KindHalt
}

// isInsnTail: rows that belong to the instruction before them on the
// same CPU (its stores and loads, a service's permission changes).
func (t *target) isInsnTail(r *format.Row) bool {
	switch r.Kind {
	case format.KindWrite, format.KindPercpuRead, format.KindPerm:
		return true
	}
	return t.hasLoads && r.Kind == format.KindLoad
}

// recordedProblem says how the trace's rows contradict its metadata's
// patchtrace.recorded ("" when they do not): when loads are claimed but
// missing, a read watchpoint would never fire and say nothing read the
// memory. It reads the trace through once, on first use, with only the
// columns the check needs (the index's fold does not decode the op
// column nor keep load rows, and widening it would slow every seek).
func (t *target) recordedProblem() (string, error) {
	if !t.recordedChecked {
		t.recordedChecked = true
		c := format.NewRecordedCheck(t.md)
		for row, err := range t.r.ScanFrom(0, format.Projection{Columns: format.RecordedColumns()}) {
			if err != nil {
				if errors.Is(err, format.ErrTruncated) {
					break // the events before the cut are what is served
				}
				t.recordedErr = fmt.Errorf("checking the trace against its metadata: %w", err)
				return "", t.recordedErr
			}
			c.Add(row)
		}
		t.recorded = c.Problem()
	}
	return t.recorded, t.recordedErr
}

// pos returns the position: after event seq (at), or before the first.
func (t *target) pos() (seq uint64, at bool) {
	_, at = t.cur.Row()
	return t.cur.Seq(), at
}

// seekBefore positions the target just before the event with sequence
// number seq: after every event with a smaller one.
func (t *target) seekBefore(seq uint64) error {
	t.pcsOK = false
	if seq == 0 {
		t.cur.Rewind()
		return nil
	}
	err := t.cur.Seek(seq - 1)
	if errors.Is(err, replay.ErrNoEvent) {
		t.cur.Rewind()
		return nil
	}
	return err
}

// seekAfter positions the target after event seq.
func (t *target) seekAfter(seq uint64) error {
	t.pcsOK = false
	return t.cur.Seek(seq)
}

// scan calls fn for each event after the position, in order, until fn
// returns false, without moving (Cursor.Scan, through the target's batch
// cache: a debugger scans around one place again and again).
func (t *target) scan(fn func(*format.Row) bool) error {
	seq, at := t.pos()
	from := uint64(0)
	if at {
		if seq == ^uint64(0) {
			return nil
		}
		from = seq + 1
	}
	bi, err := t.r.Seek(from)
	if err != nil {
		return err
	}
	var row format.Row
	for ; bi < t.r.NumBatches(); bi++ {
		b, err := t.batches.get(bi)
		if err != nil {
			return err
		}
		for j := b.Search(from); j < b.Len(); j++ {
			b.Row(j, &row)
			if !fn(&row) {
				return nil
			}
		}
	}
	return nil
}

// scanBack calls fn for each event at or before the position, newest
// first, until fn returns false, without moving.
func (t *target) scanBack(fn func(*format.Row) bool) error {
	seq, at := t.pos()
	if !at {
		return nil
	}
	bi, err := t.r.Seek(seq)
	if err != nil {
		return err
	}
	bi = min(bi, t.r.NumBatches()-1)
	var row format.Row
	for ; bi >= 0; bi-- {
		b, err := t.batches.get(bi)
		if err != nil {
			return err
		}
		j := b.Len()
		if seq < ^uint64(0) {
			j = b.Search(seq + 1)
		}
		for j--; j >= 0; j-- {
			b.Row(j, &row)
			if !fn(&row) {
				return nil
			}
		}
	}
	return nil
}

// batchCache keeps the last few batches read (decoded once, read by row
// many times).
type batchCache struct {
	r   *format.Reader
	idx [4]int
	b   [4]*format.Batch
	n   int // next slot to replace
}

func (c *batchCache) get(i int) (*format.Batch, error) {
	for k, b := range c.b {
		if b != nil && c.idx[k] == i {
			return b, nil
		}
	}
	b, err := c.r.Batch(i)
	if err != nil {
		return nil, err
	}
	k := c.n
	c.n = (c.n + 1) % len(c.b)
	if c.b[k] != nil {
		c.b[k].Release()
	}
	c.b[k], c.idx[k] = b, i
	return b, nil
}

func (c *batchCache) close() {
	for k, b := range c.b {
		if b != nil {
			b.Release()
			c.b[k] = nil
		}
	}
}

// computePCs finds each CPU's next pc row after the position.
func (t *target) computePCs() error {
	if t.pcsOK {
		return nil
	}
	seq, at := t.pos()
	t.pcs = make([]uint64, t.ncpu)
	t.pcsKnown = make([]bool, t.ncpu)
	left := 0
	for c := 0; c < t.ncpu; c++ {
		if t.hasPC[c] && (!at || t.lastPC[c] > seq) {
			left++
		}
	}
	if left > 0 {
		err := t.scan(func(row *format.Row) bool {
			c := int(row.CPU)
			if c < t.ncpu && isPCRow(row) && !t.pcsKnown[c] {
				t.pcs[c], t.pcsKnown[c] = row.RIP, true
				left--
			}
			return left > 0
		})
		if err != nil {
			return err
		}
	}
	// A CPU halted for good: its RIP is after the HLT (the halt row's).
	for c := 0; c < t.ncpu; c++ {
		if cc, ok := t.cur.CPU(c); ok && !t.pcsKnown[c] && cc.Last == format.KindHalt {
			t.pcs[c], t.pcsKnown[c] = cc.RIP, true
		}
	}
	t.pcsOK = true
	return nil
}

// pc returns cpu's pc at the position (false: it runs no further
// instruction in the trace, so its pc is not known).
func (t *target) pc(cpu int) (uint64, bool) {
	if cpu < 0 || cpu >= t.ncpu || t.computePCs() != nil {
		return 0, false
	}
	return t.pcs[cpu], t.pcsKnown[cpu]
}

// errNoHistory is a step that would leave the recorded events.
var errNoHistory = errors.New("no more history")

// step executes cpu's next instruction: to just before its next step row
// after the one at its pc (interrupts delivered in between are taken,
// as a single step takes them on a real CPU).
func (t *target) step(cpu int) (stop, error) {
	var a, b bool
	var next uint64
	err := t.scan(func(row *format.Row) bool {
		if int(row.CPU) != cpu {
			return true
		}
		if !a {
			a = isPCRow(row)
			return true
		}
		if isStepRow(row) {
			b, next = true, row.Seq
			return false
		}
		return true
	})
	if err != nil {
		return stop{}, err
	}
	if !a {
		// The CPU runs no further instruction: nothing to step.
		return stop{cpu: cpu, reason: "replaylog:end;"}, nil
	}
	if !b {
		// Its last instruction: after it, the CPU runs no more in the
		// trace (it halted, or the run ended), so the step ends at the
		// end of the trace.
		return t.end(cpu)
	}
	reason, err := t.watchBetween(next)
	if err != nil {
		return stop{}, err
	}
	return stop{cpu: cpu, reason: reason}, t.seekBefore(next)
}

// watchBetween returns the stop reason of the first write watchpoint
// hit by an event after the position and before seq (a step's stores).
func (t *target) watchBetween(seq uint64) (string, error) {
	reason := ""
	if len(t.watches) == 0 {
		return "", nil
	}
	err := t.scan(func(row *format.Row) bool {
		if row.Seq >= seq {
			return false
		}
		if w, ok := t.watchHit(row); ok {
			reason = w
			return false
		}
		return true
	})
	return reason, err
}

// stepBack undoes cpu's last instruction: to just before its last step
// row at or before the position.
func (t *target) stepBack(cpu int) (stop, error) {
	var found bool
	var prev uint64
	err := t.scanBack(func(row *format.Row) bool {
		if int(row.CPU) == cpu && isStepRow(row) {
			found, prev = true, row.Seq
			return false
		}
		return true
	})
	if err != nil {
		return stop{}, err
	}
	if !found {
		return stop{cpu: cpu, reason: "replaylog:begin;"}, nil
	}
	return stop{cpu: cpu}, t.seekBefore(prev)
}

// watchHit reports whether row is an access a watchpoint catches, and
// the stop reason.
func (t *target) watchHit(row *format.Row) (string, bool) {
	var addr, n uint64
	write := false
	switch {
	case row.Kind == format.KindWrite:
		addr, n, write = row.Addr, uint64(row.Size), true
	case t.hasLoads && row.Kind == format.KindLoad:
		addr, n = row.Addr, uint64(row.Size)
	default:
		return "", false
	}
	for _, w := range t.watches {
		hit := w.hits(addr, n) || (write && row.Alias && w.hits(row.AliasAddr, n))
		if !hit {
			continue
		}
		switch {
		case w.kind == '2' && write:
			return fmt.Sprintf("watch:%x;", w.addr), true
		case w.kind == '3' && !write:
			return fmt.Sprintf("rwatch:%x;", w.addr), true
		case w.kind == '4':
			return fmt.Sprintf("awatch:%x;", w.addr), true
		}
	}
	return "", false
}

// cont runs forwards until a breakpoint (a step row at a breakpoint's
// address; not the resumed CPU's instruction at its pc, which gdb steps
// over itself), a watchpoint (stopping after the instruction that made
// the access) or the end of the trace.
func (t *target) cont(cpu int) (stop, error) {
	var (
		skip     = true // the resumed CPU's first pc row
		hit      bool
		st       stop
		stopSeq  uint64 // after this event (watch) or before it (breakpoint)
		before   bool
		watchCPU = -1
	)
	err := t.scan(func(row *format.Row) bool {
		c := int(row.CPU)
		if watchCPU >= 0 {
			// After a watchpoint hit: the rest of that instruction.
			if c == watchCPU && t.isInsnTail(row) {
				stopSeq = row.Seq
				return true
			}
			return false
		}
		if skip && c == cpu && isPCRow(row) {
			skip = false
			if isStepRow(row) {
				return true
			}
		}
		if isStepRow(row) && t.bps[row.RIP] {
			hit, before, stopSeq = true, true, row.Seq
			st = stop{cpu: c, reason: "swbreak:;"}
			return false
		}
		if reason, ok := t.watchHit(row); ok {
			hit, stopSeq, watchCPU = true, row.Seq, c
			st = stop{cpu: c, reason: reason}
			return true
		}
		return true
	})
	if err != nil {
		return stop{}, err
	}
	if !hit {
		return t.end(cpu)
	}
	if before {
		return st, t.seekBefore(stopSeq)
	}
	return st, t.seekAfter(stopSeq)
}

// end stops at the end of the trace: after its last event, on cpu if its
// pc is known there (a halted CPU's is), else on a CPU whose pc is;
// when none is (the run ended mid-instruction on every CPU), just before
// the trace's last instruction, on its CPU: gdb cannot step a thread
// without a pc, backwards either.
func (t *target) end(cpu int) (stop, error) {
	if err := t.seekAfter(^uint64(0)); err != nil {
		return stop{}, err
	}
	if _, ok := t.pc(cpu); ok {
		return stop{cpu: cpu, reason: "replaylog:end;"}, nil
	}
	for c := 0; c < t.ncpu; c++ {
		if _, ok := t.pc(c); ok {
			return stop{cpu: c, reason: "replaylog:end;"}, nil
		}
	}
	last, lastCPU := uint64(0), -1
	if err := t.scanBack(func(row *format.Row) bool {
		if isStepRow(row) {
			last, lastCPU = row.Seq, int(row.CPU)
			return false
		}
		return true
	}); err != nil {
		return stop{}, err
	}
	if lastCPU < 0 {
		return stop{cpu: cpu, reason: "replaylog:end;"}, nil
	}
	return stop{cpu: lastCPU, reason: "replaylog:end;"}, t.seekBefore(last)
}

// reverseCont runs backwards until a breakpoint (stopping before the
// instruction at it), a watchpoint (stopping before the instruction that
// made the access) or the first event.
func (t *target) reverseCont(cpu int) (stop, error) {
	var (
		hit      bool
		st       stop
		stopSeq  uint64
		watchCPU = -1
		owner    bool
	)
	err := t.scanBack(func(row *format.Row) bool {
		c := int(row.CPU)
		if watchCPU >= 0 {
			// Find the instruction that made the access.
			if c == watchCPU && isStepRow(row) {
				stopSeq, owner = row.Seq, true
				return false
			}
			return true
		}
		if isStepRow(row) && t.bps[row.RIP] {
			hit, stopSeq = true, row.Seq
			st = stop{cpu: c, reason: "swbreak:;"}
			return false
		}
		if reason, ok := t.watchHit(row); ok {
			hit, watchCPU = true, c
			st = stop{cpu: c, reason: reason}
			return true
		}
		return true
	})
	if err != nil {
		return stop{}, err
	}
	if !hit || (watchCPU >= 0 && !owner) {
		t.cur.Rewind()
		t.pcsOK = false
		return stop{cpu: cpu, reason: "replaylog:begin;"}, nil
	}
	return st, t.seekBefore(stopSeq)
}

// gotoEvent positions the target just before event seq and returns its
// CPU.
func (t *target) gotoEvent(seq uint64) (int, error) {
	cpu := -1
	var found format.Row
	if err := t.seekBefore(seq); err != nil {
		return 0, err
	}
	err := t.scan(func(row *format.Row) bool {
		if row.Seq == seq {
			cpu, found = int(row.CPU), *row
		}
		return false
	})
	if err != nil {
		return 0, err
	}
	if cpu < 0 || found.Seq != seq {
		return 0, fmt.Errorf("the trace has no event %d", seq)
	}
	return cpu, nil
}

// MaxWatchpoints and MaxBreakpoints bound what one client can set: every
// store and load of a resume is checked against each watchpoint, so a
// client adding them by the thousand made continue cost events times
// watchpoints (x86 has 4 debug registers; gdb asks for one per watch).
const (
	MaxWatchpoints = 64
	MaxBreakpoints = 1 << 16
)

// setWatch adds or removes a watchpoint; false: adding one past
// MaxWatchpoints.
func (t *target) setWatch(w watch, on bool) bool {
	for i, x := range t.watches {
		if x == w {
			if !on {
				t.watches = append(t.watches[:i], t.watches[i+1:]...)
			}
			return true
		}
	}
	if on && len(t.watches) >= MaxWatchpoints {
		return false
	}
	if on {
		t.watches = append(t.watches, w)
		sort.Slice(t.watches, func(i, j int) bool { return t.watches[i].addr < t.watches[j].addr })
	}
	return true
}

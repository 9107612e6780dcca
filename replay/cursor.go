package replay

import (
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/patchtrace/patchtrace/format"
)

// Cursor is a position in a trace file with the machine state there,
// reconstructed from the trace alone (no re-execution): memory (the slice
// image plus every store up to the position), page permissions, and per
// CPU the task, trap depth, last rip and the register file folded from the
// register deltas (format version 4).
//
// A Cursor is positioned after an event: Seek(seq) applies every event up
// to and including the last one with Seq <= seq. Moving costs the events
// between the position and the nearest earlier snapshot: the cursor keeps
// copies of the state at batch boundaries (every Every batches, memory
// pages shared copy-on-write between them), taken as its moves first read
// through the file, or all at once by Index. The snapshots' memory is
// bounded (CursorLimit): when they would exceed it, every other one is
// dropped and the interval doubles. Events are read forwards with the
// reader's projected scan (only the columns the state needs, decoded
// ahead by parallel workers); Row decodes the whole row on demand.
//
// Methods are not safe for concurrent use; the State and Row returned
// change as the cursor moves.
type Cursor struct {
	r    *format.Reader
	tmpl *Template
	st   *State
	row  format.Row
	at   bool // an event has been applied (row is valid)
	full bool // row holds every column (else the projection's)

	// The events after the position: a pulled projected scan, started
	// lazily at from, and the row pulled but not applied yet.
	from   uint64
	next   func() (*format.Row, error, bool)
	stop   func()
	peeked *format.Row

	snaps []cursorSnap // by batch index, ascending; snaps[0] is batch 0
	every int          // batches between snapshots
	limit int64
	bytes int64 // estimated memory the snapshots hold
	base  int   // st.Mem.copies when the newest snapshot was taken
	// due is the batch of the next snapshot (past the newest) and dueSeq
	// its first seq: -1 when none is due, -2 not computed yet.
	due    int
	dueSeq uint64
	err    error // a read error that ended the readable events

	fullB *format.Batch // the batch Row last decoded whole
}

// cursorSnap is the state before batch bi's first row, whose seq is seq.
type cursorSnap struct {
	bi  int
	seq uint64
	st  *State // frozen: never applied to
	row format.Row
	at  bool
}

// CursorLimit is the default bound on the memory a Cursor's snapshots hold.
const CursorLimit = 256 << 20

// foldProjection is what the state needs of the rows: stores, permission
// changes, switches, and the register deltas.
var foldProjection = func() format.Projection {
	cols := []int{format.ColAddr, format.ColSize, format.ColNew, format.ColAlias, format.ColPermNew}
	for i, c := range format.Columns {
		if strings.HasPrefix(c.Name, "reg_") {
			cols = append(cols, i)
		}
	}
	// Rows of the other kinds change only the CPU's context (the common
	// columns): a load, percpu_read, marker, inject, halt or fault row
	// stores nothing and carries no register delta.
	kinds := []format.Kind{format.KindInsn, format.KindWrite, format.KindTrap, format.KindIret, format.KindPerm,
		format.KindSerialize, format.KindSwitch, format.KindService}
	return format.Projection{Columns: cols, Kinds: kinds}
}()

// NewCursor returns a cursor before the first event of r's trace. tmpl is
// the trace's start state (nil: built from r's metadata). The reader must
// not be used by anything else while the cursor is.
func NewCursor(r *format.Reader, tmpl *Template) (*Cursor, error) {
	md := r.Meta()
	if tmpl == nil {
		var err error
		if tmpl, err = NewTemplate(md); err != nil {
			return nil, err
		}
	}
	c := &Cursor{r: r, tmpl: tmpl, every: 1, limit: CursorLimit, due: -2}
	c.st = tmpl.State()
	c.snapshot(0, 0)
	c.bytes = 0 // the start state's pages are the template's
	return c, nil
}

// SetLimit bounds the memory the snapshots hold (bytes; CursorLimit by
// default).
func (c *Cursor) SetLimit(n int64) { c.limit = n }

// State returns the state at the position (read-only: it changes as the
// cursor moves).
func (c *Cursor) State() *State { return c.st }

// Row returns the last event applied, with every column, and false
// before the first event.
func (c *Cursor) Row() (*format.Row, bool) {
	if c.at && !c.full {
		if err := c.fill(); err == nil {
			c.full = true
		}
	}
	return &c.row, c.at
}

// fill decodes the position's row whole.
func (c *Cursor) fill() error {
	seq := c.row.Seq
	if c.fullB == nil || c.fullB.Len() == 0 || seq < c.fullB.Seq(0) || seq > c.fullB.Seq(c.fullB.Len()-1) {
		if c.fullB != nil {
			c.fullB.Release()
			c.fullB = nil
		}
		bi, err := c.r.Seek(seq)
		if err != nil {
			return err
		}
		if c.fullB, err = c.r.Batch(bi); err != nil {
			return err
		}
	}
	j := c.fullB.Search(seq)
	if j >= c.fullB.Len() || c.fullB.Seq(j) != seq {
		return fmt.Errorf("replay: seq %d is not in batch %d", seq, c.fullB.Index())
	}
	c.fullB.Row(j, &c.row)
	return nil
}

// Seq returns the sequence number of the last event applied (0 before the
// first event: check Row).
func (c *Cursor) Seq() uint64 { return c.st.Seq }

// Regs returns cpu's register file at the position.
func (c *Cursor) Regs(cpu int) RegFile {
	if cpu < 0 || cpu >= len(c.st.Regs) {
		return RegFile{}
	}
	return c.st.Regs[cpu]
}

// CPU returns cpu's context at the position (task, trap depth, the rip of
// its last event).
func (c *Cursor) CPU(cpu int) (CPU, bool) {
	if cpu < 0 || cpu >= len(c.st.CPUs) {
		return CPU{}, false
	}
	return c.st.CPUs[cpu], true
}

// ReadMemory copies the memory at addr into buf as it was at the
// position. It reports false when a byte is on a page that is not mapped
// there (the byte reads as the last value the trace gave it, or zero).
func (c *Cursor) ReadMemory(addr uint64, buf []byte) bool {
	c.st.Mem.Read(addr, buf) // a page no event wrote reads as zeros
	ok := true
	for a := addr &^ (pageSize - 1); a < addr+uint64(len(buf)); a += pageSize {
		if c.st.Mem.Perm(a) == 0 {
			ok = false
		}
		if a+pageSize < a {
			break
		}
	}
	return ok
}

// Err returns the error that ended the readable events (a damaged batch),
// or nil. A truncated file's cut is Reader.TruncatedError.
func (c *Cursor) Err() error { return c.err }

// Snapshots returns the number of snapshots held, the batches between
// them and the estimated bytes they hold.
func (c *Cursor) Snapshots() (n, every int, bytes int64) { return len(c.snaps), c.every, c.bytes }

// ErrNoEvent is returned by Seek for a seq before the trace's first event.
var ErrNoEvent = errors.New("replay: no event at or before that seq")

// Rewind positions the cursor before the first event.
func (c *Cursor) Rewind() { c.restore(0) }

// Seek positions the cursor after the last event with Seq <= seq (the end
// of the readable events when seq is beyond them). It fails with
// ErrNoEvent when the first event comes after seq, and with the read
// error when a batch on the way cannot be read (Err).
func (c *Cursor) Seek(seq uint64) error {
	nb := c.r.NumBatches()
	if nb == 0 {
		return ErrNoEvent
	}
	// tb: the batch holding the last event with Seq <= seq.
	tb, err := c.r.Seek(seq)
	if err != nil {
		return err
	}
	if tb < nb {
		bi, err := c.r.BatchInfo(tb)
		if err != nil {
			return err
		}
		if bi.Rows == 0 || bi.FirstSeq > seq {
			tb--
		}
	} else {
		tb = nb - 1
	}
	if tb < 0 {
		return ErrNoEvent
	}
	// Start from the nearest snapshot at or before batch tb, unless the
	// position is already between it and the target.
	k := c.snapAt(tb)
	if s := c.snaps[k]; !(c.at && c.row.Seq <= seq && (!s.at || c.row.Seq >= s.row.Seq)) {
		c.restore(k)
	}
	if err := c.advance(seq); err != nil {
		return err
	}
	if !c.at {
		return ErrNoEvent
	}
	return nil
}

// advance applies the events up to seq. A move within the batch being
// read pulls row by row; a longer one reads the rows in a loop (no
// coroutine switch per row) and leaves the next move to restart the scan
// at its batch.
func (c *Cursor) advance(seq uint64) error {
	if c.next != nil {
		end := ^uint64(0)
		if bi, err := c.r.Seek(c.nextSeq()); err == nil && bi < c.r.NumBatches() {
			if info, err := c.r.BatchInfo(bi); err == nil {
				end = info.LastSeq
			}
		}
		if seq <= end {
			for {
				next, ok, err := c.peek()
				if err != nil {
					return err
				}
				if !ok || next.Seq > seq {
					return nil
				}
				c.apply()
			}
		}
	}
	if c.peeked != nil {
		if c.peeked.Seq > seq {
			return nil
		}
		c.apply()
	}
	from := c.nextSeq()
	c.stopScan()
	c.from = from
	if c.due == -2 {
		c.nextDue()
	}
	for row, err := range c.r.ScanFrom(from, foldProjection) {
		if err != nil {
			c.err = err
			return err
		}
		if c.due >= 0 && row.Seq >= c.dueSeq {
			c.snapshot(c.due, c.dueSeq)
			c.nextDue()
		}
		if row.Seq > seq {
			break
		}
		c.st.Apply(row)
		// Only the seq of the position's row is kept (Row decodes it
		// whole when asked): no copy of every row.
		c.row.Seq, c.at, c.full = row.Seq, true, false
	}
	c.from = c.nextSeq()
	return nil
}

// nextSeq is the seq the events after the position start at.
func (c *Cursor) nextSeq() uint64 {
	switch {
	case c.peeked != nil:
		return c.peeked.Seq
	case c.at:
		return c.row.Seq + 1
	}
	return c.from
}

// snapAt returns the index of the last snapshot at or before batch bi.
func (c *Cursor) snapAt(bi int) int {
	k := 0
	for i, s := range c.snaps {
		if s.bi <= bi {
			k = i
		}
	}
	return k
}

func (c *Cursor) restore(k int) {
	s := c.snaps[k]
	st := *s.st
	st.Mem = s.st.Mem.thaw()
	st.CPUs = append([]CPU(nil), s.st.CPUs...)
	st.Regs = append([]RegFile(nil), s.st.Regs...)
	c.st = &st
	c.row, c.at, c.full = s.row, s.at, false
	c.base = c.st.Mem.copies
	c.stopScan()
	c.from = s.seq
}

func (c *Cursor) stopScan() {
	if c.stop != nil {
		c.stop()
	}
	c.next, c.stop, c.peeked = nil, nil, nil
}

// peek returns the next event (not applied yet), taking a snapshot when
// it is the first of a batch the snapshots do not cover yet. It reports
// false at the end of the readable events.
func (c *Cursor) peek() (*format.Row, bool, error) {
	if c.peeked != nil {
		return c.peeked, true, nil
	}
	if c.next == nil {
		c.next, c.stop = iter.Pull2(c.r.ScanFrom(c.from, foldProjection))
	}
	row, err, ok := c.next()
	if err != nil {
		c.err = err
		c.stopScan()
		return nil, false, err
	}
	if !ok {
		return nil, false, nil
	}
	if c.due == -2 {
		c.nextDue()
	}
	if c.due >= 0 && row.Seq >= c.dueSeq {
		c.snapshot(c.due, c.dueSeq)
	}
	c.peeked = row
	return row, true, nil
}

// nextDue finds the batch of the next snapshot past the newest one.
func (c *Cursor) nextDue() {
	last := c.snaps[len(c.snaps)-1].bi
	c.due = (last/c.every + 1) * c.every
	if c.due >= c.r.NumBatches() {
		c.due = -1
		return
	}
	info, err := c.r.BatchInfo(c.due)
	if err != nil || info.Rows == 0 {
		c.due = -1
		return
	}
	c.dueSeq = info.FirstSeq
}

// apply applies the peeked event.
func (c *Cursor) apply() {
	c.row = *c.peeked
	c.peeked = nil
	c.full = false
	c.st.Apply(&c.row)
	c.at = true
}

// Next applies the next event. It reports false at the end of the
// readable events.
func (c *Cursor) Next() (bool, error) {
	_, ok, err := c.peek()
	if !ok || err != nil {
		return false, err
	}
	c.apply()
	return true, nil
}

// Prev moves back one event (to the event before the current one). It
// reports false before the first event.
func (c *Cursor) Prev() (bool, error) {
	if !c.at || c.row.Seq == 0 {
		return false, nil
	}
	if err := c.Seek(c.row.Seq - 1); err != nil {
		if errors.Is(err, ErrNoEvent) {
			c.Rewind()
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// snapshot keeps the state before batch bi (whose first seq is seq).
func (c *Cursor) snapshot(bi int, seq uint64) {
	mem := c.st.Mem.freeze()
	st := *c.st
	st.Mem = mem
	st.CPUs = append([]CPU(nil), c.st.CPUs...)
	st.Regs = append([]RegFile(nil), c.st.Regs...)
	st.Warnings = nil
	// What this snapshot costs: its page table, and the pages copied on
	// write since the previous one (the previous snapshot holds their
	// old contents).
	c.bytes += int64(len(mem.pages))*48 + int64(c.st.Mem.copies-c.base)*pageSize
	c.base = c.st.Mem.copies
	c.snaps = append(c.snaps, cursorSnap{bi: bi, seq: seq, st: &st, row: c.row, at: c.at})
	for c.bytes > c.limit && len(c.snaps) > 2 {
		c.thin()
	}
	c.due = -2
}

// thin drops every snapshot not on a multiple of twice the interval and
// re-estimates what the rest hold.
func (c *Cursor) thin() {
	c.every *= 2
	kept := c.snaps[:0]
	for _, s := range c.snaps {
		if s.bi%c.every == 0 {
			kept = append(kept, s)
		}
	}
	c.snaps = kept
	seen := map[*Page]bool{}
	c.bytes = 0
	for _, s := range c.snaps {
		c.bytes += int64(len(s.st.Mem.pages)) * 48
		for _, p := range s.st.Mem.pages {
			if !seen[p] {
				seen[p] = true
				c.bytes += pageSize
			}
		}
	}
}

// Index reads the trace through once from the newest snapshot and takes
// every snapshot, so that any later Seek costs at most the snapshot
// interval. The position is left at the end. progress, when not nil, is
// called as the reading goes (batches read, of how many), every 5% or so.
func (c *Cursor) Index(progress func(batch, batches int)) error {
	n := c.r.NumBatches()
	if n == 0 {
		return nil
	}
	last := c.snaps[len(c.snaps)-1]
	if !c.at || (last.at && c.row.Seq < last.row.Seq) {
		c.restore(len(c.snaps) - 1)
	}
	step := max(1, n/20)
	for bi := last.bi + step - 1; ; bi += step {
		if bi >= n-1 {
			if err := c.advance(^uint64(0)); err != nil {
				return err
			}
			if progress != nil {
				progress(n, n)
			}
			return nil
		}
		info, err := c.r.BatchInfo(bi)
		if err != nil {
			return err
		}
		if err := c.advance(info.LastSeq); err != nil {
			return err
		}
		if progress != nil {
			progress(bi+1, n)
		}
	}
}

// NextPC returns the address cpu executes next after the position: the
// rip of its next event (docs/trace-format.md: RIP is the next row's rip
// of the same CPU). That is the next instruction's address; the saved rip
// when an interrupt is delivered first (its frame stores come first, at
// that rip); a native service's address when the CPU is entering one. It
// reads ahead without moving the cursor and reports false when the CPU has
// no further event in the readable events.
func (c *Cursor) NextPC(cpu int) (uint64, bool, error) {
	var pc uint64
	var found bool
	err := c.scan(format.Projection{Columns: []int{}}, func(r *format.Row) bool {
		if int(r.CPU) == cpu {
			pc, found = r.RIP, true
			return false
		}
		return true
	})
	return pc, found, err
}

// Scan calls fn for each event after the position, in order, until fn
// returns false or the readable events end, without moving the cursor.
// It reads whole batches, decoded ahead: a watchpoint or breakpoint
// search.
func (c *Cursor) Scan(fn func(r *format.Row) bool) error {
	return c.scan(format.AllColumns, fn)
}

func (c *Cursor) scan(p format.Projection, fn func(r *format.Row) bool) error {
	from := uint64(0)
	if c.at {
		if c.row.Seq == ^uint64(0) {
			return nil
		}
		from = c.row.Seq + 1
	}
	for row, err := range c.r.ScanFrom(from, p) {
		if err != nil {
			return err
		}
		if !fn(row) {
			return nil
		}
	}
	return nil
}

// ScanBack calls fn for each event at or before the position, newest
// first, until fn returns false or the first event, without moving the
// cursor: a reverse watchpoint or breakpoint search (Seek to the event it
// stopped at).
func (c *Cursor) ScanBack(fn func(r *format.Row) bool) error {
	if !c.at {
		return nil
	}
	var row format.Row
	bi, err := c.r.Seek(c.row.Seq) // the batch holding the position's event
	if err != nil {
		return err
	}
	for ; bi >= 0; bi-- {
		b, err := c.r.Batch(bi)
		if err != nil {
			return err
		}
		j := b.Search(c.row.Seq + 1)
		for j--; j >= 0; j-- {
			b.Row(j, &row)
			if !fn(&row) {
				b.Release()
				return nil
			}
		}
		b.Release()
	}
	return nil
}

// Close stops the cursor's reading (not the reader).
func (c *Cursor) Close() {
	c.stopScan()
	if c.fullB != nil {
		c.fullB.Release()
		c.fullB = nil
	}
}

func (c *Cursor) String() string {
	if !c.at {
		return "before the first event"
	}
	return fmt.Sprintf("after seq %d", c.row.Seq)
}

package replay

import (
	"errors"
	"fmt"

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
// dropped and the interval doubles.
//
// Methods are not safe for concurrent use; the State and Row returned
// change as the cursor moves.
type Cursor struct {
	r    *format.Reader
	tmpl *Template
	st   *State
	row  format.Row
	at   bool // an event has been applied (Row is valid)

	// The next event to apply: row j of batch bi (b is batch bi, or nil).
	b      *format.Batch
	bi, bj int

	snaps []cursorSnap // by batch index, ascending; snaps[0] is batch 0
	every int          // batches between snapshots
	limit int64
	bytes int64 // estimated memory the snapshots hold
	base  int   // st.Mem.copies when the newest snapshot was taken
	err   error // a read error that ended the readable events
}

// cursorSnap is the state before batch bi's first row.
type cursorSnap struct {
	bi  int
	st  *State // frozen: never applied to
	row format.Row
	at  bool
}

// CursorLimit is the default bound on the memory a Cursor's snapshots hold.
const CursorLimit = 256 << 20

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
	c := &Cursor{r: r, tmpl: tmpl, every: 1, limit: CursorLimit}
	c.st = tmpl.State()
	c.snapshot()
	c.bytes = 0 // the start state's pages are the template's
	return c, nil
}

// SetLimit bounds the memory the snapshots hold (bytes; CursorLimit by
// default).
func (c *Cursor) SetLimit(n int64) { c.limit = n }

// State returns the state at the position (read-only: it changes as the
// cursor moves).
func (c *Cursor) State() *State { return c.st }

// Row returns the last event applied, and false before the first event.
func (c *Cursor) Row() (*format.Row, bool) { return &c.row, c.at }

// Seq returns the sequence number of the last event applied (0 before the
// first event: check Row).
func (c *Cursor) Seq() uint64 { return c.st.Seq }

// Regs returns cpu's register file at the position.
func (c *Cursor) Regs(cpu int) RegFile {
	if cpu < 0 || cpu >= len(c.st.CPUs) {
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
	if !(c.at && c.row.Seq <= seq && c.bi >= c.snaps[k].bi) {
		c.restore(k)
	}
	for {
		next, ok, err := c.peek()
		if err != nil {
			return err
		}
		if !ok || next > seq {
			break
		}
		if _, err := c.Next(); err != nil {
			return err
		}
	}
	if !c.at {
		return ErrNoEvent
	}
	return nil
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
	c.row, c.at = s.row, s.at
	if c.b == nil || c.b.Index() != s.bi {
		c.release() // else keep the decoded batch: a move back within it decodes nothing
	}
	c.bi, c.bj = s.bi, 0
	c.base = c.st.Mem.copies
}

func (c *Cursor) release() {
	if c.b != nil {
		c.b.Release()
		c.b = nil
	}
}

// load makes c.b batch c.bi, taking a snapshot at a boundary the
// snapshots do not cover yet. It reports false at the end of the readable
// batches.
func (c *Cursor) load() (bool, error) {
	if c.b != nil && c.b.Index() != c.bi {
		c.release()
	}
	for c.b == nil || c.bj >= c.b.Len() {
		if c.b != nil {
			c.release()
			c.bi, c.bj = c.bi+1, 0
		}
		if c.bi >= c.r.NumBatches() {
			return false, nil
		}
		if last := c.snaps[len(c.snaps)-1].bi; c.bi >= last+c.every && c.bi%c.every == 0 {
			c.snapshot()
		}
		b, err := c.r.Batch(c.bi)
		if err != nil {
			c.err = err
			return false, err
		}
		c.b, c.bj = b, 0
	}
	return true, nil
}

// peek returns the next event's seq.
func (c *Cursor) peek() (uint64, bool, error) {
	ok, err := c.load()
	if !ok || err != nil {
		return 0, false, err
	}
	return c.b.Seq(c.bj), true, nil
}

// Next applies the next event. It reports false at the end of the
// readable events.
func (c *Cursor) Next() (bool, error) {
	ok, err := c.load()
	if !ok || err != nil {
		return false, err
	}
	c.b.Row(c.bj, &c.row)
	c.bj++
	c.st.Apply(&c.row)
	c.at = true
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

// snapshot keeps the state before batch c.bi.
func (c *Cursor) snapshot() {
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
	c.snaps = append(c.snaps, cursorSnap{bi: c.bi, st: &st, row: c.row, at: c.at})
	for c.bytes > c.limit && len(c.snaps) > 2 {
		c.thin()
	}
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
	// Pages of the start state (the slice image) count once, like any.
}

// Index reads the trace through once and takes every snapshot, so that
// any later Seek costs at most the snapshot interval. The position is
// left at the end. progress, when not nil, is called after each batch.
func (c *Cursor) Index(progress func(batch, batches int)) error {
	n := c.r.NumBatches()
	if c.bi < c.snaps[len(c.snaps)-1].bi {
		c.restore(len(c.snaps) - 1)
	}
	for {
		ok, err := c.load()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		for c.bj < c.b.Len() {
			c.b.Row(c.bj, &c.row)
			c.bj++
			c.st.Apply(&c.row)
			c.at = true
		}
		if progress != nil {
			progress(c.bi+1, n)
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
	err := c.Scan(func(r *format.Row) bool {
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
// It reads whole batches: a watchpoint or breakpoint search.
func (c *Cursor) Scan(fn func(r *format.Row) bool) error {
	var row format.Row
	bi, bj := c.bi, c.bj
	if c.b != nil && bj < c.b.Len() {
		for ; bj < c.b.Len(); bj++ {
			c.b.Row(bj, &row)
			if !fn(&row) {
				return nil
			}
		}
		bi++
	} else if c.b != nil {
		bi++
	}
	for ; bi < c.r.NumBatches(); bi++ {
		b, err := c.r.Batch(bi)
		if err != nil {
			return err
		}
		for j := 0; j < b.Len(); j++ {
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

// Close releases the batch the cursor holds (not the reader).
func (c *Cursor) Close() { c.release() }

func (c *Cursor) String() string {
	if !c.at {
		return "before the first event"
	}
	return fmt.Sprintf("after seq %d", c.row.Seq)
}

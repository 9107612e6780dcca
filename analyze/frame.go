package analyze

import (
	"fmt"
	"math"
	"sort"

	"github.com/patchtrace/patchtrace/format"
)

// frame follows the words the CPU pushes when it delivers an exception,
// interrupt or NMI (SDM Vol. 3 §6.14.2, 64-bit mode: SS, RSP, RFLAGS, CS,
// RIP, and an error code for the vectors that have one). Those words are
// live until the IRETQ that pops them (SDM Vol. 2 IRET): the CPU reloads
// CS and SS from them, so any store into a live frame decides where and
// how the interrupted context resumes.
//
// Rules:
//   - a store to the saved CS or SS word of a live frame is a finding, by
//     whatever context (Linux's int3_emulate_call() without the #BP entry
//     gap, 2019: the emulated push of the return address landed on the
//     saved SS; commit 2700fefdb2d9);
//   - a store to the saved RIP, RSP, RFLAGS or error-code word is accepted
//     from the handler that owns the frame (the context the delivery
//     started: same CPU and task, one trap depth deeper; the int3
//     emulation helpers rewrite regs->ip and regs->sp on purpose) and a
//     finding from any other context (another CPU, an NMI nested in the
//     handler);
//   - an exception or NMI delivered so that its frame overlaps a live frame
//     is a finding naming both (an NMI let in by the IRETQ of a #BP inside
//     an NMI handler lands at the top of the same IST stack, SDM Vol. 3
//     §6.14.5: Linux's nested-NMI bug, commit 3f3c8b8c4b2a; a #DB
//     re-entering its own IST stack). The newer frame replaces the older.
//
// An entry may move its frame: Linux's nested-NMI entry and the int3 entry
// with the call-emulation gap copy the five words elsewhere and IRETQ
// through the copy, after which the hardware frame is scratch space (a
// nested NMI overwrites it by design). When the owning handler stores all
// five current values at five consecutive words outside the frame (RIP at
// the lowest), the frame is taken to live there from then on.
//
// The frame's own pushes are write rows just before the trap row of the
// delivery; a store that overlaps a live frame is therefore judged at the
// next row of its CPU, and one inside the frame that row delivers is the
// delivery's, judged by the overlap rule instead.
//
// Stores only: the trace holds no loads before format version 4. A load
// from a dead frame (a handler that reads regs after its frame was
// reused) belongs to the same model and can be judged here once loads are
// recorded (frameAccess takes the access kind for that).
type frame struct {
	frames  [][]*liveFrame // by CPU: frames pushed on it, oldest first
	pending [][]pendingStore
	// copies: by CPU, owner stores of a frame word's value outside the
	// frame, noted at the CPU's next row unless that row is a delivery
	// whose frame holds them (a nested NMI's pushes of SS and CS values
	// are not the handler's copy).
	copies  [][]pendingCopy
	iretRSP []uint64 // by CPU: RSP of the last IRETQ instruction (its frame's RIP word)
	isIret  []bool   // by op index
}

type liveFrame struct {
	seq      uint64 // the trap row
	cpu      uint16
	task     uint32
	depth    uint8 // the handler's trap depth (the trap row's + 1)
	vector   uint8
	ist      uint8
	from     uint64 // the interrupted RIP (saved RIP)
	handler  uint64
	ripAt    uint64 // address of the saved RIP word (CS, RFLAGS, RSP, SS follow)
	errAt    uint64 // address of the error code word, 0 without one
	moved    bool   // the handler moved the frame (ripAt is the copy's)
	movedSeq uint64
	copies   [5]uint64  // where the handler last stored each word's value, 0: not seen
	row      format.Row // the trap row, told in the finding's story
}

type pendingCopy struct {
	row format.Row
	f   *liveFrame
}

type pendingStore struct {
	row  format.Row
	f    *liveFrame
	word int // frameRIP..frameSS, or frameErr
}

// Bounds for hostile streams: live frames per CPU (tasks x trap depth;
// real runs have a handful) and stores held for judgement per CPU (a
// delivery pushes at most six words).
const (
	maxLiveFrames    = 1024
	maxPendingStores = 64
)

// Frame words, in address order from the saved RIP.
const (
	frameRIP = iota
	frameCS
	frameRFLAGS
	frameRSP
	frameSS
	frameErr // the error code word, just below the saved RIP
)

var frameWordName = [...]string{"RIP", "CS", "RFLAGS", "RSP", "SS", "error code"}

func (*frame) ID() string { return "frame" }
func (*frame) Doc() string {
	return "A live exception/interrupt/NMI frame (the words IRETQ will pop) was overwritten: its saved CS or SS by anyone, its saved RIP, RSP or RFLAGS by a context other than its own handler, or the whole frame by another delivery onto the same (IST) stack."
}

func (a *frame) Start(ctx *Context) error {
	n := len(ctx.St.CPUs)
	a.frames = make([][]*liveFrame, n)
	a.pending = make([][]pendingStore, n)
	a.copies = make([][]pendingCopy, n)
	a.iretRSP = make([]uint64, n)
	names := ctx.St.Meta.OpNames
	a.isIret = make([]bool, len(names))
	for i, nm := range names {
		a.isIret[i] = nm == "IRETQ"
	}
	return nil
}

func (*frame) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindTrap, format.KindIret},
		Columns: []int{format.ColOp, format.ColRSP, format.ColAddr, format.ColSize, format.ColOld, format.ColNew, format.ColAlias,
			format.ColVector, format.ColHandler, format.ColIST}}
}

// vectorHasErrorCode: the exceptions whose delivery pushes an error code
// (SDM Vol. 3 §6.13, Table 6-1).
func vectorHasErrorCode(v uint8) bool {
	switch v {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

func (a *frame) Event(ctx *Context, r *format.Row) {
	c := int(r.CPU)
	if c >= len(a.frames) {
		return
	}
	if r.Kind != format.KindWrite && len(a.pending[c]) > 0 {
		a.flush(ctx, c, r)
	}
	if r.Kind != format.KindWrite && len(a.copies[c]) > 0 {
		a.flushCopies(ctx, c, r)
	}
	switch r.Kind {
	case format.KindInsn:
		if int(r.Op) < len(a.isIret) && a.isIret[r.Op] {
			a.iretRSP[c] = r.RSP
		}
	case format.KindWrite:
		if !r.Alias && r.Size != 0 {
			a.frameAccess(ctx, r)
		}
	case format.KindTrap:
		a.deliver(ctx, r)
	case format.KindIret:
		// The IRETQ popped the frame at its RSP; every handler context of
		// this task deeper than the one resumed has ended.
		fs := a.frames[c][:0]
		for _, f := range a.frames[c] {
			if f.ripAt == a.iretRSP[c] || (f.task == r.Task && f.depth > r.Depth) {
				continue
			}
			fs = append(fs, f)
		}
		a.frames[c] = fs
	}
}

// frameAccess judges a store against the live frames (a load, once the
// trace records them, would be judged against dead ones).
func (a *frame) frameAccess(ctx *Context, r *format.Row) {
	lo, hi := r.Addr, r.Addr+uint64(r.Size)
	for _, fs := range a.frames {
		for _, f := range fs {
			owner := r.CPU == f.cpu && r.Task == f.task && r.Depth == f.depth
			hit := false
			if f.clear(lo, hi) {
				// No word of the frame is in the store (most stores).
				if owner && r.Size == 8 {
					if len(a.copies[r.CPU]) >= maxPendingStores {
						a.flushCopies(ctx, int(r.CPU), nil)
					}
					a.copies[r.CPU] = append(a.copies[r.CPU], pendingCopy{row: *r, f: f})
				}
				continue
			}
			for w := frameRIP; w <= frameErr; w++ {
				at := f.wordAt(w)
				if at == 0 || at >= hi || at+8 <= lo {
					continue
				}
				hit = true
				if owner && w != frameCS && w != frameSS {
					continue
				}
				if len(a.pending[r.CPU]) >= maxPendingStores {
					// No delivery pushes this many words: these are not
					// a delivery's, judge them now (bounds a hostile
					// stream's memory).
					a.flush(ctx, int(r.CPU), nil)
				}
				a.pending[r.CPU] = append(a.pending[r.CPU], pendingStore{row: *r, f: f, word: w})
			}
			if !hit && owner && r.Size == 8 {
				if len(a.copies[r.CPU]) >= maxPendingStores {
					a.flushCopies(ctx, int(r.CPU), nil)
				}
				a.copies[r.CPU] = append(a.copies[r.CPU], pendingCopy{row: *r, f: f})
			}
		}
	}
}

// clear reports that no word of the frame (the loop in frameAccess would
// find none) is in [lo, hi): RIP to SS are [ripAt, ripAt+40), the error
// code [errAt, errAt+8). (False when unsure: a frame whose words wrap
// around the address space is left to the loop.)
func (f *liveFrame) clear(lo, hi uint64) bool {
	if f.ripAt > math.MaxUint64-40 || f.errAt > math.MaxUint64-8 {
		return false
	}
	if f.ripAt < hi && f.ripAt+40 > lo {
		return false
	}
	return f.errAt == 0 || f.errAt >= hi || f.errAt+8 <= lo
}

// wordAt is the address of frame word w (0: the frame has no such word).
func (f *liveFrame) wordAt(w int) uint64 {
	if w == frameErr {
		return f.errAt
	}
	return f.ripAt + 8*uint64(w)
}

// noteCopy records a store by the owning handler of a frame word's value
// outside the frame; five of them in a row, RIP lowest, move the frame.
func (a *frame) noteCopy(ctx *Context, f *liveFrame, r *format.Row) {
	for w := frameRIP; w <= frameSS; w++ {
		if ctx.St.Mem.U64(f.wordAt(w)) == r.New {
			f.copies[w] = r.Addr
		}
	}
	base := f.copies[frameRIP]
	if base == 0 {
		return
	}
	for w := frameCS; w <= frameSS; w++ {
		if f.copies[w] != base+8*uint64(w) {
			return
		}
	}
	f.ripAt, f.errAt, f.moved, f.movedSeq = base, 0, true, r.Seq
	f.copies = [5]uint64{}
}

// flushCopies notes the copies cpu c made before row r, except those
// inside the frame a trap row r delivers (that delivery's pushes).
func (a *frame) flushCopies(ctx *Context, c int, r *format.Row) {
	ps := a.copies[c]
	a.copies[c] = nil
	for i := range ps {
		p := &ps[i]
		if r != nil && r.Kind == format.KindTrap && p.row.Addr >= r.RSP && p.row.Addr < r.RSP+uint64(r.Size) {
			continue
		}
		a.noteCopy(ctx, p.f, &p.row)
	}
	// Keep the slice for the next stores (noteCopy keeps no row): a new
	// one for every instruction's stores was most of what a schedule
	// allocated in explore.
	if a.copies[c] == nil {
		clear(ps)
		a.copies[c] = ps[:0]
	}
}

// flush judges the stores into live frames that cpu c made before row r:
// those inside the frame a trap row r delivers are that delivery's pushes.
func (a *frame) flush(ctx *Context, c int, r *format.Row) {
	ps := a.pending[c]
	a.pending[c] = nil
	for _, p := range ps {
		if r != nil && r.Kind == format.KindTrap && p.row.Addr >= r.RSP && p.row.Addr < r.RSP+uint64(r.Size) {
			continue
		}
		a.reportStore(ctx, p)
	}
}

func (a *frame) reportStore(ctx *Context, p pendingStore) {
	w, f := &p.row, p.f
	why := "the CPU reloads it at the IRETQ"
	if p.word != frameCS && p.word != frameSS {
		why = fmt.Sprintf("only its own handler (cpu%d %s) may rewrite it", f.cpu, keyName(ctxKey{f.cpu, f.task, f.depth}))
	}
	ctx.Report(Finding{
		CPU: int(w.CPU), Task: w.Task, SeqFirst: f.seq, SeqLast: w.Seq, RIP: w.RIP, Evidence: []uint64{f.seq, w.Seq},
		Context: contextName(w),
		Story:   ctx.story.tellWith(ctx.St, int(w.CPU), []uint64{f.seq, w.Seq}, &f.row, w),
		Message: fmt.Sprintf("%d-byte store at %#x by %s (seq %d) overwrote the saved %s word of the live %s; %s",
			w.Size, w.Addr, ctx.Describe(w.RIP), w.Seq, frameWordName[p.word], f.describe(ctx), why),
	}, fmt.Sprintf("store|%#x|%s", w.RIP, frameWordName[p.word]))
}

// describe names a frame: "#BP frame at 0x... (seq 12, cpu1 task 3
// interrupted at traced_fn+1, handler asm_exc_int3)".
func (f *liveFrame) describe(ctx *Context) string {
	where := "at"
	if f.moved {
		where = fmt.Sprintf("moved at seq %d to", f.movedSeq)
	}
	ist := ""
	if f.ist != 0 {
		ist = fmt.Sprintf(" on IST stack %d", f.ist)
	}
	return fmt.Sprintf("%s frame%s %s %#x (delivered at seq %d on cpu%d to %s interrupted at %s, handled by %s), whose IRETQ has not run",
		format.VectorName(f.vector), ist, where, f.ripAt, f.seq, f.cpu, keyName(ctxKey{f.cpu, f.task, f.depth - 1}), ctx.Describe(f.from), ctx.Describe(f.handler))
}

// deliver records the frame a trap row pushed, after judging whether it
// landed on a live one.
func (a *frame) deliver(ctx *Context, r *format.Row) {
	c := int(r.CPU)
	n := &liveFrame{seq: r.Seq, cpu: r.CPU, task: r.Task, depth: r.Depth + 1, vector: r.Vector, ist: r.IST,
		from: r.RIP, handler: r.Handler, ripAt: r.RSP, row: *r}
	if r.Vector == 3 {
		ctx.St.Mem.Read(r.RIP-1, n.row.Bytes[:5]) // the site as it was (see storyWindow.add)
	}
	if vectorHasErrorCode(r.Vector) {
		n.errAt, n.ripAt = r.RSP, r.RSP+8
	}
	// A delivery at depth d means the task's contexts deeper than d have
	// ended (their IRETQ may have been lost to a fault in it).
	fs := a.frames[c][:0]
	for _, f := range a.frames[c] {
		if f.task != r.Task || f.depth <= r.Depth {
			fs = append(fs, f)
		}
	}
	a.frames[c] = fs
	if len(a.frames[c]) >= maxLiveFrames {
		a.frames[c] = a.frames[c][1:] // a hostile stream: keep the newest
	}
	lo, hi := r.RSP, n.ripAt+40
	var over []*liveFrame
	for _, fs := range a.frames {
		for _, f := range fs {
			flo := f.ripAt
			if f.errAt != 0 {
				flo = f.errAt
			}
			if flo < hi && f.ripAt+40 > lo {
				over = append(over, f)
			}
		}
	}
	for _, f := range over {
		ctx.Report(Finding{
			CPU: c, Task: r.Task, SeqFirst: f.seq, SeqLast: r.Seq, RIP: r.Handler, Evidence: []uint64{f.seq, r.Seq},
			Context: contextName(r),
			Story:   ctx.story.tellWith(ctx.St, c, []uint64{f.seq, r.Seq}, &f.row, r),
			Message: fmt.Sprintf("%s delivered at seq %d%s interrupting %s at %s pushed its frame at %#x..%#x over the live %s",
				format.VectorName(r.Vector), r.Seq, istText(r.IST), contextName(r), ctx.Describe(r.RIP), lo, hi, f.describe(ctx)),
		}, fmt.Sprintf("nest|%d|%d", r.Vector, f.vector))
		a.drop(f)
	}
	a.frames[c] = append(a.frames[c], n)
}

func istText(ist uint8) string {
	if ist == 0 {
		return ""
	}
	return fmt.Sprintf(" on IST stack %d", ist)
}

func (a *frame) drop(f *liveFrame) {
	fs := a.frames[f.cpu][:0]
	for _, g := range a.frames[f.cpu] {
		if g != f {
			fs = append(fs, g)
		}
	}
	a.frames[f.cpu] = fs
}

// Finish judges the stores still pending (the stream ended right after
// them).
func (a *frame) Finish(ctx *Context) {
	cpus := make([]int, 0, len(a.pending))
	for c := range a.pending {
		cpus = append(cpus, c)
	}
	sort.Ints(cpus)
	for _, c := range cpus {
		if len(a.pending[c]) > 0 {
			a.flush(ctx, c, nil)
		}
	}
}

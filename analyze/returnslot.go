package analyze

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// returnSlot follows return addresses and emulated-call targets (mails 002
// and 004 of docs/background.md; Andy Lutomirski: "an NMI followed by an
// interrupt will kill us"; mail 004: "otherwise it stays on the return
// stack and bad things happen").
//
// Per-CPU slots (the scenario's return_slots): a store fills a slot for the
// context that is being redirected (the int3 handler's interrupted task); a
// load consumes it. A slot stored again before it was consumed, or consumed
// by a different task than the one it was filled for, is a finding.
//
// Stacks: every 8-byte store is tagged with what made it — a CALL pushing
// its return address, a PUSH, or any other store (a MOV, a trap frame); a
// narrower or unaligned store that overlaps a tagged word retags it as any
// other store, whatever width it had (a 4-byte MOV over the low half of a
// return address leaves nothing the CALL vouched for). A
// RET through a word a CALL pushed, or a PUSH put there (a trampoline's
// "push target; ret"), returns where its own call or trampoline meant. A RET
// through any other word must land on a return address: right after a CALL
// instruction (in the code as built or as it is now), right after a
// must_call site or contract.asm_sites site (an emulated call's return), or at a ret_from_* entry (a
// new task's hand-built first frame, docs/slice-abi.md). Anything else — a
// function entry a forgotten pop left on the stack — is a finding.
//
// One rewrite is a return on purpose: a function that stores a
// function's entry over a live return address (a word a CALL pushed that
// no RET has popped yet, untouched since) and then returns through it
// itself. That is how ftrace_regs_caller returns to a regs->ip its
// callbacks changed (a livepatch sending the CPU to the new function):
// its RET goes to the function instead of back into the traced one, and
// the function returns for it. The same word popped by another
// function's RET is judged as before: the traced function's own RET
// there is a stack one word off (a forgotten pop, exc-tramp-nopop), and a
// return address another function rewrote is a hijack, which the
// contract declares (return_hijacks); so is a function entry stored over
// a word no live CALL holds.
type returnSlot struct {
	slots map[string]bool
	state map[slotKey]*slotFill

	prov      provTable // 8-byte word -> what last stored it
	unaligned int       // words in prov not 8-byte aligned
	cpu       []cpuTrack
	isCall    []bool // by op index
	isRet     []bool
	isPush    []bool
	siteRets  map[uint64]bool // must_call and asm_sites site + its length

	// Declared return hijacks (contract.return_hijacks): the words a
	// hijack handler rewrote to its trampoline, and per context the
	// hijacked frames whose trampoline is running, innermost last.
	hijacks  []hijack
	hijacked map[uint64]*hijackFill
	inTramp  map[ctxKey][]*hijackFill
}

type hijack struct {
	handler, handlerEnd    uint64 // [handler, handlerEnd): the store's RIP
	tramp, trampEnd        uint64
	handlerName, trampName string
}

// hijackFill is one return word a hijack handler rewrote.
type hijackFill struct {
	h     int
	at    uint64 // the word
	orig  uint64 // the return address it held
	row   format.Row
	enter format.Row // the RET into the trampoline
}

// Stack word provenance.
const (
	provStore uint8 = iota
	provCall
	provPush
	// provRedirect: a plain store of a function's entry over a live
	// return address (provCall, not popped): a return sent to that
	// function on purpose.
	provRedirect
)

type stackWord struct {
	kind uint8
	seq  uint64
	rip  uint64
	// partial: the last store to touch the word was not exactly it (at,
	// size: that store's address and width).
	partial bool
	at      uint64
	size    uint8
	// popped: a RET has popped the word since the CALL stored it (its
	// frame is gone).
	popped bool
}

// cpuTrack is what the previous events on one CPU tell about the next write.
type cpuTrack struct {
	op      uint16 // last instruction's op
	rip     uint64
	pending bool // the last instruction's own push/call store has not been seen yet
}

type slotKey struct {
	name string
	cpu  uint16
}

type slotFill struct {
	seq      uint64
	value    uint64
	task     uint32
	depth    uint8
	rip      uint64
	consumed bool
}

func (*returnSlot) ID() string { return "return-slot" }
func (*returnSlot) Doc() string {
	return "A return address or emulated-call target (on a stack or in a per-CPU slot) was overwritten before its owner consumed it, or a context resumed somewhere its own call or trap did not produce."
}

func (a *returnSlot) Start(ctx *Context) error {
	a.slots = map[string]bool{}
	a.state = map[slotKey]*slotFill{}
	a.prov = provTable{}
	a.unaligned = 0
	a.cpu = make([]cpuTrack, len(ctx.St.CPUs))
	a.siteRets = map[uint64]bool{}
	names := ctx.St.Meta.OpNames
	a.isCall, a.isRet, a.isPush = make([]bool, len(names)), make([]bool, len(names)), make([]bool, len(names))
	for i, n := range names {
		a.isCall[i] = n == "CALL"
		a.isRet[i] = n == "RET"
		a.isPush[i] = n == "PUSH" || n == "PUSHF"
	}
	a.hijacks, a.hijacked, a.inTramp = nil, map[uint64]*hijackFill{}, map[ctxKey][]*hijackFill{}
	if ctx.St.Spec != nil {
		for _, mc := range ctx.St.Spec.Contract.MustCall {
			if site, err := ctx.St.Syms.Resolve(mc.Site); err == nil {
				a.siteRets[site+siteLength(mc.Length)] = true
			}
		}
		for _, as := range ctx.St.Spec.Contract.AsmSites {
			if as.Returns {
				continue // a return: no call comes back after it
			}
			if site, err := ctx.St.Syms.Resolve(as.Site); err == nil {
				a.siteRets[site+as.Length] = true
			}
		}
		for _, h := range ctx.St.Spec.Contract.ReturnHijacks {
			hs, ok := ctx.St.Syms.Lookup(h.Handler)
			if !ok {
				return fmt.Errorf("contract return_hijacks: no symbol %q in the trace", h.Handler)
			}
			ts, ok := ctx.St.Syms.Lookup(h.Trampoline)
			if !ok {
				return fmt.Errorf("contract return_hijacks: no symbol %q in the trace", h.Trampoline)
			}
			if hs.Size == 0 || ts.Size == 0 {
				return fmt.Errorf("contract return_hijacks: %s and %s must be functions with a size", h.Handler, h.Trampoline)
			}
			a.hijacks = append(a.hijacks, hijack{hs.Addr, hs.Addr + hs.Size, ts.Addr, ts.Addr + ts.Size, h.Handler, h.Trampoline})
		}
		for _, s := range ctx.St.Spec.Contract.ReturnSlots {
			if _, ok := ctx.St.Syms.Lookup(s); !ok {
				return fmt.Errorf("contract return_slots: no symbol %q in the trace", s)
			}
			a.slots[s] = true
		}
	}
	return nil
}

func (*returnSlot) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindPercpuRead, format.KindLoad},
		Columns: []int{format.ColOp, format.ColRSP, format.ColAddr, format.ColSize, format.ColAlias, format.ColPercpuVar, format.ColPercpuCPU, format.ColNew, format.ColOld}}
}

func (a *returnSlot) Event(ctx *Context, r *format.Row) {
	switch r.Kind {
	case format.KindInsn:
		if int(r.Op) < len(a.isRet) && a.isRet[r.Op] {
			a.checkRet(ctx, r)
		}
		t := &a.cpu[r.CPU]
		t.op, t.rip = r.Op, r.RIP
		t.pending = int(r.Op) < len(a.isCall) && (a.isCall[r.Op] || a.isPush[r.Op])
		return
	case format.KindWrite:
		a.trackStore(ctx.St, r)
		if len(a.slots) == 0 || !a.slots[r.PercpuVar] {
			return
		}
		k := slotKey{r.PercpuVar, r.PercpuCPU}
		// The slot is filled for the context the writer redirects: a
		// handler at trap depth d works for the context at depth d-1.
		owner := r.Depth
		if owner > 0 {
			owner--
		}
		if old := a.state[k]; old != nil && !old.consumed && old.value != 0 {
			ctx.Report(Finding{
				CPU: int(r.CPU), Task: r.Task, SeqFirst: old.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{old.seq, r.Seq},
				Context: contextName(r),
				Message: fmt.Sprintf("per-CPU %s[cpu%d] = %s (filled at seq %d by %s for task %d) was overwritten with %s at seq %d by %s (task %d) before task %d consumed it",
					r.PercpuVar, r.PercpuCPU, ctx.Describe(old.value), old.seq, ctx.Describe(old.rip), old.task,
					ctx.Describe(r.New), r.Seq, ctx.Describe(r.RIP), r.Task, old.task),
			}, "overwrite|"+r.PercpuVar)
		}
		a.state[k] = &slotFill{seq: r.Seq, value: r.New, task: r.Task, depth: owner, rip: r.RIP}
	case format.KindPercpuRead, format.KindLoad:
		// A slot's read: a percpu_read (traces without loads) or a
		// load in a per-CPU area (format version 4).
		if len(a.slots) == 0 || r.Kind == format.KindLoad && !r.Percpu || !a.slots[r.PercpuVar] {
			return
		}
		f := a.state[slotKey{r.PercpuVar, r.PercpuCPU}]
		if f == nil || f.consumed {
			return
		}
		f.consumed = true
		if f.task != r.Task && f.value != 0 {
			ctx.Report(Finding{
				CPU: int(r.CPU), Task: r.Task, SeqFirst: f.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{f.seq, r.Seq},
				Context: contextName(r),
				Message: fmt.Sprintf("task %d consumed per-CPU %s[cpu%d] = %s at %s, but it was filled at seq %d for task %d: an emulated call goes where its own trap did not send it",
					r.Task, r.PercpuVar, r.PercpuCPU, ctx.Describe(r.New), ctx.Describe(r.RIP), f.seq, f.task),
			}, "consume|"+r.PercpuVar)
		}
	}
}

func (*returnSlot) Finish(*Context) {}

// trackStore tags the stored 8-byte word with what stored it. The first
// store after a CALL or PUSH is that instruction's; any later one before
// the next instruction (a trap frame, a service) is a plain store. A store
// of any width that overlaps a tracked word without being exactly that
// word (1, 2 or 4 bytes into it, or an unaligned 8-byte store straddling
// it) makes the word a plain store too: the bytes a RET pops are no longer
// the ones the CALL pushed.
func (a *returnSlot) trackStore(st *replay.State, r *format.Row) {
	if r.Alias || r.Size == 0 {
		return
	}
	if r.Size != 8 {
		a.clobber(r)
		return
	}
	t := &a.cpu[r.CPU]
	w := stackWord{kind: provStore, seq: r.Seq, rip: r.RIP}
	if t.pending {
		if a.isCall[t.op] {
			w.kind = provCall
		} else {
			w.kind = provPush
		}
		t.pending = false
	} else if old := a.prov.get(r.Addr); old != nil && old.kind == provCall && !old.popped && isEntry(st, r.New) {
		w.kind = provRedirect
	}
	a.clobber(r)
	a.set(r.Addr, w)
	if len(a.hijacks) > 0 {
		a.noteHijack(r)
	}
}

// set records a word's provenance; words not 8-byte aligned are also
// counted, so clobber only scans for them when there are any.
func (a *returnSlot) set(addr uint64, w stackWord) {
	if addr&7 != 0 && !a.prov.has(addr) {
		a.unaligned++
	}
	a.prov.set(addr, w)
}

// clobber marks every tracked word the store [r.Addr, r.Addr+r.Size)
// overlaps, other than the word it stores exactly, as a plain store.
func (a *returnSlot) clobber(r *format.Row) {
	lo, hi := r.Addr, r.Addr+uint64(r.Size) // hi exclusive
	hit := func(p uint64) {
		if p == lo && r.Size == 8 {
			return
		}
		if p < hi && p+8 > lo {
			if w := a.prov.get(p); w != nil {
				w.kind, w.seq, w.rip = provStore, r.Seq, r.RIP
				w.partial, w.at, w.size = true, lo, uint8(r.Size)
			}
		}
	}
	if a.unaligned == 0 {
		// Only aligned words: at most the two the store's ends fall in.
		hit(lo &^ 7)
		if last := (hi - 1) &^ 7; last != lo&^7 {
			hit(last)
		}
		return
	}
	for p := lo - 7; p != hi; p++ {
		hit(p)
	}
}

// noteHijack records a declared hijack handler's store of its
// trampoline's address over a word; any other store to the word ends
// the record.
func (a *returnSlot) noteHijack(r *format.Row) {
	for i, h := range a.hijacks {
		if r.New == h.tramp && r.RIP >= h.handler && r.RIP < h.handlerEnd {
			a.hijacked[r.Addr] = &hijackFill{h: i, at: r.Addr, orig: r.Old, row: *r}
			return
		}
	}
	delete(a.hijacked, r.Addr)
}

// checkHijack judges a RET against the declared hijacks: a RET through a
// hijacked word into its trampoline is accepted (and the trampoline's
// frame noted for the context); a RET by a trampoline must return to the
// address its context's innermost hijacked frame held. It reports
// whether the RET was judged here.
func (a *returnSlot) checkHijack(ctx *Context, r *format.Row, target uint64) bool {
	k := ctxKey{r.CPU, r.Task, r.Depth}
	if fs := a.inTramp[k]; len(fs) > 0 {
		f := fs[len(fs)-1]
		h := a.hijacks[f.h]
		if r.RIP >= h.tramp && r.RIP < h.trampEnd {
			a.inTramp[k] = fs[:len(fs)-1]
			if len(a.inTramp[k]) == 0 {
				delete(a.inTramp, k)
			}
			if target != f.orig {
				ctx.Report(Finding{
					CPU: int(r.CPU), Task: r.Task, SeqFirst: f.row.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{f.row.Seq, f.enter.Seq, r.Seq},
					Context: contextName(r),
					Story:   ctx.story.tellWith(ctx.St, int(r.CPU), []uint64{f.row.Seq, r.Seq}, &f.row, &f.enter, r),
					Message: fmt.Sprintf("%s's ret at %s returns to %s, but the frame it was entered from returns to %s: %s replaced that return address (word %#x) at seq %d, and the RET at seq %d consumed it; the trampoline returned through the wrong frame",
						h.trampName, ctx.Describe(r.RIP), ctx.Describe(target), ctx.Describe(f.orig), ctx.Describe(f.row.RIP), f.at, f.row.Seq, f.enter.Seq),
				}, fmt.Sprintf("hijack|%#x", r.RIP))
			}
			return true
		}
	}
	f := a.hijacked[r.RSP]
	if f == nil || target != a.hijacks[f.h].tramp {
		return false
	}
	delete(a.hijacked, r.RSP)
	f.enter = *r
	a.inTramp[k] = append(a.inTramp[k], f)
	return true
}

// checkRet judges a RET by the word it pops.
func (a *returnSlot) checkRet(ctx *Context, r *format.Row) {
	st := ctx.St
	target := st.Mem.U64(r.RSP)
	if len(a.hijacks) > 0 && a.checkHijack(ctx, r, target) {
		return
	}
	var w stackWord
	pw := a.prov.get(r.RSP)
	known := pw != nil
	if known {
		w = *pw
		if pw.kind == provCall {
			pw.popped = true
		}
	}
	if known && w.kind == provRedirect && sameFunction(st, w.rip, r.RIP) {
		return // a function returns where it sent its own return
	}
	if known && w.kind != provStore && w.kind != provRedirect {
		return
	}
	if a.siteRets[target] || isReturnAddress(st.Mem, target) || isReturnAddress(st.Image, target) {
		return
	}
	// A new task's first switch returns into ret_from_* through a frame the
	// scheduler built by hand (Linux's copy_thread/ret_from_fork).
	if sym, ok := st.Syms.At(target); ok && sym.Addr == target && strings.HasPrefix(sym.Name, "ret_from_") {
		return
	}
	by := "a word that was never stored in this run"
	ev := []uint64{r.Seq}
	first := r.Seq
	if known {
		by = fmt.Sprintf("a word stored at seq %d by %s, not by a call", w.seq, ctx.Describe(w.rip))
		if w.partial {
			by = fmt.Sprintf("a word a %d-byte store at %#x (seq %d, by %s) overwrote in part", w.size, w.at, w.seq, ctx.Describe(w.rip))
		}
		ev = []uint64{w.seq, r.Seq}
		first = w.seq
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: first, SeqLast: r.Seq, RIP: r.RIP, Evidence: ev,
		Context: contextName(r),
		Message: fmt.Sprintf("ret at %s returns to %s through %s (stack %#x): no call produced that return address",
			ctx.Describe(r.RIP), ctx.Describe(target), by, r.RSP),
	}, fmt.Sprintf("ret|%#x|%#x", r.RIP, target))
}

// sameFunction reports whether x and y lie in one function (symbol).
func sameFunction(st *replay.State, x, y uint64) bool {
	fx, okx := st.Syms.At(x)
	fy, oky := st.Syms.At(y)
	return okx && oky && fx.Addr == fy.Addr
}

// isEntry reports whether addr is the first byte of a function (a symbol
// with a size).
func isEntry(st *replay.State, addr uint64) bool {
	sym, ok := st.Syms.At(addr)
	return ok && sym.Addr == addr && sym.Size > 0
}

// isReturnAddress reports whether the bytes before addr in mem decode as a
// CALL that ends exactly at addr.
func isReturnAddress(mem *replay.Memory, addr uint64) bool {
	if mem == nil {
		return false
	}
	var buf [7]byte
	if !mem.Read(addr-7, buf[:]) {
		return false
	}
	for k := 2; k <= 7; k++ {
		in, err := x86asm.Decode(buf[7-k:], 64)
		if err == nil && in.Len == k && in.Op == x86asm.CALL {
			return true
		}
	}
	return false
}

// provTable maps stack words to their provenance: aligned words in pages
// of 512 (one map lookup per page, and none for a run of stores to the
// last page used), unaligned ones in a map.
type provTable struct {
	pages  map[uint64]*provPage
	recent [4]struct {
		vpn uint64
		p   *provPage
	} // the pages last used, by page number (CPUs' stacks alternate)
	unaligned map[uint64]*stackWord
}

type provPage struct {
	has   [512 / 64]uint64
	words [512]stackWord
}

// page returns the page of addr (aligned), making it when make is set.
func (t *provTable) page(addr uint64, make bool) *provPage {
	vpn := addr >> 12
	c := &t.recent[vpn&3]
	if c.p != nil && c.vpn == vpn {
		return c.p
	}
	p := t.pages[vpn]
	if p == nil {
		if !make {
			return nil
		}
		if t.pages == nil {
			t.pages = map[uint64]*provPage{}
		}
		p = &provPage{}
		t.pages[vpn] = p
	}
	c.vpn, c.p = vpn, p
	return p
}

// get returns the word at addr, or nil when none was stored; the word may
// be changed in place.
func (t *provTable) get(addr uint64) *stackWord {
	if addr&7 != 0 {
		return t.unaligned[addr]
	}
	p := t.page(addr, false)
	i := addr >> 3 & 511
	if p == nil || p.has[i>>6]&(1<<(i&63)) == 0 {
		return nil
	}
	return &p.words[i]
}

func (t *provTable) has(addr uint64) bool { return t.get(addr) != nil }

func (t *provTable) set(addr uint64, w stackWord) {
	if addr&7 != 0 {
		if t.unaligned == nil {
			t.unaligned = map[uint64]*stackWord{}
		}
		if old := t.unaligned[addr]; old != nil {
			*old = w
			return
		}
		nw := new(stackWord) // (not &w: w would be moved to the heap on every call)
		*nw = w
		t.unaligned[addr] = nw
		return
	}
	p := t.page(addr, true)
	i := addr >> 3 & 511
	p.has[i>>6] |= 1 << (i & 63)
	p.words[i] = w
}

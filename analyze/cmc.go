package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// cmc checks cross-modifying code (SDM Vol. 3 §8.1.3; mail 003 of docs/background.md): a CPU that
// executes bytes another CPU changed must serialize first — unless the change
// is the int3 guard itself. An instruction at A executed on CPU c is
// accepted when every byte of it that changed since c last serialized is
// byte A, and every such change installed or removed an int3 (0xCC) through
// the text-poke alias (the patcher's own write): that is the one-byte write
// the text_poke_bp protocol relies on being atomic. Anything else — a tail
// rewritten while c could still hold the old decode, five bytes written in
// one go, a first byte changed to anything but an int3, an 0xCC stored by
// some other write — is a finding, whichever page of the instruction the
// changed bytes are on. Only stores to pages that were executable when
// written, or had been and were made non-executable for the store
// (set_memory_nx, store, set_memory_x), count: fresh code is not
// "modified".
//
// A second rule covers code rewritten while a context is inside it (the
// BPF dispatcher's half rewritten under a preempted caller, commit
// 4121d4481b72; an optprobe's jump written over instructions a task was
// interrupted between): serializing does not make that safe. When a
// context (a task, or a CPU's idle context, at one trap depth) executes
// an instruction at A right after the one at P (A = P + its length: the
// same instruction stream), and between the two both the bytes at P and
// those at A were rewritten (P no longer holds what the context executed
// there, and a store changed a byte of A), the context ran half of one
// version of the code and half of another. A rewrite of A that put an
// int3 on A's first byte through the alias is text_poke_bp() replacing
// A as one instruction, which a context may see either way: not a
// finding.
type cmc struct {
	hist     map[uint64]*byteHist // code byte -> its recent writes
	pageLast map[uint64]uint64    // code page -> seq of its last write
	lostX    map[uint64]bool      // pages made non-executable after being executable
	pokes    map[uint16][3]uint64 // cpu -> [addr, end) of its text_poke in progress, and the seq of its service row
	lastVPN  uint64
	lastSeq  uint64
	haveLast bool

	streams map[streamKey]*streamInsn // each context's last instruction
	cur     []streamCur               // per CPU: the context of its last instruction
}

// streamKey names an instruction stream: a task at a trap depth (the idle
// context, task 0, is one per CPU).
type streamKey struct {
	task  uint32
	cpu   uint16
	depth uint8
}

// streamInsn is the last instruction a context executed.
type streamInsn struct {
	seq, rip uint64
	n        uint8
	valid    bool
	bytes    [15]byte
}

type streamCur struct {
	key streamKey
	rec *streamInsn
}

const histLen = 4

// svcTextPoke is text_poke's service number in service events (emu.SvcTextPoke).
const svcTextPoke = 1

// byteHist keeps the last few writes of one code byte.
type byteHist struct {
	n      int
	writes [histLen]codeWrite
}

type codeWrite struct {
	seq      uint64
	old, new byte
	cpu      uint16
	alias    bool
}

func (*cmc) ID() string { return "cmc" }
func (*cmc) Doc() string {
	return "A CPU executed bytes changed since its last serialization without the int3 guard in place, or a context ran across a rewrite of the code it was in (cross-modifying code)."
}

func (a *cmc) Start(*Context) error {
	a.hist = map[uint64]*byteHist{}
	a.pageLast = map[uint64]uint64{}
	a.lostX = map[uint64]bool{}
	a.pokes = map[uint16][3]uint64{}
	a.streams = map[streamKey]*streamInsn{}
	a.cur = nil
	return nil
}

func (*cmc) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindService, format.KindPerm, format.KindWrite, format.KindInsn, format.KindIret},
		Columns: []int{format.ColService, format.ColArg0, format.ColArg2, format.ColAlias, format.ColPermOld, format.ColPermNew,
			format.ColAddr, format.ColSize, format.ColOld, format.ColNew, format.ColLen, format.ColBytes}}
}

func (a *cmc) Event(ctx *Context, r *format.Row) {
	st := ctx.St
	switch r.Kind {
	case format.KindService:
		if r.Service == svcTextPoke && r.Args[2] != 0 {
			a.pokes[r.CPU] = [3]uint64{r.Args[0], r.Args[0] + r.Args[2], r.Seq}
		}
	case format.KindPerm:
		if r.Alias && r.PermNew == 0 {
			delete(a.pokes, r.CPU) // the alias goes after the last store
		}
		if !r.Alias && r.PermOld&replay.PermX != 0 && r.PermNew&replay.PermX == 0 {
			for i := uint64(0); i < uint64(max(r.Size, 1)); i++ {
				a.lostX[r.Addr>>12+i] = true
			}
		}
	case format.KindWrite:
		last := r.Addr + uint64(max(r.Size, 1)) - 1
		split := last>>12 != r.Addr>>12
		if !a.codePage(st, r.Addr) && (!split || !a.codePage(st, last)) {
			return // (most stores: one lookup)
		}
		for i := uint64(0); i < uint64(r.Size); i++ {
			addr := r.Addr + i
			if split && !a.codePage(st, addr) {
				continue
			}
			h := a.hist[addr]
			if h == nil {
				h = &byteHist{}
				a.hist[addr] = h
			}
			h.writes[h.n%histLen] = codeWrite{seq: r.Seq, old: byte(r.Old >> (8 * i)), new: byte(r.New >> (8 * i)), cpu: r.CPU, alias: r.Alias}
			h.n++
			a.pageLast[addr>>12] = r.Seq
		}
		a.haveLast = false
	case format.KindIret:
		// The handler's context (one deeper than the context the IRETQ
		// resumes, the row's depth) ends; the next one there is another.
		k := streamKey{task: r.Task, depth: r.Depth + 1}
		if r.Task == 0 {
			k.cpu = r.CPU
		}
		if rec := a.streams[k]; rec != nil {
			rec.valid = false
		}
	case format.KindInsn:
		vpn := r.RIP >> 12
		if !a.haveLast || a.lastVPN != vpn {
			a.lastVPN, a.lastSeq, a.haveLast = vpn, a.pageLast[vpn], true
		}
		a.streamStep(ctx, r, a.lastSeq)
		c := st.CPUs[r.CPU]
		last := a.lastSeq
		if end := (r.RIP + uint64(max(r.Len, 1)) - 1) >> 12; end != vpn {
			// The instruction runs into the next page: its changes count.
			last = max(last, a.pageLast[end])
		}
		if last == 0 || (c.Serialized && last <= c.LastSerialize) {
			return // nothing of this instruction's pages changed since this CPU serialized
		}
		a.check(ctx, r, c)
	}
}

// codePage reports whether a store to addr may change code: its page is
// executable, or was made non-executable after being executable.
func (a *cmc) codePage(st *replay.State, addr uint64) bool {
	return st.Mem.Perm(addr)&replay.PermX != 0 || len(a.lostX) != 0 && a.lostX[addr>>12]
}

func (a *cmc) check(ctx *Context, r *format.Row, c replay.CPU) {
	var changed []uint64
	var evidence []uint64
	guarded := true
	for i := uint64(0); i < uint64(r.Len); i++ {
		addr := r.RIP + i
		h := a.hist[addr]
		if h == nil {
			continue
		}
		for k := 0; k < min(h.n, histLen); k++ {
			w := h.writes[(h.n-1-k)%histLen]
			if c.Serialized && w.seq <= c.LastSerialize {
				break
			}
			if len(changed) == 0 || changed[len(changed)-1] != addr {
				changed = append(changed, addr)
			}
			evidence = append(evidence, w.seq)
			if i != 0 || !w.alias || (w.old != 0xcc && w.new != 0xcc) {
				guarded = false
			}
		}
		if h.n > histLen {
			// Older writes fell out of the history; be conservative only if
			// the oldest kept one is still after the serialization.
			w := h.writes[h.n%histLen]
			if !c.Serialized || w.seq > c.LastSerialize {
				guarded = false
			}
		}
	}
	if len(changed) == 0 || guarded {
		return
	}
	var now [15]byte
	ctx.St.Mem.Read(r.RIP, now[:r.Len])
	executed := r.Instruction()
	state := "the same bytes memory holds now"
	if string(now[:r.Len]) != string(executed) {
		state = "memory now holds " + hexBytes(now[:r.Len]) + ": it ran a stale decode"
	}
	for cpu := range ctx.St.CPUs {
		p, ok := a.pokes[uint16(cpu)]
		if ok && uint16(cpu) != r.CPU && p[0] < r.RIP+uint64(r.Len) && r.RIP < p[1] {
			state += fmt.Sprintf(", executed half-written while cpu%d's text_poke of %d bytes at %s was in progress", cpu, p[1]-p[0], ctx.Describe(p[0]))
			evidence = append(evidence, p[2]) // the call (the story says from where)
		}
	}
	since := "it never serialized"
	if c.Serialized {
		since = fmt.Sprintf("its last serialization was seq %d", c.LastSerialize)
	}
	evidence = append([]uint64{r.Seq}, evidence...)
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: minSeq(evidence), SeqLast: r.Seq, RIP: r.RIP, Evidence: evidence,
		Message: fmt.Sprintf("cpu%d executed %s (bytes %s, %s) after %s changed without the int3 guard; %s",
			r.CPU, ctx.Describe(r.RIP), hexBytes(executed), state, describeRange(ctx, changed), since),
	}, fmt.Sprintf("%#x", r.RIP))
}

// stream returns the record of r's context (an instruction row's),
// creating it.
func (a *cmc) stream(r *format.Row) *streamInsn {
	k := streamKey{task: r.Task, depth: r.Depth}
	if r.Task == 0 {
		k.cpu = r.CPU
	}
	if int(r.CPU) >= len(a.cur) {
		a.cur = append(a.cur, make([]streamCur, int(r.CPU)+1-len(a.cur))...)
	}
	c := &a.cur[r.CPU]
	if c.rec != nil && c.key == k {
		return c.rec
	}
	rec := a.streams[k]
	if rec == nil {
		rec = &streamInsn{}
		a.streams[k] = rec
	}
	c.key, c.rec = k, rec
	return rec
}

// streamStep applies the second rule to the instruction r and makes it its
// context's last one (pageSeq: the last write to r.RIP's page, pageLast).
func (a *cmc) streamStep(ctx *Context, r *format.Row, pageSeq uint64) {
	rec := a.stream(r)
	if rec.valid && r.RIP == rec.rip+uint64(rec.n) && pageSeq > rec.seq {
		a.checkStream(ctx, r, rec)
	}
	n := min(int(r.Len), len(rec.bytes))
	rec.seq, rec.rip, rec.n, rec.valid = r.Seq, r.RIP, uint8(n), true
	rec.bytes = r.Bytes // (bytes[:n] are read; copy() of n went through memmove)
}

func (a *cmc) checkStream(ctx *Context, r *format.Row, p *streamInsn) {
	var changed []uint64
	var evidence []uint64
	for i := uint64(0); i < uint64(r.Len); i++ {
		h := a.hist[r.RIP+i]
		if h == nil {
			continue
		}
		hit := false
		for k := 0; k < min(h.n, histLen); k++ {
			w := h.writes[(h.n-1-k)%histLen]
			if w.seq <= p.seq {
				break
			}
			if i == 0 && w.alias && w.new == 0xcc {
				return // A replaced as one instruction behind an int3
			}
			if w.old != w.new {
				hit = true
				evidence = append(evidence, w.seq)
			}
		}
		if hit {
			changed = append(changed, r.RIP+i)
		}
	}
	if len(changed) == 0 {
		return
	}
	var now [15]byte
	ctx.St.Mem.Read(p.rip, now[:p.n])
	if string(now[:p.n]) == string(p.bytes[:p.n]) {
		return // P still holds what the context executed
	}
	evidence = append([]uint64{p.seq, r.Seq}, evidence...)
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: p.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: evidence,
		Message: fmt.Sprintf("cpu%d executed %s (bytes %s) right after %s (bytes %s, seq %d), and both were rewritten in between "+
			"(%s changed, %s now holds %s): the context ran across a rewrite of the code it was in, half the old code and half the new",
			r.CPU, ctx.Describe(r.RIP), hexBytes(r.Instruction()), ctx.Describe(p.rip), hexBytes(p.bytes[:p.n]), p.seq,
			describeRange(ctx, changed), ctx.Describe(p.rip), hexBytes(now[:p.n])),
	}, fmt.Sprintf("stream %#x", r.RIP))
}

func describeRange(ctx *Context, addrs []uint64) string {
	if len(addrs) == 1 {
		return ctx.Describe(addrs[0])
	}
	return fmt.Sprintf("%s..%s (%d bytes)", ctx.Describe(addrs[0]), ctx.Describe(addrs[len(addrs)-1]), len(addrs))
}

func minSeq(s []uint64) uint64 {
	m := s[0]
	for _, v := range s {
		m = min(m, v)
	}
	return m
}

func (*cmc) Finish(*Context) {}

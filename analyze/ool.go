package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/replay"
	"golang.org/x/arch/x86/x86asm"
)

// Out-of-line copies (part of trapCheck).
//
// A kprobe runs the instructions it displaces somewhere else: a copy in an
// instruction slot, single-stepped (the #DB handler then moves the CPU
// behind the original), or boosted (the copy followed by a jump back), or
// an optprobe's detour buffer (the copies of every instruction its jump
// replaced, then a jump back). The copy stands for the original only if it
// does what the original would have done where it was; an operand
// addressed relative to the instruction's own end (RIP-relative, SDM
// Vol. 2 §2.2.1.6) needs another displacement in the copy to reach the
// same memory, and a copy made byte for byte, or adjusted for the wrong
// address, reads or writes something else without any fault (Linux's
// __copy_instruction(); upstream "kprobes/x86: Fix to copy RIP relative
// instruction correctly").
//
// The rule needs no knowledge of the protocol, only the shape every one of
// them has: a context arrives at an address A inside a function, not by
// falling through, and the instructions it ran just before (at the same
// trap depth, in one straight line, in a page text_poke has written, in
// another function) end, apart from a direct jump to A, with instructions
// that have the encoding of the code as built right before A, instruction
// for instruction, up to their RIP-relative displacements: those are the
// copies. Each such copy must address, RIP-relative, what the original
// addresses from where it was built. Code that is no copy (a trampoline
// returning into the function) differs from the code before A and is not
// judged; relative branches in a copy are not judged either (where they go
// shows in where the context goes).

// oolDepths is how many trap depths of each CPU keep their recent
// instructions; oolKeep how many each keeps.
const (
	oolDepths = 4
	oolKeep   = 16
)

type oolInsn struct {
	rip, seq uint64
	task     uint32
	n        uint8
}

// oolRing is one context level's recent instructions, newest last.
type oolRing struct {
	e    [oolKeep]oolInsn
	next int
	n    int
}

func (g *oolRing) push(in oolInsn) {
	g.e[g.next] = in
	g.next = (g.next + 1) % oolKeep
	if g.n < oolKeep {
		g.n++
	}
}

// at returns the i-th newest instruction (0: the newest).
func (g *oolRing) at(i int) oolInsn {
	return g.e[(g.next-1-i+2*oolKeep)%oolKeep]
}

// oolStep records an instruction row and, when it is an arrival (its
// context's previous instruction at this depth does not fall through to
// it), judges the copies the context ran before it.
func (a *trapCheck) oolStep(ctx *Context, r *format.Row) {
	if int(r.CPU) >= len(a.rings) || r.Depth >= oolDepths || r.Len == 0 {
		return
	}
	g := &a.rings[r.CPU][r.Depth]
	d := &a.deps[r.CPU][r.Depth]
	if d.on {
		a.oolCopy(ctx, d, r)
	}
	if g.n > 0 {
		if p := g.at(0); p.task == r.Task && p.rip+uint64(p.n) != r.RIP {
			if _, ok := a.written[p.rip>>12]; ok {
				a.oolArrive(ctx, g, r)
				a.oolDepart(ctx, d, p, r)
			}
		}
	}
	g.push(oolInsn{rip: r.RIP, seq: r.Seq, task: r.Task, n: r.Len})
}

// builtEnds maps the end of every instruction of fn, as built, to its
// start (nil when the image does not decode).
func (a *trapCheck) builtEnds(st *replay.State, fn format.Symbol) map[uint64]uint64 {
	if m, ok := a.ends[fn.Addr]; ok {
		return m
	}
	var m map[uint64]uint64
	code := make([]byte, fn.Size+15)
	if st.Image != nil && st.Image.Read(fn.Addr, code[:fn.Size]) {
		m = map[uint64]uint64{}
		err := slice.Walk(int(fn.Size), func(off int) (int, error) {
			in, err := x86asm.Decode(code[off:], 64)
			return in.Len, err
		}, func(off, n int) bool {
			m[fn.Addr+uint64(off+n)] = fn.Addr + uint64(off)
			return true
		})
		if err != nil {
			m = nil
		}
	}
	a.ends[fn.Addr] = m
	return m
}

func (a *trapCheck) oolArrive(ctx *Context, g *oolRing, r *format.Row) {
	st := ctx.St
	fn, ok := st.Syms.At(r.RIP)
	if !ok || fn.Size == 0 || r.RIP == fn.Addr {
		return
	}
	last := g.at(0)
	if from, ok := st.Syms.At(last.rip); ok && from.Addr == fn.Addr {
		return // a branch inside the function
	}
	ends := a.builtEnds(st, fn)
	if ends == nil {
		return
	}
	i := 0
	if in, _, ok := decodeAt(st.Mem, last.rip); ok && in.Op == x86asm.JMP {
		if rel, isRel := in.Args[0].(x86asm.Rel); isRel && last.rip+uint64(in.Len)+uint64(int64(rel)) == r.RIP {
			i = 1 // the jump back behind the copies
		}
	}
	end := r.RIP
	for ; i < g.n; i++ {
		e := g.at(i)
		if e.task != r.Task || (i > 0 && e.rip+uint64(e.n) != g.at(i-1).rip) {
			return
		}
		start, ok := ends[end]
		if !ok || end-start != uint64(e.n) {
			return
		}
		var ob [16]byte
		if !st.Image.Read(start, ob[:e.n]) {
			return
		}
		orig, err := x86asm.Decode(ob[:e.n], 64)
		if err != nil {
			return
		}
		cp, cb, ok := decodeAt(st.Mem, e.rip)
		if !ok || cp.Len != int(e.n) {
			return
		}
		eaO, hasO := ripRelative(orig, start)
		eaC, hasC := ripRelative(cp, e.rip)
		if !sameModDisp(orig, cp) || hasO != hasC {
			return
		}
		if hasO && eaO != eaC {
			ctx.Report(Finding{
				CPU: int(r.CPU), Task: r.Task, SeqFirst: e.seq, SeqLast: r.Seq, RIP: e.rip, Evidence: []uint64{e.seq, r.Seq},
				Message: fmt.Sprintf("cpu%d ran %s (%s: %s), an out-of-line copy of the instruction at %s (%s), and then went on at %s: the copy's RIP-relative operand addresses %s, the original's %s (its displacement is not the original's adjusted for where the copy runs)",
					r.CPU, ctx.Describe(e.rip), hexBytes(cb[:e.n]), x86asm.GNUSyntax(cp, e.rip, nil), ctx.Describe(start), hexBytes(ob[:e.n]),
					ctx.Describe(r.RIP), ctx.Describe(eaC), ctx.Describe(eaO)),
			}, fmt.Sprintf("ool|%#x", e.rip))
		}
		end = start
	}
}

// decodeAt decodes the instruction in memory at addr.
func decodeAt(mem *replay.Memory, addr uint64) (x86asm.Inst, [16]byte, bool) {
	var b [16]byte
	n := 15
	for n > 0 && !mem.Read(addr, b[:n]) {
		n-- // the end of a mapping
	}
	if n == 0 {
		return x86asm.Inst{}, b, false
	}
	in, err := x86asm.Decode(b[:n], 64)
	return in, b, err == nil
}

// ripRelative returns the address an instruction at addr reaches through
// its RIP-relative memory operand, if it has one.
func ripRelative(in x86asm.Inst, addr uint64) (uint64, bool) {
	for _, arg := range in.Args {
		if m, ok := arg.(x86asm.Mem); ok && m.Base == x86asm.RIP {
			return addr + uint64(in.Len) + uint64(m.Disp), true
		}
	}
	return 0, false
}

// sameModDisp reports whether two decoded instructions are the same
// instruction up to the displacement of a RIP-relative operand.
func sameModDisp(x, y x86asm.Inst) bool {
	if x.Op != y.Op || x.Len != y.Len || x.Opcode != y.Opcode || x.DataSize != y.DataSize || x.MemBytes != y.MemBytes {
		return false
	}
	for i := range x.Args {
		ax, ay := x.Args[i], y.Args[i]
		if mx, ok := ax.(x86asm.Mem); ok && mx.Base == x86asm.RIP {
			my, ok := ay.(x86asm.Mem)
			if !ok || my.Base != x86asm.RIP {
				return false
			}
			mx.Disp, my.Disp = 0, 0
			ax, ay = mx, my
		}
		if ax != ay {
			return false
		}
	}
	return true
}

// A context that leaves a function from a site whose instruction is no
// longer the one built there (an int3 or a jump written over it) may run
// copies of the instructions from that site on, out of line, before it
// comes back (an optprobe's detour, a boosted kprobe's slot). Once at
// least two copies in one straight line have matched the code as built,
// instruction for instruction from the site, the next instruction in that
// line must be the copy of the next instruction as built, or a direct jump
// back to it: anything else is a copy made from bytes that were not the
// instruction (a jump or int3 of another probe read back as the original;
// upstream commit 868a6fc0ca24, "x86/kprobes: Fix __recover_optprobed_insn
// check optimizing logic"). Copies of relative branches are not judged
// (they are rewritten, or emulated, legitimately).

// oolMinCopies is how many matched copies make a line of copies.
const oolMinCopies = 2

// oolMaxBefore is how many instructions a departed context may run
// before its first copy (a detour's call to the probe handler).
const oolMaxBefore = 256

// oolDep is a context's departure from fn at site, and the copies of the
// instructions from site on it has run since.
type oolDep struct {
	on   bool
	task uint32
	fn   format.Symbol
	site uint64
	next uint64  // the built instruction the next copy stands for
	n    int     // copies matched
	seen int     // instructions run before the first copy
	last oolInsn // the newest copy
}

// builtAt decodes the instruction of fn as built that starts at addr.
func (a *trapCheck) builtAt(st *replay.State, fn format.Symbol, addr uint64) (x86asm.Inst, [16]byte, bool) {
	var b [16]byte
	ends := a.builtEnds(st, fn)
	if ends == nil || addr < fn.Addr || addr >= fn.Addr+fn.Size || st.Image == nil {
		return x86asm.Inst{}, b, false
	}
	n := min(uint64(15), fn.Addr+fn.Size-addr)
	if !st.Image.Read(addr, b[:n]) {
		return x86asm.Inst{}, b, false
	}
	in, err := x86asm.Decode(b[:n], 64)
	if err != nil || ends[addr+uint64(in.Len)] != addr {
		return x86asm.Inst{}, b, false
	}
	return in, b, true
}

// oolDepart starts following a context that went from p, in a function,
// to r outside it, when the instruction at p is not the one built there.
func (a *trapCheck) oolDepart(ctx *Context, d *oolDep, p oolInsn, r *format.Row) {
	if d.on {
		return // already following this context (calls out of its copies' buffer)
	}
	st := ctx.St
	fn, ok := st.Syms.At(p.rip)
	if !ok || fn.Size == 0 || (r.RIP >= fn.Addr && r.RIP < fn.Addr+fn.Size) {
		return
	}
	built, bb, ok := a.builtAt(st, fn, p.rip)
	if !ok {
		return
	}
	var now [16]byte
	if !st.Mem.Read(p.rip, now[:built.Len]) || string(now[:built.Len]) == string(bb[:built.Len]) {
		return
	}
	*d = oolDep{on: true, task: r.Task, fn: fn, site: p.rip, next: p.rip}
}

// isRelBranch reports whether in branches relative to its own end.
func isRelBranch(in x86asm.Inst) bool {
	for _, arg := range in.Args {
		if _, ok := arg.(x86asm.Rel); ok {
			return true
		}
	}
	return false
}

// oolCopy judges instruction r of a context followed by d.
func (a *trapCheck) oolCopy(ctx *Context, d *oolDep, r *format.Row) {
	st := ctx.St
	if r.Task != d.task || (r.RIP >= d.fn.Addr && r.RIP < d.fn.Addr+d.fn.Size) {
		d.on = false
		return
	}
	if d.n > 0 && d.last.rip+uint64(d.last.n) != r.RIP {
		d.on = false // the line of copies ended with a branch
		return
	}
	built, bb, ok := a.builtAt(st, d.fn, d.next)
	if !ok || isRelBranch(built) {
		d.on = false
		return
	}
	cp, cb, ok := decodeAt(st.Mem, r.RIP)
	if ok && cp.Len == int(r.Len) && sameModDisp(built, cp) {
		d.n++
		d.next += uint64(built.Len)
		d.last = oolInsn{rip: r.RIP, seq: r.Seq, task: r.Task, n: r.Len}
		return
	}
	if d.n == 0 {
		// Not yet at the copies (a handler called before them); a
		// context that runs this long without one is not running any.
		if d.seen++; d.seen > oolMaxBefore {
			d.on = false
		}
		return
	}
	d.on = false
	if ok && cp.Op == x86asm.JMP {
		if rel, isRel := cp.Args[0].(x86asm.Rel); isRel && r.RIP+uint64(cp.Len)+uint64(int64(rel)) == d.next {
			return // the jump back behind the copies
		}
	}
	if d.n < oolMinCopies {
		return
	}
	what := "does not decode"
	if ok {
		what = fmt.Sprintf("is %s", x86asm.GNUSyntax(cp, r.RIP, nil))
	}
	n := max(int(r.Len), 1)
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: d.last.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{d.last.seq, r.Seq},
		Message: fmt.Sprintf("cpu%d left %s at %s and ran %d out-of-line copies of the instructions from there, up to %s; the next instruction in that line, at %s (%s), %s: neither the copy of the instruction built at %s (%s: %s) nor a jump back to it (the copy was made from bytes that are not the instruction as built)",
			r.CPU, d.fn.Name, ctx.Describe(d.site), d.n, ctx.Describe(d.last.rip), ctx.Describe(r.RIP), hexBytes(cb[:n]), what,
			ctx.Describe(d.next), hexBytes(bb[:built.Len]), x86asm.GNUSyntax(built, d.next, nil)),
	}, fmt.Sprintf("ool-copy|%#x", r.RIP))
}

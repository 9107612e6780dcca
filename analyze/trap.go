package analyze

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/replay"
	"golang.org/x/arch/x86/x86asm"
)

// trapCheck reports exceptions no handler claimed (the oops, panic and BUG
// fault events) and handlers that returned (IRETQ) into the middle of an
// instruction: an address is a boundary if decoding its function from the
// start over the code bytes at the time reaches it, reading a temporary int3
// guard as the instruction it stands for (see boundary).
//
// A third rule needs no patching at all: the image's executable text
// between two functions that no symbol covers (the assembler's alignment
// fill after a function's last instruction, up to the next one) is no
// function's code, so an instruction executed there - a return to the
// bytes after a tail call's jmp, a fall-through past a function's end - is
// a finding, unless the alias wrote its bytes (code installed there).
//
// A slice's oops path may name the faulting instruction first with
// pt_marker(0xffff, regs->ip) (scenarios/base's die()); the finding is then
// placed there rather than at panic(), and an unclaimed int3 is named as such.
//
// It also judges out-of-line copies of instructions (ool.go): code run in
// place of the instructions before the address a context goes on at must
// address, RIP-relative, what they do, and a line of copies run after a
// context left a function from a rewritten site must go on with the copy
// of the next instruction as built or jump back to it; and int3 handlers'
// emulations of a conditional branch under their int3 (emulate.go): the
// IRETQ must resume the context where the flags it was interrupted with
// send the branch.
type trapCheck struct {
	oopsIP   []uint64 // per CPU: ip from the last die marker
	lastTrap []trapSeen
	faults   int // fault events seen
	// bounds caches boundary's answer for the addresses IRETQs returned
	// to, with the code bytes it was computed from: an IRETQ back to the
	// same place over the same bytes decodes nothing again.
	bounds map[uint64]*boundSeen
	code   []byte
	// Branches: each CPU's last instruction, the seq of the last
	// text-poke store to each code page and to each function (by its
	// start), and boundary's answer for a branch target as of its
	// function's last store.
	last     []trapInsn
	written  map[uint64]uint64
	funcSeq  map[uint64]uint64
	branchOK map[uint64]branchSeen
	byteSeq  map[uint64]uint64 // code byte -> seq of its last text-poke store
	// Out-of-line copies (ool.go): each CPU's recent instructions per
	// trap depth, and each function's instruction ends as built.
	rings [][oolDepths]oolRing
	deps  [][oolDepths]oolDep
	ends  map[uint64]map[uint64]uint64
	// pad is a bit per byte of the image's text over [padLo, ...): set
	// for the padding between functions (paddingOf); gaps names them.
	pad   []uint64
	padLo uint64
	gaps  []padGap
	// Emulated branches (emulate.go): each context's #BP over a
	// conditional branch as built, until the IRETQ that resumes it.
	emu map[ctxKey]emuPending
	// allocs are the live module_alloc() allocations, by lo (the machine
	// leaves an unmapped guard page behind each, as vmalloc does), so
	// that a #PF in a guard page names the allocation it ran past.
	allocs []trapAlloc
}

// trapAlloc is a live module_alloc() allocation [lo, hi), mapped at seq.
type trapAlloc struct {
	lo, hi, seq uint64
}

// maxTrapAllocs bounds the allocations followed (a hostile stream of
// module_alloc rows); beyond it the oldest are forgotten, which only
// loses the naming of a guard-page fault, never a finding.
const maxTrapAllocs = 4096

// Service ids (format.Services) trapCheck reads.
const svcModuleAlloc = 6

// padGap is one run of padding: [lo, hi) between the functions before and
// after it.
type padGap struct {
	lo, hi       uint64
	before, next string
}

// trapInsn is a CPU's last instruction (ok: the next instruction row of the
// same context follows it with nothing delivered or returned between).
type trapInsn struct {
	rip   uint64
	seq   uint64
	task  uint32
	n     uint8
	depth uint8
	ok    bool
}

// branchSeen is boundary's answer for a branch target while the last
// text-poke store to its function (starting at fn) was at seq.
type branchSeen struct {
	fn    uint64
	seq   uint64
	start uint64
	insn  []byte
	ok    bool
	guard bool // start is a text_poke_bp guard whose pending instruction covers the target
}

// boundSeen is boundary's answer for an address over code (the bytes of
// the function holding it, and whether they were all mapped).
type boundSeen struct {
	code   []byte
	mapped bool
	start  uint64
	insn   []byte
	ok     bool
}

type trapSeen struct {
	vector  uint8
	rip     uint64
	seq     uint64
	errCode uint64
	addr    uint64
}

// pokeMax is the most bytes text_poke_bp() writes at one site (Linux's
// POKE_MAX_OPCODE_SIZE: a jump or call with a 32-bit displacement).
const pokeMax = 5

// vecPF is the page-fault vector (SDM Vol. 3 Table 6-1).
const vecPF = 14

// markerOopsIP is the marker id die() uses to name the faulting ip.
const markerOopsIP = 0xffff

func (*trapCheck) ID() string { return "trap" }
func (*trapCheck) Doc() string {
	return "An int3 or fault that no handler claimed (an oops, panic or BUG), a handler return or branch into the middle of an instruction of patched code, an out-of-line copy of an instruction (a kprobe's slot, an optprobe's detour) whose RIP-relative operand addresses other memory than the original's or that is not the instruction as built at all, an int3 handler's emulation of a conditional branch that went the other way than the interrupted flags select, or an instruction run in the padding between two functions."
}
func (a *trapCheck) Start(ctx *Context) error {
	a.oopsIP = make([]uint64, len(ctx.St.CPUs))
	a.lastTrap = make([]trapSeen, len(ctx.St.CPUs))
	a.bounds = map[uint64]*boundSeen{}
	a.last = make([]trapInsn, len(ctx.St.CPUs))
	a.written = map[uint64]uint64{}
	a.funcSeq = map[uint64]uint64{}
	a.byteSeq = map[uint64]uint64{}
	a.branchOK = map[uint64]branchSeen{}
	a.rings = make([][oolDepths]oolRing, len(ctx.St.CPUs))
	a.deps = make([][oolDepths]oolDep, len(ctx.St.CPUs))
	a.ends = map[uint64]map[uint64]uint64{}
	a.padLo, a.pad, a.gaps = paddingOf(ctx.St)
	a.emu = map[ctxKey]emuPending{}
	return nil
}

// maxPadGap bounds a gap between two functions that counts as padding: an
// alignment fill is shorter than the largest function alignment (64); a
// longer stretch without symbols may be code the symbol table does not
// describe (an assembly block without labels), which is not judged.
const maxPadGap = 64

// paddingOf finds the padding of the image's executable text: the bytes
// between the end of a sized symbol and the next symbol of the same
// section, when no symbol covers them. A sizeless label outside every
// sized symbol (assembly code without .size) is code up to the next
// symbol, so no gap is taken from it; neither is one whose bytes as built
// are not an alignment fill (isFill). It returns the bitmap's base, the
// bitmap, and the gaps in address order (nil when the image has none, or
// its text spans more than the bitmap is built for).
func paddingOf(st *replay.State) (uint64, []uint64, []padGap) {
	if st == nil || st.Meta == nil || st.Image == nil {
		return 0, nil, nil
	}
	var code []format.Symbol
	for _, s := range st.Meta.Symbols {
		if s.Section == "" || s.Section == slice.PercpuSection || st.Image.Perm(s.Addr)&replay.PermX == 0 {
			continue
		}
		code = append(code, s)
	}
	slices.SortStableFunc(code, func(x, y format.Symbol) int {
		if x.Addr != y.Addr {
			if x.Addr < y.Addr {
				return -1
			}
			return 1
		}
		return int(min(y.Size, 1)) - int(min(x.Size, 1)) // sized first
	})
	var gaps []padGap
	var end uint64 // end of the sized symbols seen, 0: none or unknown
	var endSec, endName string
	for _, s := range code {
		if end != 0 && s.Addr > end && s.Section == endSec && s.Addr-end < maxPadGap && isFill(st.Image, end, s.Addr) {
			gaps = append(gaps, padGap{lo: end, hi: s.Addr, before: endName, next: s.Name})
		}
		switch {
		case s.Size > 0 && (end == 0 || s.Addr >= end || s.Section != endSec):
			end, endSec, endName = s.Addr+s.Size, s.Section, s.Name
		case s.Size > 0 && s.Addr+s.Size > end:
			end = s.Addr + s.Size
		case s.Size == 0 && (end == 0 || s.Addr >= end):
			end = 0 // a label's code runs to the next symbol
		}
	}
	if len(gaps) == 0 || gaps[len(gaps)-1].hi-gaps[0].lo > maxPadSpan {
		return 0, nil, nil
	}
	lo := gaps[0].lo
	bits := make([]uint64, (gaps[len(gaps)-1].hi-lo+63)/64)
	for _, g := range gaps {
		for a := g.lo; a < g.hi; a++ {
			bits[(a-lo)>>6] |= 1 << ((a - lo) & 63)
		}
	}
	return lo, bits, gaps
}

// isFill reports whether the image's bytes over [lo, hi) are an alignment
// fill: nops (gas fills code alignment with them) or int3s (the kernel's
// function padding), one after another to hi. Anything else there is code
// the symbol table leaves out, and is not taken for padding.
func isFill(image *replay.Memory, lo, hi uint64) bool {
	buf := make([]byte, hi-lo)
	if !image.Read(lo, buf) {
		return false
	}
	for len(buf) > 0 {
		in, err := x86asm.Decode(buf, 64)
		if err != nil || in.Len == 0 || in.Len > len(buf) {
			return false
		}
		if in.Op != x86asm.NOP && !(in.Len == 1 && buf[0] == 0xcc) {
			return false
		}
		buf = buf[in.Len:]
	}
	return true
}

// maxPadSpan bounds the text span the padding bitmap covers (a slice's
// image is a few MiB).
const maxPadSpan = 64 << 20

// inPadding reports whether addr is padding between two functions.
func (a *trapCheck) inPadding(addr uint64) bool {
	if addr < a.padLo {
		return false
	}
	off := addr - a.padLo
	return off>>6 < uint64(len(a.pad)) && a.pad[off>>6]&(1<<(off&63)) != 0
}

// padding reports an instruction executed in the padding after a
// function (from: the context's previous instruction, when it followed
// one with nothing delivered between), unless text_poke wrote its bytes.
func (a *trapCheck) padding(ctx *Context, r *format.Row, from trapInsn) {
	for i := uint64(0); i < uint64(max(r.Len, 1)); i++ {
		if _, ok := a.byteSeq[r.RIP+i]; ok {
			return
		}
	}
	i, _ := slices.BinarySearchFunc(a.gaps, r.RIP, func(g padGap, addr uint64) int {
		if g.hi <= addr {
			return -1
		}
		if g.lo > addr {
			return 1
		}
		return 0
	})
	if i >= len(a.gaps) {
		return
	}
	g := a.gaps[i]
	how := "resumed there"
	ev, first := []uint64{r.Seq}, r.Seq
	if from.ok && from.task == r.Task && from.depth == r.Depth {
		ev, first = []uint64{from.seq, r.Seq}, from.seq
		how = fmt.Sprintf("came there from %s", ctx.Describe(from.rip))
		if r.RIP == from.rip+uint64(from.n) {
			how = fmt.Sprintf("fell through from %s past the end of %s", ctx.Describe(from.rip), g.before)
		} else if a.isRet(ctx, from) {
			how = fmt.Sprintf("the ret at %s returned there", ctx.Describe(from.rip))
		}
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: first, SeqLast: r.Seq, RIP: r.RIP, Evidence: ev,
		Context: contextName(r),
		Message: fmt.Sprintf("cpu%d executed %s (%#x), in the %d bytes of padding between %s and %s that no function's code covers (%s): no instruction stream of the code as built leads there",
			r.CPU, ctx.Describe(r.RIP), r.RIP, g.hi-g.lo, g.before, g.next, how),
	}, fmt.Sprintf("pad|%#x", r.RIP))
}

// isRet reports whether the instruction in's row named was a RET (by the
// code as it is now at its address).
func (a *trapCheck) isRet(ctx *Context, in trapInsn) bool {
	var b [1]byte
	return ctx.St.Mem.Read(in.rip, b[:]) && (b[0] == 0xc3 || b[0] == 0xc2)
}

func (*trapCheck) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindTrap, format.KindMarker, format.KindFault, format.KindIret, format.KindInsn, format.KindWrite, format.KindPerm},
		Columns: []int{format.ColVector, format.ColErrCode, format.ColAddr, format.ColArg0, format.ColArg1, format.ColMsg, format.ColService, format.ColHandler,
			format.ColLen, format.ColSize, format.ColAlias, format.ColRSP, format.ColPermOld, format.ColPermNew}}
}

// boundary is boundary over the state's memory, cached.
func (a *trapCheck) boundary(st *replay.State, addr uint64) (uint64, []byte, bool) {
	sym, found := st.Syms.At(addr)
	if !found || sym.Size == 0 || addr == sym.Addr {
		return 0, nil, true
	}
	if uint64(cap(a.code)) < sym.Size {
		a.code = make([]byte, sym.Size)
	}
	code := a.code[:sym.Size]
	mapped := st.Mem.Read(sym.Addr, code)
	if b := a.bounds[addr]; b != nil && b.mapped == mapped && string(b.code) == string(code) {
		return b.start, b.insn, b.ok
	}
	start, insn, ok := boundary(st.Syms, st.Image, st.Mem, addr)
	a.bounds[addr] = &boundSeen{code: slices.Clone(code), mapped: mapped, start: start, insn: insn, ok: ok}
	return start, insn, ok
}

func (a *trapCheck) Event(ctx *Context, r *format.Row) {
	switch r.Kind {
	case format.KindInsn:
		a.branch(ctx, r)
		a.oolStep(ctx, r)
	case format.KindWrite:
		if r.Alias {
			end := r.Addr + uint64(max(r.Size, 1)) - 1
			a.written[r.Addr>>12] = r.Seq
			a.written[end>>12] = r.Seq
			for _, addr := range [2]uint64{r.Addr, end} {
				if sym, ok := ctx.St.Syms.At(addr); ok {
					a.funcSeq[sym.Addr] = r.Seq
				}
			}
			for i := uint64(0); i < uint64(min(r.Size, 8)); i++ {
				if byte(r.New>>(8*i)) != byte(r.Old>>(8*i)) {
					a.byteSeq[r.Addr+i] = r.Seq
				}
			}
		}
	case format.KindPerm:
		a.perm(r)
	case format.KindTrap:
		a.last[r.CPU].ok = false
		a.lastTrap[r.CPU] = trapSeen{r.Vector, r.RIP, r.Seq, r.ErrCode, r.Addr}
		a.emuTrap(ctx, r)
	case format.KindMarker:
		if r.Args[0] == markerOopsIP {
			a.oopsIP[r.CPU] = r.Args[1]
		}
	case format.KindFault:
		a.faults++
		rip, msg, ev := r.RIP, r.Msg, []uint64{r.Seq}
		first := r.Seq
		var pf *uint64 // the #PF's CR2, when the fault is a page fault
		if r.HasVector && r.Service == 0 && r.Vector == vecPF {
			pf = &r.Addr
		}
		if r.HasVector && r.Service == 0 {
			// The machine's own oops (no handler, or the frame could not be
			// pushed): name what the exception carries.
			msg += faultDetail(r.Vector, r.ErrCode, r.Addr)
		}
		if ip := a.oopsIP[r.CPU]; ip != 0 {
			rip = ip
			t := a.lastTrap[r.CPU]
			if t.rip == ip && t.seq != 0 {
				ev, first = []uint64{t.seq, r.Seq}, t.seq
				if t.vector == 3 {
					rip = ip - 1
					msg = fmt.Sprintf("int3 at %s claimed by no handler (%s)", ctx.Describe(rip), r.Msg)
					if strings.HasPrefix(r.Msg, "panic: int3 at ") {
						// The machine's panic message already says it (emu's
						// panicPlace, traces since it): keep its details.
						msg = strings.TrimPrefix(r.Msg, "panic: ")
					}
				} else {
					msg = fmt.Sprintf("%s%s at %s claimed by no handler (%s)", format.VectorName(t.vector), faultDetail(t.vector, t.errCode, t.addr), ctx.Describe(rip), r.Msg)
					if t.vector == vecPF {
						pf = &t.addr
					}
				}
			}
		}
		f := Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: first, SeqLast: r.Seq, RIP: rip, Evidence: ev,
			Message: msg,
		}
		if pf != nil {
			f.FaultAddr, f.HasFaultAddr = *pf, true
			if al := a.guardOf(*pf); al != nil {
				past := fmt.Sprintf("%d bytes past", *pf-al.hi)
				if *pf == al.hi {
					past = "the first byte past"
				}
				f.Message += fmt.Sprintf("; %#x is %s the end of the module_alloc() allocation %#x..%#x (%d page(s), mapped at seq %d), in the unmapped guard page behind it: an access ran past the allocation",
					*pf, past, al.lo, al.hi, (al.hi-al.lo)>>12, al.seq)
				f.Evidence = append([]uint64{al.seq}, f.Evidence...)
				f.SeqFirst = al.seq
			}
		}
		ctx.Report(f, fmt.Sprintf("fault|%#x", rip))
	case format.KindIret:
		a.last[r.CPU].ok = false
		a.emuIret(ctx, r)
		start, insn, ok := a.boundary(ctx.St, r.Handler)
		if ok {
			return
		}
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.Handler, Evidence: []uint64{r.Seq},
			Message: fmt.Sprintf("iretq from %s returned to %s, inside the %d-byte instruction at %s (%s)",
				ctx.Describe(r.RIP), ctx.Describe(r.Handler), len(insn), ctx.Describe(start), hexBytes(insn)),
		}, fmt.Sprintf("iret|%#x", r.Handler))
	}
}

// perm follows module_alloc() allocations: pages a module_alloc maps
// (fresh, from no permission) start or extend one; pages vfree or
// module_memfree unmaps end the allocations they overlap.
func (a *trapCheck) perm(r *format.Row) {
	if r.Alias || r.Size == 0 {
		return
	}
	lo := r.Addr
	hi := lo + uint64(r.Size)<<12
	if hi <= lo {
		return
	}
	switch {
	case r.Service == format.Service(svcModuleAlloc) && r.PermOld == 0 && r.PermNew != 0:
		i, _ := slices.BinarySearchFunc(a.allocs, lo, func(al trapAlloc, addr uint64) int { return cmp.Compare(al.lo, addr) })
		if i > 0 && a.allocs[i-1].hi == lo && a.allocs[i-1].seq+1 >= r.Seq {
			a.allocs[i-1].hi = hi // the next page of the same allocation
			return
		}
		if len(a.allocs) >= maxTrapAllocs {
			a.allocs = a.allocs[1:]
			i = max(i-1, 0)
		}
		a.allocs = slices.Insert(a.allocs, i, trapAlloc{lo: lo, hi: hi, seq: r.Seq})
	case r.PermNew == 0:
		a.allocs = slices.DeleteFunc(a.allocs, func(al trapAlloc) bool { return al.lo < hi && lo < al.hi })
	}
}

// guardOf is the live allocation whose guard page (the page right after
// its end) holds addr, when no allocation covers addr.
func (a *trapCheck) guardOf(addr uint64) *trapAlloc {
	i, _ := slices.BinarySearchFunc(a.allocs, addr, func(al trapAlloc, x uint64) int {
		if al.hi <= x {
			return -1
		}
		if al.lo > x {
			return 1
		}
		return 0
	})
	if i < len(a.allocs) && a.allocs[i].lo <= addr {
		return nil // inside an allocation
	}
	if i > 0 && addr-a.allocs[i-1].hi < 1<<12 {
		return &a.allocs[i-1]
	}
	return nil
}

// branch judges an instruction that another of its context's instructions
// branched to (it does not follow the previous one, and no delivery or
// IRETQ came between): its address must start an instruction of the code
// as it is now, as an IRETQ's must. Only targets in pages text_poke has
// written are decoded (code as built is the compiler's); a jump into the
// middle of a patched instruction - a task that resumes a jump back into a
// range an optprobe's jump now covers (optprobe-nowait) - runs the
// instruction's tail bytes as code.
func (a *trapCheck) branch(ctx *Context, r *format.Row) {
	l := &a.last[r.CPU]
	from := *l
	*l = trapInsn{rip: r.RIP, seq: r.Seq, task: r.Task, n: r.Len, depth: r.Depth, ok: true}
	if a.pad != nil && a.inPadding(r.RIP) {
		a.padding(ctx, r, from)
	}
	if !from.ok || from.task != r.Task || from.depth != r.Depth || r.RIP == from.rip+uint64(from.n) {
		return
	}
	if _, ok := a.written[r.RIP>>12]; !ok {
		return
	}
	b, ok := a.branchOK[r.RIP]
	if !ok || b.seq != a.funcSeq[b.fn] {
		var fn uint64
		if sym, found := ctx.St.Syms.At(r.RIP); found {
			fn = sym.Addr
		}
		start, insn, good := boundary(ctx.St.Syms, ctx.St.Image, ctx.St.Mem, r.RIP)
		b = branchSeen{fn: fn, seq: a.funcSeq[fn], start: start, insn: insn, ok: good}
		if g, ok := a.pendingGuard(ctx.St, r.RIP); ok {
			b.start, b.ok, b.guard = g, false, true
		}
		a.branchOK[r.RIP] = b
	}
	if b.ok {
		return
	}
	seq := b.seq
	msg := fmt.Sprintf("%s branched to %s, inside the %d-byte instruction at %s (%s) as the code is now (last rewritten at seq %d): the CPU runs the instruction's tail bytes as code",
		ctx.Describe(from.rip), ctx.Describe(r.RIP), len(b.insn), ctx.Describe(b.start), hexBytes(b.insn), seq)
	if b.guard {
		msg = fmt.Sprintf("%s branched to %s, into the bytes text_poke_bp() wrote after its int3 at %s (seq %d and %d): the target is inside the instruction being installed there, whose tail the CPU runs as code",
			ctx.Describe(from.rip), ctx.Describe(r.RIP), ctx.Describe(b.start), a.byteSeq[b.start], a.byteSeq[r.RIP])
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: from.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{from.seq, r.Seq, seq},
		Message: msg,
	}, fmt.Sprintf("branch|%#x", r.RIP))
}

// pendingGuard reports a text_poke_bp() guard that target lies in the
// pending instruction of: an int3 the alias stored at g < target (g within
// an instruction's length, no other guard between, target itself no
// guard, and not the byte of the code as built there) that is still
// there, with target's byte stored through the alias after it. The decode
// reads a guard as the instruction it replaced, so a target right after
// that (shorter) instruction looks like a boundary while the tail written
// behind the guard belongs to the new one. (A kprobe's int3 over code as
// built is followed by that code: not pending.)
func (a *trapCheck) pendingGuard(st *replay.State, target uint64) (uint64, bool) {
	var cur [1]byte
	tSeq, ok := a.byteSeq[target]
	if !ok {
		return 0, false
	}
	if !st.Mem.Read(target, cur[:]) || cur[0] == 0xcc {
		return 0, false
	}
	if st.Image != nil {
		var built [1]byte
		if st.Image.Read(target, built[:]) && built[0] == cur[0] {
			return 0, false // the code as built there: what the guard stands for is followed by it
		}
	}
	for g := target - 1; g+15 > target && g < target; g-- {
		gSeq, ok := a.byteSeq[g]
		if !ok {
			continue
		}
		var b, orig [1]byte
		if !st.Mem.Read(g, b[:]) || b[0] != 0xcc {
			continue
		}
		if st.Image != nil && st.Image.Read(g, orig[:]) && orig[0] == 0xcc {
			continue // an int3 of the code as built, no guard
		}
		return g, gSeq < tSeq
	}
	return 0, false
}

// Finish reports a run whose outcome is an oops, panic or BUG but whose
// events hold no fault (so no event above reported it): the run still did
// not end cleanly.
func (a *trapCheck) Finish(ctx *Context) {
	switch ctx.Outcome {
	case format.OutcomeOops, format.OutcomePanic, format.OutcomeBug:
	default:
		return
	}
	if a.faults > 0 {
		return
	}
	cpu := 0
	fmt.Sscanf(ctx.OutcomeDetail, "cpu%d:", &cpu)
	if cpu < 0 || cpu >= len(a.oopsIP) {
		cpu = 0
	}
	ctx.Report(Finding{CPU: cpu, SeqFirst: ctx.St.Seq, SeqLast: ctx.St.Seq, RIP: a.oopsIP[cpu],
		Message: fmt.Sprintf("the run ended with outcome %s (%s), and the trace holds no fault event for it", ctx.Outcome, ctx.OutcomeDetail)},
		"outcome")
}

// faultDetail is what an exception carries beyond its RIP (SDM Vol. 3
// §6.15): the fault address (CR2) and error code of a #PF, the DR6 of a
// #DB (the trap event's addr column), the error code of the vectors that
// push one (for #GP/#SS/#NP from a selector check: the selector, RPL bits
// cleared). Empty for the rest.
func faultDetail(vector uint8, errCode, addr uint64) string {
	switch vector {
	case 14:
		return fmt.Sprintf(" (address %#x, error code %#x: %s)", addr, errCode, pfBits(errCode))
	case 1:
		if addr != 0 {
			return fmt.Sprintf(" (DR6 %#x)", addr)
		}
	case 8, 10, 11, 12, 13, 17:
		return fmt.Sprintf(" (error code %#x)", errCode)
	case 21:
		// #CP, which the trace format's vector enum does not name (SDM
		// Vol. 3 "Interrupt 21—Control Protection Exception"); error code 3
		// is indirect branch tracking's (quirks.ibt).
		if errCode == 3 {
			return " (#CP, error code 0x3: ENDBRANCH, an indirect branch or a delivery landed on no ENDBR64)"
		}
		return fmt.Sprintf(" (#CP, error code %#x)", errCode)
	}
	return ""
}

// pfBits spells out a #PF error code (SDM Vol. 3 §4.7, Figure 4-12).
func pfBits(ec uint64) string {
	s := "not present"
	if ec&1 != 0 {
		s = "protection"
	}
	switch {
	case ec&(1<<4) != 0:
		s += ", fetch"
	case ec&2 != 0:
		s += ", write"
	default:
		s += ", read"
	}
	if ec&(1<<3) != 0 {
		s += ", reserved bit"
	}
	return s
}

// boundary decodes the function containing addr from its start, over the
// code bytes now, and reports whether addr starts an instruction; if not it
// returns the instruction that covers it. An int3 that is not in the image
// as built is a text_poke_bp guard: it stands for the instruction under it,
// so decoding skips the image instruction's length there (the bytes after a
// guard are a half-written instruction, not code) - unless they differ from
// the code as built: then the guard stands for the instruction being
// installed or removed there, which covers them. Such an instruction, and a
// jump that is not the code as built there, ends where the code as built
// next starts an instruction (what it leaves of the instructions it covers
// is dead: an optprobe's jump over several). Addresses outside any
// sized function symbol, or code that does not decode, get the benefit of
// the doubt.
func boundary(syms *replay.Symbols, image, mem *replay.Memory, addr uint64) (start uint64, insn []byte, ok bool) {
	sym, found := syms.At(addr)
	if !found || sym.Size == 0 || addr == sym.Addr {
		return 0, nil, true
	}
	code := make([]byte, sym.Size+15)
	orig := make([]byte, sym.Size+15)
	if !mem.Read(sym.Addr, code[:sym.Size]) {
		return 0, nil, true
	}
	haveOrig := image != nil && image.Read(sym.Addr, orig[:sym.Size])
	var built []bool // instruction starts of the image as built, by offset
	isBuilt := func(o int) bool {
		if built == nil {
			built = make([]bool, sym.Size+1)
			slice.Walk(int(sym.Size), func(o int) (int, error) {
				in, err := x86asm.Decode(orig[o:], 64)
				return in.Len, err
			}, func(o, _ int) bool {
				built[o] = true
				return true
			})
			built[sym.Size] = true
		}
		return o >= 0 && o <= int(sym.Size) && built[o]
	}
	// ownSite reports whether the changed code at i, an instruction start
	// as built behind a guard at off, is a patch site of its own rather
	// than the tail of what the guard stands for: an int3 (a kprobe's, or
	// another text_poke_bp()'s guard), or an instruction that reaches past
	// the bytes text_poke_bp() at off can write, changed there too (another
	// probe's jump over its own instructions).
	ownSite := func(off, i int) bool {
		if !isBuilt(i) {
			return false
		}
		if code[i] == 0xcc {
			return true
		}
		in, err := x86asm.Decode(code[i:], 64)
		if err != nil {
			return false
		}
		for j := off + pokeMax; j < i+in.Len && j < int(sym.Size); j++ {
			if code[j] != orig[j] {
				return true
			}
		}
		return false
	}
	decoded := 0 // the length decoded at the last offset (what length returned may add dead bytes)
	length := func(off int) (int, error) {
		decoded = 0
		b := code[off:]
		guard := code[off] == 0xcc && haveOrig && orig[off] != 0xcc
		if guard {
			b = orig[off:] // a guard: the instruction under it
		}
		in, err := x86asm.Decode(b, 64)
		decoded = in.Len
		if err != nil || !haveOrig {
			return in.Len, err
		}
		// end: where the instruction at off ends in the code as it is.
		end := off + in.Len
		switch {
		case guard:
			// The guard stands for an instruction whose tail is what
			// follows it: the one as built when that is as built, else
			// the one being installed (text_poke_bp() writes its tail
			// byte by byte) or removed (an earlier patch's), which
			// covers the bytes that differ from the code as built - as
			// far as text_poke_bp() writes (pokeMax), and not into a
			// site of its own behind it (ownSite).
			t := 0
			for i := off + 1; i < off+pokeMax && i < int(sym.Size); i++ {
				if code[i] == orig[i] {
					continue
				}
				if ownSite(off, i) {
					break
				}
				t = i + 1
			}
			if t == 0 {
				return in.Len, nil
			}
			end = max(end, t)
		case !guard && in.Op == x86asm.JMP && string(code[off:off+in.Len]) != string(orig[off:off+in.Len]):
			// A jump written over the code as built (an optprobe's jump
			// over several instructions) leaves the rest of the last one
			// it covers behind it: bytes nothing falls through to.
		default:
			return in.Len, nil
		}
		// The code goes on where the code as built has its next
		// instruction; the bytes up to there count as the new one's
		// (what it leaves of the instructions it covers is dead).
		for end < int(sym.Size) && !isBuilt(end) {
			end++
		}
		return end - off, nil
	}
	ok = true
	err := slice.Walk(int(sym.Size), length, func(off, n int) bool {
		a := sym.Addr + uint64(off)
		if a+uint64(n) <= addr {
			return true
		}
		if a != addr {
			start, insn, ok = a, code[off:off+max(decoded, min(n, int(addr-a)+1))], false
		}
		return false
	})
	if err != nil {
		return 0, nil, true // does not decode: the benefit of the doubt
	}
	return start, insn, ok
}

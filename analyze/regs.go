package analyze

import (
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// regsCheck checks the registers the compiler assumes a site preserves
// (the scenario's contract.asm_sites, and contract.must_call entries with
// preserves): a context (a CPU's task at one trap depth, as missed-call
// defines it) that executes a site's first byte must, when it next
// executes the first byte after the site (site + length) in the same frame
// (with the stack pointer it had at the site), hold in each of those
// registers the value it held at the site's first byte.
//
// The class: code the compiler saw as no call (an inline asm statement
// whose clobber list leaves registers out, a static_call or alternative
// site) that runs a call after all, because an int3 handler emulates one
// into a function that uses the caller-saved registers as any C function
// may (Linux's int3_emulate_call() selftest under KASAN, 2019: commit
// ecc606103837, "x86/alternatives: Fix int3_emulate_call() selftest stack
// corruption", fixing 7457c0da024b).
//
// Registers are the fold of the trace's register deltas (format version
// 4; replay.RegFile): the values a pass starts with are the CPU's
// registers before the insn row at the site, those it ends with the CPU's
// registers before the insn row at site + length. Interrupts and NMIs
// nested in the pass run one depth deeper and may change anything; what
// counts is what the context sees when the IRETQ resumes it. A
// preempted task's pass resumes with the task (passes are keyed by CPU,
// task and depth). A finding names each clobbered register with its value
// before and after and the last event, in the pass's own context, whose
// delta changed it to a value the context had not had (an instruction of
// the emulated callee, or the IRETQ that resumed it with a value a
// handler wrote into its frame).
//
// A site declared returns (contract.asm_sites returns = true) is a return
// as its author wrote it, a RET or the jmp to a return thunk that stands
// for one: its pass ends at the RET, in the same context, that pops the
// word at the site's stack pointer (the return address the site returns
// through), and the registers before that RET must be those at the site.
// A return thunk is a RET that also does other work (srso_safe_ret()'s
// stack adjustment, call depth tracking's counter): code that relies on a
// RET keeping what a C return need not keep (KVM's fastops return flags)
// breaks when the thunk changes it (commit ba5ca5e5e6a1, "x86/retpoline:
// Don't clobber RFLAGS during srso_safe_ret()").
//
// A pass whose frame is left without reaching the site's end (a RET that
// pops at or above the site's stack pointer, an IRETQ that resumes the
// context above it or ends the context) is dropped unjudged: whether the
// site ran to its end is missed-call's question. A pass still pending at
// the end of the stream is not judged either.
//
// A trace without register deltas (recorded with --no-regs, or before
// format version 4) cannot be checked: when the contract declares any
// preserved register the result is incomplete, never clean. So is a pass
// whose registers are not all known, or one dropped for the bound on
// pending passes.
type regsCheck struct {
	sites  []regSite
	noRegs bool
	watch  addrWatch
	regs   []replay.RegFile // by CPU: the fold of the rows seen so far
	passes map[ctxKey][]*regPass
	npass  int
	isRet  []bool // by op index
	nret   int    // pending passes through returns sites
	// cache is passes[cacheKey] while cached (consecutive rows are mostly
	// one context's); any change to passes clears cached.
	cached   bool
	cacheKey ctxKey
	cache    []*regPass
	// What could not be checked: passes dropped for maxRegPasses, passes
	// with registers of unknown value.
	dropped, unknown uint64
}

type regSite struct {
	start, end uint64
	name       string // "contract.asm_sites 1 (site = \"...\")"
	regs       []int  // indexes into format.RegNames
	mask       uint32
	returns    bool   // a return: the pass ends at the RET through its word
	passed     uint64 // passes judged
}

type regPass struct {
	site   int
	seq    uint64
	rsp    uint64
	before [format.NumRegs]uint64
	known  uint32
	// view is what the context last saw of each register; changed says
	// which registers a row of the context changed, and at which row.
	view    [format.NumRegs]uint64
	change  [format.NumRegs]regChange
	changed uint32
	row     format.Row // the insn row at the site, told in the story
}

// regChange is the row that last changed a register in a pass's context
// (what the story tells of it).
type regChange struct {
	seq, rip, rsp, handler uint64
	op                     uint16
	kind                   format.Kind
}

func (c *regChange) row(k ctxKey) *format.Row {
	return &format.Row{Seq: c.seq, Kind: c.kind, CPU: k.cpu, Task: k.task, Depth: k.depth, RIP: c.rip, RSP: c.rsp, Op: c.op, Handler: c.handler}
}

// maxRegPasses bounds the passes pending at once over all contexts (a
// hostile stream of site hits that never end); beyond it new passes are
// not checked, and the result says so.
const maxRegPasses = 4096

func (*regsCheck) ID() string { return "regs" }
func (*regsCheck) Doc() string {
	return "A register the scenario's contract says a site preserves (contract.asm_sites, contract.must_call preserves) held another value when the context that entered the site reached its end (an emulated call into a function that clobbers caller-saved registers the compiler kept live), or, for a site declared a return, at the RET through its return address (a return thunk that changes what a RET keeps)."
}

func (a *regsCheck) Start(ctx *Context) error {
	*a = regsCheck{passes: map[ctxKey][]*regPass{}, regs: make([]replay.RegFile, len(ctx.St.CPUs))}
	a.isRet = make([]bool, len(ctx.St.Meta.OpNames))
	for i, n := range ctx.St.Meta.OpNames {
		a.isRet[i] = n == "RET"
	}
	if ctx.St.Spec == nil {
		return nil
	}
	add := func(name, where string, length uint64, regs []int, returns bool) error {
		start, err := ctx.St.Syms.Resolve(where)
		if err != nil {
			return fmt.Errorf("%s site: %w", name, err)
		}
		s := regSite{start: start, end: start + length, name: fmt.Sprintf("%s (site = %q)", name, where), regs: regs, returns: returns}
		for _, i := range regs {
			s.mask |= 1 << i
		}
		a.sites = append(a.sites, s)
		a.watch.add(s.start)
		if !returns {
			a.watch.add(s.end)
		}
		return nil
	}
	c := ctx.St.Spec.Contract
	for i, mc := range c.MustCall {
		if mc.Preserves.Empty() {
			continue
		}
		if err := add(fmt.Sprintf("contract.must_call %d", i+1), mc.Site, siteLength(mc.Length), mc.Preserves.Indexes(), false); err != nil {
			return err
		}
	}
	for i, as := range c.AsmSites {
		if err := add(fmt.Sprintf("contract.asm_sites %d", i+1), as.Site, as.Length, as.Preserves.Indexes(), as.Returns); err != nil {
			return err
		}
	}
	if len(a.sites) > 0 && !ctx.St.Meta.Regs {
		a.noRegs = true
		names := make([]string, len(a.sites))
		for i, s := range a.sites {
			names[i] = s.name
		}
		why := fmt.Sprintf("%s is %q: recorded with --no-regs", format.KeyRecorded, recordedText(ctx.St.Meta))
		if v := ctx.St.Meta.Version; v > 0 && v < 4 {
			why = fmt.Sprintf("format version %d has none", v)
		}
		ctx.CannotCheck(fmt.Sprintf("the trace records no register deltas (%s), so the registers %s preserve were not checked", why, strings.Join(names, ", ")))
	}
	return nil
}

// recordedText is what a trace's metadata says it records.
func recordedText(md *format.Meta) string {
	var s []string
	if md.Loads {
		s = append(s, "loads")
	}
	if md.Regs {
		s = append(s, "regs")
	}
	return strings.Join(s, ",")
}

func (a *regsCheck) Needs() Needs {
	if len(a.sites) == 0 || a.noRegs {
		return Needs{Kinds: []format.Kind{}}
	}
	cols := []int{format.ColOp, format.ColRSP}
	for i := range format.NumRegs {
		cols = append(cols, format.ColRegRAX+i)
	}
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindTrap, format.KindIret, format.KindSerialize, format.KindService},
		Columns: cols}
}

func (a *regsCheck) Event(ctx *Context, r *format.Row) {
	if len(a.sites) == 0 || a.noRegs || int(r.CPU) >= len(a.regs) {
		return
	}
	k := ctxKey{cpu: r.CPU, task: r.Task, depth: r.Depth}
	rf := &a.regs[r.CPU] // the CPU's registers before r (folded below, as replay.RegFile.Apply does)
	switch r.Kind {
	case format.KindInsn:
		if a.watch.has(r.RIP) {
			a.sitesAt(ctx, k, r, rf)
		}
		if a.npass > 0 && int(r.Op) < len(a.isRet) && a.isRet[r.Op] {
			if a.nret > 0 {
				a.returned(ctx, k, r, rf)
			}
			// The RET pops the word at r.RSP: frames at or below it are gone.
			a.drop(k, r.RSP+1)
		}
	case format.KindIret:
		if a.npass > 0 {
			// Every deeper context of this task on this CPU has ended; the
			// one resumed must still be inside its passes' frames.
			for key := range a.passes {
				if key.cpu == r.CPU && key.task == r.Task && key.depth > r.Depth {
					a.drop(key, 0)
				}
			}
			a.drop(k, r.RSP)
		}
	}
	// The pass's context sees the row's register changes, except a trap
	// row's: it carries the interrupted context's depth, its deltas are
	// the handler's stack pointer and flags.
	if a.npass > 0 && r.RegMask != 0 && r.Kind != format.KindTrap {
		if !a.cached || a.cacheKey != k {
			a.cached, a.cacheKey, a.cache = true, k, a.passes[k]
		}
		for _, p := range a.cache {
			a.see(p, r)
		}
	}
	if m := r.RegMask & (1<<format.NumRegs - 1); m != 0 {
		rf.Known |= m
		for ; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			rf.Vals[i] = r.Regs[i]
		}
	}
}

// sitesAt handles an insn row at a watched address: passes in context k
// that reach their site's end here are judged, and passes start at sites
// that begin here. rf is the CPU's registers before the row.
func (a *regsCheck) sitesAt(ctx *Context, k ctxKey, r *format.Row, rf *replay.RegFile) {
	for i := range a.sites {
		s := &a.sites[i]
		if r.RIP != s.end || s.returns {
			continue
		}
		if p := a.innermost(k, i, r.RSP); p != nil {
			a.remove(k, p)
			a.judge(ctx, k, p, r, rf)
		}
	}
	for i := range a.sites {
		s := &a.sites[i]
		if r.RIP != s.start {
			continue
		}
		if a.innermost(k, i, r.RSP) != nil {
			continue // the site again in the same frame: the pass goes on
		}
		if a.npass >= maxRegPasses {
			a.dropped++
			continue
		}
		p := &regPass{site: i, seq: r.Seq, rsp: r.RSP, known: rf.Known, row: *r}
		p.before = rf.Vals
		p.view = rf.Vals
		a.passes[k] = append(a.passes[k], p)
		a.cached = false
		a.npass++
		if s.returns {
			a.nret++
		}
	}
}

// returned handles a RET row r of context k: the passes through returns
// sites whose return address it pops (the word at the site's stack
// pointer) end here, and are judged with the registers before it (rf).
func (a *regsCheck) returned(ctx *Context, k ctxKey, r *format.Row, rf *replay.RegFile) {
	for {
		var end *regPass
		for _, p := range a.passes[k] {
			if a.sites[p.site].returns && p.rsp == r.RSP {
				end = p
			}
		}
		if end == nil {
			return
		}
		a.remove(k, end)
		a.judge(ctx, k, end, r, rf)
	}
}

// see records r's changes to p's registers, as p's context sees them.
func (a *regsCheck) see(p *regPass, r *format.Row) {
	for m := r.RegMask & a.sites[p.site].mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros32(m)
		if v := r.Regs[i]; v != p.view[i] || p.known&(1<<i) == 0 {
			p.view[i] = v
			p.change[i] = regChange{seq: r.Seq, rip: r.RIP, rsp: r.RSP, handler: r.Handler, op: r.Op, kind: r.Kind}
			p.changed |= 1 << i
		}
	}
}

// judge compares pass p's registers at its site's end (rf, before row r)
// with those at its start.
func (a *regsCheck) judge(ctx *Context, k ctxKey, p *regPass, r *format.Row, rf *replay.RegFile) {
	s := &a.sites[p.site]
	if p.known&s.mask != s.mask || rf.Known&s.mask != s.mask {
		a.unknown++
		return
	}
	s.passed++
	var bad []string
	var names []string
	ev := []uint64{p.seq}
	keep := []*format.Row{&p.row}
	for _, i := range s.regs {
		before, after := p.before[i], rf.Vals[i]
		if before == after {
			continue
		}
		names = append(names, format.RegNames[i])
		what := fmt.Sprintf("%s %#x -> %#x", format.RegNames[i], before, after)
		if p.changed&(1<<i) != 0 {
			c := &p.change[i]
			by := ctx.Describe(c.rip)
			if line := ctx.St.Syms.Line(c.rip); line != "" {
				by += " (" + line + ")"
			}
			kind := "by"
			if c.kind == format.KindIret {
				kind = "restored from the interrupt frame by the IRETQ at"
			}
			what += fmt.Sprintf(" (changed at seq %d %s %s)", c.seq, kind, by)
			if !slices.Contains(ev, c.seq) {
				ev = append(ev, c.seq)
				keep = append(keep, c.row(k))
			}
		}
		bad = append(bad, what)
	}
	if len(bad) == 0 {
		return
	}
	ev = append(ev, r.Seq)
	keep = append(keep, r)
	reached := "reached " + ctx.Describe(s.end)
	if s.returns {
		reached = fmt.Sprintf("returned through the word at %#x by the RET at %s", p.rsp, ctx.Describe(r.RIP))
		if line := ctx.St.Syms.Line(r.RIP); line != "" {
			reached += " (" + line + ")"
		}
	}
	sort.Slice(ev, func(i, j int) bool { return ev[i] < ev[j] })
	ev = uniq(ev)
	key := fmt.Sprintf("%d|%s", p.site, strings.Join(names, ","))
	var story []string
	if ctx.byKey[ctx.ids[ctx.cur]+"|"+key] == nil { // told once: repeats fold into the first
		story = ctx.story.tellWith(ctx.St, int(k.cpu), ev, keep...)
	}
	ctx.Report(Finding{
		CPU: int(k.cpu), Task: k.task, Context: keyName(k), SeqFirst: p.seq, SeqLast: r.Seq, RIP: s.start, Evidence: ev, Story: story,
		Message: fmt.Sprintf("pass through %s, %s (seq %d..%d), %s with %s: registers the compiler assumes the site preserves were clobbered",
			ctx.Describe(s.start), s.name, p.seq, r.Seq, reached, strings.Join(bad, ", ")),
	}, key)
}

func uniq(s []uint64) []uint64 {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// innermost is context k's innermost pending pass through site i with
// stack pointer rsp.
func (a *regsCheck) innermost(k ctxKey, i int, rsp uint64) *regPass {
	ps := a.passes[k]
	for j := len(ps) - 1; j >= 0; j-- {
		if ps[j].site == i && ps[j].rsp == rsp {
			return ps[j]
		}
	}
	return nil
}

func (a *regsCheck) remove(k ctxKey, p *regPass) {
	a.cached = false
	ps := a.passes[k]
	for j := range ps {
		if ps[j] == p {
			a.passes[k] = append(ps[:j], ps[j+1:]...)
			a.npass--
			if a.sites[p.site].returns {
				a.nret--
			}
			break
		}
	}
	if len(a.passes[k]) == 0 {
		delete(a.passes, k)
	}
}

// drop forgets context k's passes whose site stack pointer is below rsp
// (rsp 0: all of them): their frame is gone.
func (a *regsCheck) drop(k ctxKey, rsp uint64) {
	ps := a.passes[k]
	if len(ps) == 0 {
		return
	}
	a.cached = false
	keep := ps[:0]
	for _, p := range ps {
		if rsp != 0 && p.rsp >= rsp {
			keep = append(keep, p)
		} else if a.sites[p.site].returns {
			a.nret--
		}
	}
	a.npass -= len(ps) - len(keep)
	if len(keep) == 0 {
		delete(a.passes, k)
	} else {
		a.passes[k] = keep
	}
}

func (a *regsCheck) Finish(ctx *Context) {
	if a.noRegs || len(a.sites) == 0 {
		return
	}
	if a.dropped > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d passes through preserving sites were not checked: more than %d were pending at once", a.dropped, maxRegPasses))
	}
	if a.unknown > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d passes through preserving sites were not checked: the trace does not give every register's value at their start or end", a.unknown))
	}
}

// addrWatch is a bit per hash of the addresses an insn row can matter at,
// so that most rows are passed by one test.
type addrWatch [4]uint64

func (w *addrWatch) add(addr uint64) { h := watchHash(addr); w[h>>6&3] |= 1 << (h & 63) }

func (w *addrWatch) has(addr uint64) bool {
	h := watchHash(addr)
	return w[h>>6&3]&(1<<(h&63)) != 0
}

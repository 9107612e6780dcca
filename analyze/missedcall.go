package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
)

// missedCall checks the scenario's must_call sites (mail 000 of docs/background.md: livepatch needs
// ftrace to "always call its code"). A pass through a site starts when a
// context (a CPU's task at one trap depth) executes the instruction at the
// site (the call, the nop, or the int3 that guards it), with the stack
// pointer it had there, and ends one of two ways:
//   - the same context executes site+length (the site's length, 5 for a
//     call rel32 unless the contract says otherwise), the function body:
//     the pass is complete;
//   - the context leaves the site's frame without getting there: a RET pops
//     the word at or above the site's stack pointer (the function returned),
//     an IRETQ resumes the context with its stack pointer above it (an int3
//     handler that emulated a RET and skipped the whole function), an IRETQ
//     ends the context itself (a handler's pass cut off by its own return),
//     the context's task died (its CPU reported pt_cpu_done while the task
//     was switched out), or the run ended done with the CPU idle. The pass
//     was abandoned.
//
// Either way some allowed handler's entry must have run in between, in that
// same context: a handler entered by an interrupt or NMI nested in the pass
// (at a deeper trap depth) is that context's own call, not this pass's,
// except that a rule declared nested also counts a handler entered in the
// #BP the pass's own int3 at the site raised (a kprobe pre-handler: the
// trap row's saved RIP is site+1 and its context the pass's). (A
// livepatch handler that redirects regs->ip to a new function abandons the
// old function's pass with the handler entered, which is what it is for;
// it does so at the function's entry. A site inside a function that is a
// call as built is one the function goes on from: a pass there that leaves
// the frame by a RET or IRETQ skipped the rest of the function, a finding
// with the handler entered too.)
//
// A pass interrupted by an interrupt, or whose task is preempted, is only
// paused: the interrupt's IRETQ resumes the context at or below the site's
// stack pointer, and the task resumes later on its CPU (nothing migrates).
// A pass still pending when the stream ends in a context that was still
// live (the run stopped on its budget or an error, or the trace is cut
// short) is not judged: whether it would have reached the body is unknown,
// and the run's outcome, not this analyzer, says the run did not finish.
//
// Passes are kept per context as a stack (a handler may pass through the
// site again, deeper), keyed by CPU, task and trap depth, so a task
// preempted mid-pass is matched with itself. Frame exits are only read from
// RET and IRETQ rows and from site hits: right after pt_switch the CPU runs
// the incoming task's switch_to on the outgoing task's stack, so stack
// pointers of other instructions do not belong to the task the row names.
type missedCall struct {
	rules  []callRule
	passes map[ctxKey][]*pass
	isRet  []bool // by op index
	done   []bool // by CPU: reported pt_cpu_done
	// siteTraps: per handler context, the pass whose own #BP at the site
	// that context is (for rules with nested = true).
	siteTraps map[ctxKey]*pass
	nested    bool // some rule is nested
	// watch: a bit per hash of the addresses an insn row can matter at
	// (sites, bodies, handlers), so that most rows are passed by one test.
	watch [4]uint64
}

type callRule struct {
	site, body  uint64
	name        string
	handlers    map[uint64]string
	names       []string
	from, until uint64
	open        bool
	nested      bool // handlers in the #BP taken at the site count
	forbid      bool // the handlers must not be entered (must_call forbid)
	// goesOn: the site is a call (e8 rel32, as built) inside a function,
	// which the function's own code goes on from.
	goesOn       bool
	checked, bad uint64
}

type ctxKey struct {
	cpu   uint16
	task  uint32
	depth uint8
}

type pass struct {
	rule    int
	seq     uint64
	rsp     uint64 // RSP at the site
	entered bool
	via     string
}

func (*missedCall) ID() string { return "missed-call" }
func (*missedCall) Doc() string {
	return "A must-call site (scenario contract) was passed through, or left without reaching its end (a handler that skipped the function, a context that ended mid-pass), with none of its allowed handlers entered in between; or a site inside a function was left by a return before its end (the rest of the function skipped: a call that ran as a jmp); or a pass through a forbid rule's site entered one of the handlers it forbids there."
}

func (a *missedCall) Start(ctx *Context) error {
	a.passes = map[ctxKey][]*pass{}
	a.rules = nil
	a.done = make([]bool, len(ctx.St.CPUs))
	a.siteTraps, a.nested = map[ctxKey]*pass{}, false
	a.watch = [4]uint64{}
	a.isRet = make([]bool, len(ctx.St.Meta.OpNames))
	for i, n := range ctx.St.Meta.OpNames {
		a.isRet[i] = n == "RET"
	}
	if ctx.St.Spec == nil {
		return nil
	}
	for _, mc := range ctx.St.Spec.Contract.MustCall {
		site, err := ctx.St.Syms.Resolve(mc.Site)
		if err != nil {
			return fmt.Errorf("contract must_call site: %w", err)
		}
		rule := callRule{site: site, body: site + siteLength(mc.Length), name: mc.Site, handlers: map[uint64]string{}, names: mc.Handlers,
			from: mc.FromMarker, until: mc.UntilMarker, open: mc.FromMarker == 0, nested: mc.Nested, forbid: mc.Forbid}
		a.nested = a.nested || mc.Nested
		for _, h := range mc.Handlers {
			addr, err := ctx.St.Syms.Resolve(h)
			if err != nil {
				return fmt.Errorf("contract must_call handler: %w", err)
			}
			rule.handlers[addr] = h
			a.watchAddr(addr)
		}
		var op [1]byte
		rule.goesOn = !ctx.St.Syms.IsEntry(rule.site) && ctx.St.Image.Read(rule.site, op[:]) && op[0] == 0xe8
		a.watchAddr(rule.site)
		a.watchAddr(rule.body)
		a.rules = append(a.rules, rule)
	}
	return nil
}

// watchHash picks addr's bit in watch.
func watchHash(addr uint64) uint64 { return (addr * 0x9E3779B97F4A7C15) >> 56 }

func (a *missedCall) watchAddr(addr uint64) { h := watchHash(addr); a.watch[h>>6&3] |= 1 << (h & 63) }

func (a *missedCall) watched(addr uint64) bool {
	h := watchHash(addr)
	return a.watch[h>>6&3]&(1<<(h&63)) != 0
}

func (a *missedCall) Needs() Needs {
	if len(a.rules) == 0 {
		return Needs{Kinds: []format.Kind{}}
	}
	if a.nested {
		return Needs{Kinds: []format.Kind{format.KindInsn, format.KindMarker, format.KindIret, format.KindService, format.KindTrap},
			Columns: []int{format.ColOp, format.ColRSP, format.ColArg0, format.ColHandler, format.ColService, format.ColVector}}
	}
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindMarker, format.KindIret, format.KindService},
		Columns: []int{format.ColOp, format.ColRSP, format.ColArg0, format.ColHandler, format.ColService}}
}

func (a *missedCall) Event(ctx *Context, r *format.Row) {
	if len(a.rules) == 0 {
		return
	}
	k := ctxKey{cpu: r.CPU, task: r.Task, depth: r.Depth}
	switch r.Kind {
	case format.KindMarker:
		for i := range a.rules {
			ru := &a.rules[i]
			if ru.from != 0 && r.Args[0] == ru.from {
				ru.open = true
			}
			if ru.until != 0 && r.Args[0] == ru.until {
				ru.open = false
				a.excuse(i)
			}
		}
	case format.KindTrap:
		// The #BP of an int3 at a nested rule's site: handlers entered in
		// it work for the pass that trapped (the row's RIP is after the
		// int3, SDM Vol. 3 §6.5: a trap's saved RIP follows it).
		if !a.nested || r.Vector != vecBP {
			return
		}
		for i := range a.rules {
			if ru := &a.rules[i]; ru.nested && r.RIP == ru.site+1 {
				if p := a.innermost(k, i); p != nil {
					a.siteTraps[ctxKey{r.CPU, r.Task, r.Depth + 1}] = p
				}
			}
		}
	case format.KindIret:
		// The row carries the depth returned to: every deeper context of
		// this task on this CPU has ended, and the one resumed must still
		// be inside (at or below) each of its passes' frames.
		if len(a.siteTraps) > 0 {
			for key := range a.siteTraps {
				if key.cpu == r.CPU && key.task == r.Task && key.depth > r.Depth {
					delete(a.siteTraps, key)
				}
			}
		}
		for key, ps := range a.passes {
			if key.cpu == r.CPU && key.task == r.Task && key.depth > r.Depth && len(ps) > 0 {
				a.abandon(ctx, key, 0, r, false, func() string { return fmt.Sprintf("the IRETQ at %s ended that context", ctx.Describe(r.RIP)) })
			}
		}
		a.abandon(ctx, k, r.RSP, r, true, func() string {
			return fmt.Sprintf("the IRETQ at %s resumed it at %s with its stack above the site's frame", ctx.Describe(r.RIP), ctx.Describe(r.Handler))
		})
	case format.KindService:
		if r.Service == svcCPUDone && int(r.CPU) < len(a.done) {
			a.done[r.CPU] = true
			// Every task of this CPU has exited: passes of any other than
			// the reporting one can never end.
			for key, ps := range a.passes {
				if key.cpu == r.CPU && key.task != r.Task && len(ps) > 0 {
					a.abandon(ctx, key, 0, r, false, func() string { return fmt.Sprintf("task %d exited (cpu%d reported pt_cpu_done)", key.task, r.CPU) })
				}
			}
		}
	case format.KindInsn:
		if int(r.Op) < len(a.isRet) && a.isRet[r.Op] {
			// The RET pops the word at r.RSP: frames at or below it are gone.
			a.abandon(ctx, k, r.RSP+1, r, true, func() string { return fmt.Sprintf("the RET at %s returned from the site's frame", ctx.Describe(r.RIP)) })
		}
		if !a.watched(r.RIP) {
			return // no site, body or handler here
		}
		for i := range a.rules {
			ru := &a.rules[i]
			if name, ok := ru.handlers[r.RIP]; ok {
				if p := a.innermost(k, i); p != nil && !p.entered {
					p.entered, p.via = true, name
					a.forbidden(ctx, r, k, p)
				}
				if p := a.siteTraps[k]; ru.nested && p != nil && p.rule == i && !p.entered {
					p.entered, p.via = true, name+" (in the #BP at the site)"
					a.forbidden(ctx, r, ctxKey{k.cpu, k.task, k.depth - 1}, p)
				}
			}
			switch r.RIP {
			case ru.site:
				a.abandon(ctx, k, r.RSP, r, false, func() string {
					return fmt.Sprintf("the context came back to %s from a shallower frame", ctx.Describe(ru.site))
				})
				if p := a.innermost(k, i); p != nil && p.rsp == r.RSP {
					continue // the site again in the same frame: the pass goes on
				}
				if ru.open {
					a.passes[k] = append(a.passes[k], &pass{rule: i, seq: r.Seq, rsp: r.RSP})
				}
			case ru.body:
				a.abandon(ctx, k, r.RSP, r, false, func() string {
					return fmt.Sprintf("the context reached %s in a shallower frame", ctx.Describe(ru.body))
				})
				p := a.innermost(k, i)
				if p == nil {
					continue
				}
				a.remove(k, p)
				ru.checked++
				if p.entered || ru.forbid {
					continue // a forbidden entry was reported as it happened
				}
				ru.bad++
				ctx.Report(Finding{
					CPU: int(r.CPU), Task: r.Task, SeqFirst: p.seq, SeqLast: r.Seq, RIP: ru.site, Evidence: []uint64{p.seq, r.Seq},
					Context: contextName(r),
					Message: fmt.Sprintf("pass through %s (seq %d..%d) reached %s without entering %s: missed call",
						ctx.Describe(ru.site), p.seq, r.Seq, ctx.Describe(ru.body), strings.Join(ru.names, " or ")),
				}, fmt.Sprintf("%d", i))
			}
		}
	}
}

// excuse drops rule i's pending passes that have entered none of its
// handlers when its window closes: the rule says the call is in place only
// until then, and a pass still short of it (preempted between the site and
// the callback, say) would make its call after the window, where the rule
// promises nothing (an ftrace update that skips the callback while it
// rewrites the call). A pass that entered a handler stays, for the check
// that it comes back to the site's end.
func (a *missedCall) excuse(i int) {
	for k, ps := range a.passes {
		keep := ps[:0]
		for _, p := range ps {
			if p.rule != i || p.entered {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			delete(a.passes, k)
		} else {
			a.passes[k] = keep
		}
	}
}

// forbidden reports pass p of a forbid rule, which has just entered one of
// the handlers the rule forbids at its site (row r).
func (a *missedCall) forbidden(ctx *Context, r *format.Row, k ctxKey, p *pass) {
	ru := &a.rules[p.rule]
	if !ru.forbid {
		return
	}
	ru.bad++
	ctx.Report(Finding{
		CPU: int(k.cpu), Task: k.task, SeqFirst: p.seq, SeqLast: r.Seq, RIP: ru.site, Evidence: []uint64{p.seq, r.Seq},
		Context: keyName(k),
		Message: fmt.Sprintf("pass through %s (seq %d..%d) entered %s, which the contract forbids at that site: a callback called for a function it must not be (a trampoline or call that still leads there from this site)",
			ctx.Describe(ru.site), p.seq, r.Seq, p.via),
	}, fmt.Sprintf("forbid|%d", p.rule))
}

// innermost is context k's innermost pending pass through rule i's site.
func (a *missedCall) innermost(k ctxKey, i int) *pass {
	ps := a.passes[k]
	for j := len(ps) - 1; j >= 0; j-- {
		if ps[j].rule == i {
			return ps[j]
		}
	}
	return nil
}

func (a *missedCall) remove(k ctxKey, p *pass) {
	ps := a.passes[k]
	for j := range ps {
		if ps[j] == p {
			a.passes[k] = append(ps[:j], ps[j+1:]...)
			break
		}
	}
	if len(a.passes[k]) == 0 {
		delete(a.passes, k)
	}
}

// abandon judges and drops context k's passes whose site stack pointer is
// below rsp (rsp 0: all of them): they ended, at row r, without reaching
// the site's end, for the reason how.
// abandon ends the passes of context k whose frame lies below rsp (all of
// them for rsp 0); exit says the context left their frames by a RET or an
// IRETQ that resumed it above them (not by ending).
func (a *missedCall) abandon(ctx *Context, k ctxKey, rsp uint64, r *format.Row, exit bool, how func() string) {
	if len(a.passes) == 0 {
		return
	}
	ps := a.passes[k]
	if len(ps) == 0 {
		return
	}
	keep := ps[:0]
	var gone []*pass
	for _, p := range ps {
		if rsp == 0 || p.rsp < rsp {
			if exit && r.Kind == format.KindInsn && r.RIP == a.rules[p.rule].body {
				// A RET at the site's end (call f; ret) reaches the body
				// first: the pass is complete, judged below.
				keep = append(keep, p)
				continue
			}
			gone = append(gone, p)
		} else {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		delete(a.passes, k)
	} else {
		a.passes[k] = keep
	}
	for _, p := range gone {
		a.judgeAbandoned(ctx, k, p, r.Seq, exit, how())
	}
}

func (a *missedCall) judgeAbandoned(ctx *Context, k ctxKey, p *pass, last uint64, exit bool, how string) {
	ru := &a.rules[p.rule]
	ru.checked++
	if ru.forbid {
		return // reported when it entered a handler, if it did
	}
	if p.entered {
		// A handler that takes the context elsewhere for good (livepatch
		// redirecting a function) does so at the function's entry; a call
		// inside a function (as built: not a jump label's nop or jmp, not a
		// tail call's jmp) is one the function's own code goes on from,
		// and leaving its frame before site+length skipped that code: a
		// call written as a jmp returns from the callee to the caller's
		// caller.
		if exit && ru.goesOn {
			ru.bad++
			ctx.Report(Finding{
				CPU: int(k.cpu), Task: k.task, SeqFirst: p.seq, SeqLast: last, RIP: ru.site, Evidence: []uint64{p.seq, last},
				Context: keyName(k),
				Message: fmt.Sprintf("pass through %s (seq %d..%d) entered %s but never came back to %s: %s, skipping the rest of the function after a site inside it: a call that did not return (a call written as a jmp?)",
					ctx.Describe(ru.site), p.seq, last, p.via, ctx.Describe(ru.body), how),
			}, fmt.Sprintf("skipped|%d", p.rule))
		}
		return
	}
	ru.bad++
	ctx.Report(Finding{
		CPU: int(k.cpu), Task: k.task, SeqFirst: p.seq, SeqLast: last, RIP: ru.site, Evidence: []uint64{p.seq, last},
		Context: keyName(k),
		Message: fmt.Sprintf("pass through %s (seq %d..%d) never reached %s: %s, and none of %s was entered: missed call",
			ctx.Describe(ru.site), p.seq, last, ctx.Describe(ru.body), how, strings.Join(ru.names, ", ")),
	}, fmt.Sprintf("abandoned|%d", p.rule))
}

// Finish judges the passes still pending on CPUs that finished: a CPU that
// reported pt_cpu_done and then halted runs no task again, so a pass left
// on it can never end. Passes in contexts still live when the stream
// stopped are left unjudged (see the type's comment).
func (a *missedCall) Finish(ctx *Context) {
	var keys []ctxKey
	for k, ps := range a.passes {
		if len(ps) > 0 && int(k.cpu) < len(a.done) && a.done[k.cpu] && ctx.St.CPUs[k.cpu].Last == format.KindHalt {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return a.passes[keys[i]][0].seq < a.passes[keys[j]][0].seq })
	for _, k := range keys {
		r := &format.Row{Seq: ctx.St.Seq}
		a.abandon(ctx, k, 0, r, false, func() string { return fmt.Sprintf("the run ended with cpu%d finished and idle", k.cpu) })
	}
}

// vecBP is the breakpoint vector (SDM Vol. 3 Table 6-1).
const vecBP = 3

// siteLength is a must_call site's length: 5 (a call rel32) unless the
// contract says otherwise.
func siteLength(n uint64) uint64 {
	if n == 0 {
		return 5
	}
	return n
}

// svcCPUDone is pt_cpu_done in the trace's service enum (format.Services).
const svcCPUDone format.Service = 12

func keyName(k ctxKey) string {
	if k.depth == 0 {
		return fmt.Sprintf("task %d", k.task)
	}
	return fmt.Sprintf("task %d, trap depth %d", k.task, k.depth)
}

// contextName tells which context a row ran in.
func contextName(r *format.Row) string {
	if r.Depth == 0 {
		return fmt.Sprintf("task %d", r.Task)
	}
	return fmt.Sprintf("task %d, trap depth %d", r.Task, r.Depth)
}

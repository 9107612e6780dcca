package analyze

import (
	"fmt"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// missedCall checks the scenario's must_call sites (seed 000: livepatch needs
// ftrace to "always call its code"). A pass through a site starts when a CPU
// executes the instruction at the site (the call, the nop, or the int3 that
// guards it) and ends when that same context executes site+5, the function
// body. Some allowed handler's entry must have run in between, in that same
// context: a handler entered by an interrupt or NMI nested in the pass (at a
// deeper trap depth) is that context's own call, not this pass's. Passes are
// keyed by CPU, task and trap depth, so a task preempted mid-pass is matched
// with itself.
type missedCall struct {
	rules  []callRule
	passes map[passKey]*pass
}

type callRule struct {
	site, body   uint64
	name         string
	handlers     map[uint64]string
	names        []string
	from, until  uint64
	open         bool
	checked, bad uint64
}

type passKey struct {
	cpu   uint16
	task  uint32
	depth uint8
	rule  int
}

type pass struct {
	seq     uint64
	entered bool
	via     string
}

func (*missedCall) ID() string { return "missed-call" }
func (*missedCall) Doc() string {
	return "A must-call site (scenario contract) was passed through with none of its allowed handlers entered in between."
}

func (a *missedCall) Start(ctx *Context) error {
	a.passes = map[passKey]*pass{}
	a.rules = nil
	if ctx.St.Spec == nil {
		return nil
	}
	for _, mc := range ctx.St.Spec.Contract.MustCall {
		site, err := ctx.St.Syms.Resolve(mc.Site)
		if err != nil {
			return fmt.Errorf("contract must_call site: %w", err)
		}
		rule := callRule{site: site, body: site + 5, name: mc.Site, handlers: map[uint64]string{}, names: mc.Handlers,
			from: mc.FromMarker, until: mc.UntilMarker, open: mc.FromMarker == 0}
		for _, h := range mc.Handlers {
			addr, err := ctx.St.Syms.Resolve(h)
			if err != nil {
				return fmt.Errorf("contract must_call handler: %w", err)
			}
			rule.handlers[addr] = h
		}
		a.rules = append(a.rules, rule)
	}
	return nil
}

func (a *missedCall) Event(ctx *Context, r *format.Row) {
	if len(a.rules) == 0 {
		return
	}
	switch r.Kind {
	case replay.KMarker:
		for i := range a.rules {
			ru := &a.rules[i]
			if ru.from != 0 && r.Args[0] == ru.from {
				ru.open = true
			}
			if ru.until != 0 && r.Args[0] == ru.until {
				ru.open = false
			}
		}
	case replay.KInsn:
		for i := range a.rules {
			ru := &a.rules[i]
			if name, ok := ru.handlers[r.RIP]; ok {
				for k, p := range a.passes {
					if k.rule == i && k.cpu == r.CPU && k.task == r.Task && k.depth == r.Depth && !p.entered {
						p.entered, p.via = true, name
					}
				}
			}
			key := passKey{cpu: r.CPU, task: r.Task, depth: r.Depth, rule: i}
			switch r.RIP {
			case ru.site:
				if ru.open {
					a.passes[key] = &pass{seq: r.Seq}
				}
			case ru.body:
				p := a.passes[key]
				if p == nil {
					continue
				}
				delete(a.passes, key)
				ru.checked++
				if p.entered {
					continue
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

func (*missedCall) Finish(*Context) {}

// contextName tells which context a row ran in.
func contextName(r *format.Row) string {
	if r.Depth == 0 {
		return fmt.Sprintf("task %d", r.Task)
	}
	return fmt.Sprintf("task %d, trap depth %d", r.Task, r.Depth)
}

package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// returnSlot follows return addresses and emulated-call targets (seed 002,
// Andy Lutomirski: "an NMI followed by an interrupt will kill us"; seed 004:
// "otherwise it stays on the return stack and bad things happen").
//
// Per-CPU slots (the scenario's return_slots): a store fills a slot for the
// context that is being redirected (the int3 handler's interrupted task); a
// load consumes it. A slot stored again before it was consumed, or consumed
// by a different task than the one it was filled for, is a finding.
type returnSlot struct {
	slots map[string]bool
	state map[slotKey]*slotFill
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
	if ctx.St.Spec != nil {
		for _, s := range ctx.St.Spec.Contract.ReturnSlots {
			if _, ok := ctx.St.Syms.Lookup(s); !ok {
				return fmt.Errorf("contract return_slots: no symbol %q in the trace", s)
			}
			a.slots[s] = true
		}
	}
	return nil
}

func (a *returnSlot) Event(ctx *Context, r *format.Row) {
	if len(a.slots) == 0 {
		return
	}
	switch r.Kind {
	case replay.KWrite:
		if !a.slots[r.PercpuVar] {
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
	case replay.KPercpuRead:
		if !a.slots[r.PercpuVar] {
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

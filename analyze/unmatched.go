package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
)

// unmatched reports the scenario rules that never matched during the run:
// an [[inject]] rule that never raised its interrupt (its address was
// never reached on its CPU, or reached fewer than hit times), and a
// contract.must_call rule whose window never opened (no
// pt_marker(from_marker, ...)) or whose site was never passed while it
// was open. Such a rule checked nothing: without this analyzer a run in
// which a patcher never patched, or an injection offset that drifted with
// a rebuild, would be judged clean.
//
// The judgement is read from the trace alone: an injection is an inject
// row raised by the rule's CPU at the rule's address with the rule's
// vector and that CPU as target (a scheduler decision raised at that very
// instruction would count too; the scheduler raises timer and NMI at
// arbitrary points, so the ambiguity is limited to that one instruction);
// a must_call window and its passes are marker rows and insn rows at the
// site. Explore's traces carry the scenario text with the injection plan
// removed (explore.Prepare), so a rule it did not follow is not asked
// for. Nothing is reported for a run that did not finish (an oops, the
// budget of a scenario that must terminate, a truncated trace): whether a
// rule would have matched later is unknown, and the outcome's own finding
// already says the run is not clean.
type unmatched struct {
	injects []injectRule
	calls   []windowRule
	asm     []asmRule
	// boot is contract.boot_until_marker (0: none); bootEnded: its
	// marker ran. Until it does, wx holds the run to early boot's rules.
	boot      uint64
	bootEnded bool
}

type asmRule struct {
	n      int // 1-based contract.asm_sites index
	site   uint64
	name   string
	passed bool
}

type injectRule struct {
	n      int // 1-based [[inject]] index
	cpu    uint16
	at     uint64
	atName string
	kind   string
	vector uint8
	hit    uint64
	fired  bool
}

type windowRule struct {
	n           int // 1-based contract.must_call index
	site        uint64
	name        string
	from, until uint64
	open        bool
	opened      bool
	passed      uint64
}

// injectVectors maps an [[inject]] kind to its vector number (format.Vectors).
var injectVectors = map[string]uint8{"nmi": 2, "timer": 0xec, "ipi": 0xfb}

func (*unmatched) ID() string { return "unmatched" }
func (*unmatched) Doc() string {
	return "A scenario rule never matched in a finished run: an [[inject]] rule never raised its interrupt, a contract.must_call window never opened (its from_marker never fired) or its site was never passed while open, a contract.asm_sites site was never executed, or the contract.boot_until_marker never ran, so the rule checked nothing."
}

func (a *unmatched) Start(ctx *Context) error {
	a.injects, a.calls, a.asm = nil, nil, nil
	a.boot, a.bootEnded = 0, false
	if ctx.St.Spec == nil {
		return nil
	}
	a.boot = ctx.St.Spec.Contract.BootUntilMarker
	for i, in := range ctx.St.Spec.Inject {
		at, err := ctx.St.Syms.Resolve(in.At)
		if err != nil {
			return fmt.Errorf("inject %d: at: %w", i+1, err)
		}
		v, ok := injectVectors[in.Kind]
		if !ok {
			return fmt.Errorf("inject %d: unknown kind %q", i+1, in.Kind)
		}
		a.injects = append(a.injects, injectRule{n: i + 1, cpu: uint16(in.CPU), at: at, atName: in.At, kind: in.Kind, vector: v, hit: in.Hit})
	}
	for i, mc := range ctx.St.Spec.Contract.MustCall {
		site, err := ctx.St.Syms.Resolve(mc.Site)
		if err != nil {
			return fmt.Errorf("contract must_call site: %w", err)
		}
		a.calls = append(a.calls, windowRule{n: i + 1, site: site, name: mc.Site, from: mc.FromMarker, until: mc.UntilMarker,
			open: mc.FromMarker == 0, opened: mc.FromMarker == 0})
	}
	for i, as := range ctx.St.Spec.Contract.AsmSites {
		site, err := ctx.St.Syms.Resolve(as.Site)
		if err != nil {
			return fmt.Errorf("contract asm_sites site: %w", err)
		}
		a.asm = append(a.asm, asmRule{n: i + 1, site: site, name: as.Site})
	}
	return nil
}

func (a *unmatched) Needs() Needs {
	var ks []format.Kind
	if len(a.injects) > 0 {
		ks = append(ks, format.KindInject)
	}
	if len(a.calls) > 0 {
		ks = append(ks, format.KindMarker, format.KindInsn)
	} else {
		if len(a.asm) > 0 {
			ks = append(ks, format.KindInsn)
		}
		if a.boot != 0 {
			ks = append(ks, format.KindMarker)
		}
	}
	if ks == nil {
		ks = []format.Kind{}
	}
	return Needs{Kinds: ks, Columns: []int{format.ColAddr, format.ColVector, format.ColArg0}}
}

func (a *unmatched) Event(ctx *Context, r *format.Row) {
	switch r.Kind {
	case format.KindInject:
		for i := range a.injects {
			in := &a.injects[i]
			if !in.fired && r.CPU == in.cpu && r.Addr == uint64(in.cpu) && r.RIP == in.at && r.Vector == in.vector {
				in.fired = true
			}
		}
	case format.KindMarker:
		if a.boot != 0 && r.Args[0] == a.boot {
			a.bootEnded = true
		}
		for i := range a.calls {
			w := &a.calls[i]
			if w.from != 0 && r.Args[0] == w.from {
				w.open, w.opened = true, true
			}
			if w.until != 0 && r.Args[0] == w.until {
				w.open = false
			}
		}
	case format.KindInsn:
		for i := range a.calls {
			if w := &a.calls[i]; w.open && r.RIP == w.site {
				w.passed++
			}
		}
		for i := range a.asm {
			if r.RIP == a.asm[i].site {
				a.asm[i].passed = true
			}
		}
	}
}

func (a *unmatched) Finish(ctx *Context) {
	if !a.finished(ctx) {
		return
	}
	for _, in := range a.injects {
		if in.fired {
			continue
		}
		when := "never reached"
		if in.hit > 1 {
			when = fmt.Sprintf("never reached a %s time", ordinal(in.hit))
		}
		ctx.Report(Finding{CPU: int(in.cpu), RIP: in.at, SeqLast: ctx.St.Seq,
			Message: fmt.Sprintf("[[inject]] %d (kind = %q, cpu = %d, at = %q%s) never fired: cpu%d %s %s; the run was not tested with this injection",
				in.n, in.kind, in.cpu, in.atName, hitText(in.hit), in.cpu, when, ctx.Describe(in.at)),
		}, fmt.Sprintf("inject|%d", in.n))
	}
	for _, w := range a.calls {
		var why string
		switch {
		case !w.opened:
			why = fmt.Sprintf("its window never opened: no pt_marker(%d, ...) ran", w.from)
		case w.passed == 0 && w.from != 0:
			why = fmt.Sprintf("%s was never passed while the window (from_marker %d) was open", ctx.Describe(w.site), w.from)
		case w.passed == 0:
			why = fmt.Sprintf("%s was never passed", ctx.Describe(w.site))
		default:
			continue
		}
		ctx.Report(Finding{RIP: w.site, SeqLast: ctx.St.Seq,
			Message: fmt.Sprintf("contract.must_call %d (site = %q) never matched: %s; missed-call checked nothing for it", w.n, w.name, why),
		}, fmt.Sprintf("must_call|%d", w.n))
	}
	if a.boot != 0 && !a.bootEnded {
		ctx.Report(Finding{SeqLast: ctx.St.Seq,
			Message: fmt.Sprintf("contract.boot_until_marker = %d never matched: no pt_marker(%d, ...) ran, so boot never ended; wx checked nothing in this run", a.boot, a.boot),
		}, "boot_until_marker")
	}
	for _, as := range a.asm {
		if !as.passed {
			ctx.Report(Finding{RIP: as.site, SeqLast: ctx.St.Seq,
				Message: fmt.Sprintf("contract.asm_sites %d (site = %q) never matched: %s was never executed; regs checked nothing for it", as.n, as.name, ctx.Describe(as.site)),
			}, fmt.Sprintf("asm_sites|%d", as.n))
		}
	}
}

// finished says whether the run ran to its end, so that a rule that did
// not match will not match later.
func (a *unmatched) finished(ctx *Context) bool {
	if ctx.Truncated {
		return false
	}
	switch ctx.Outcome {
	case format.OutcomeDone, "":
		return true
	case format.OutcomeBudget:
		return ctx.St.Spec != nil && ctx.St.Spec.OpenEnded()
	}
	return false
}

func hitText(hit uint64) string {
	if hit == 0 {
		return ""
	}
	return fmt.Sprintf(", hit = %d", hit)
}

func ordinal(n uint64) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

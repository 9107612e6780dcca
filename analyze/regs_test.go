package analyze_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// regsContract replaces int3-emulate-call's contract for the regs tests:
// an asm site of 5 bytes at caller_main+0x10 that preserves rax and rdx,
// and the must_call site traced_fn preserving rbx.
const regsContract = `[contract]
must_call = [{ site = "traced_fn", handlers = ["func_a", "func_b"], preserves = ["rbx"] }]
asm_sites = [{ site = "caller_main+0x10", length = 5, preserves = ["rax", "rdx"] }]
`

// newRegsFeed is newFeed over int3-emulate-call with regsContract, for the
// regs analyzer; regs false makes the trace's metadata say it records no
// register deltas (record --no-regs).
func newRegsFeed(t *testing.T, regs bool) *feed {
	t.Helper()
	return newRegsFeedWith(t, regs, regsContract)
}

// newRegsFeedWith is newRegsFeed with another [contract].
func newRegsFeedWith(t *testing.T, regs bool, contract string) *feed {
	t.Helper()
	return newContractFeed(t, regs, contract, "regs")
}

// newContractFeed is a feed over int3-emulate-call with the given
// [contract], for analyzer id.
func newContractFeed(t *testing.T, regs bool, contract, id string) *feed {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, "int3-emulate-call")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{t: t, img: img, md: record.Meta(spec, img, spec.CPUs, 1), ops: map[string]uint16{}}
	i := strings.Index(f.md.ScenarioText, "[contract]")
	if i < 0 {
		t.Fatal("int3-emulate-call has no [contract]")
	}
	f.md.ScenarioText = f.md.ScenarioText[:i] + contract
	f.md.Regs = regs
	for i, n := range f.md.OpNames {
		f.ops[n] = uint16(i)
	}
	f.live, err = analyze.NewLive(&f.md, []analyze.Analyzer{mustSelect(t, id)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// rs are register values by name, for a row's deltas.
type rs map[string]uint64

func regRow(r *format.Row, regs rs) *format.Row {
	for name, v := range regs {
		i := regIndex(name)
		r.RegMask |= 1 << i
		r.Regs[i] = v
	}
	return r
}

func regIndex(name string) int {
	for i, n := range format.RegNames {
		if n == name {
			return i
		}
	}
	panic("no register " + name)
}

// start is cpu c.cpu's start row: every register known, rax = 0xa0,
// rbx = 0xb0, ..., rsp = rsp.
func (f *feed) start(c ctx, rsp uint64) {
	r := &format.Row{Kind: format.KindSerialize, Cause: 3, RIP: f.sym("caller_main", 0)}
	for i := range format.RegNames {
		r.RegMask |= 1 << i
		r.Regs[i] = 0xa0 + uint64(i)*0x10
	}
	r.Regs[regIndex("rsp")] = rsp
	f.add(c, r)
}

// rinsn is insn with register deltas.
func (f *feed) rinsn(c ctx, rip uint64, op string, rsp uint64, regs rs) uint64 {
	f.t.Helper()
	o, ok := f.ops[op]
	if !ok {
		f.t.Fatalf("no op %s", op)
	}
	return f.add(c, regRow(&format.Row{Kind: format.KindInsn, RIP: rip, Op: o, Len: 1, RSP: rsp}, regs))
}

// TestRegsPasses feeds hand-made passes through a preserving asm site
// (caller_main+0x10, 5 bytes, rax and rdx) and a preserving must_call site
// (traced_fn, rbx).
func TestRegsPasses(t *testing.T) {
	const (
		S  = uint64(0xffffc90000013f00) // task 2's stack at the site
		S3 = uint64(0xffffc90000017f00) // task 3's
	)
	task2, irq2 := ctx{cpu: 1, task: 2}, ctx{cpu: 1, task: 2, depth: 1}
	task3, irq3 := ctx{cpu: 1, task: 3}, ctx{cpu: 1, task: 3, depth: 1}
	other := ctx{cpu: 2, task: 4}
	type want struct {
		msg  []string // substrings of the one finding's message; nil: clean
		site string   // the finding's symbol
		ev   int      // how many evidence seqs
	}
	for _, tc := range []struct {
		name string
		run  func(f *feed) (changed uint64)
		want want
	}{
		{"an emulated call that clobbers rdx", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.insn(task2, site, "INT", S)
			f.trap(task2, site+1, 3, f.sym("asm_exc_int3", 0), S-0x70)
			// The #BP handler uses rax and rdx, and restores them.
			f.rinsn(irq2, f.sym("int3_hook", 0), "MOV", S-0x100, rs{"rax": 1, "rdx": 2})
			f.add(task2, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_exc_int3", 0x59), Handler: f.sym("func_a", 0), RSP: S - 8},
				rs{"rax": 0xa0, "rdx": 0xd0, "rsp": S - 8}))
			ch := f.rinsn(task2, f.sym("func_a", 0), "MOV", S-8, rs{"rdx": 0xdead})
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return ch
		}, want{msg: []string{"caller_main+0x10, contract.asm_sites 1", "reached caller_main+0x15", "rdx 0xd0 -> 0xdead (changed at seq", "by func_a (int3-emulate-call/funcs.S:"}, site: "caller_main", ev: 3}},
		{"the callee restores what it uses", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			f.rinsn(task2, f.sym("func_a", 0), "PUSH", S-8, rs{"rsp": S - 16})
			f.rinsn(task2, f.sym("func_a", 1), "MOV", S-16, rs{"rdx": 0xdead, "rax": 7})
			f.rinsn(task2, f.sym("func_a", 2), "MOV", S-16, rs{"rdx": 0xd0, "rax": 0xa0})
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return 0
		}, want{}},
		{"an interrupt in the pass clobbers and restores on IRETQ", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			f.add(task2, regRow(&format.Row{Kind: format.KindTrap, RIP: f.sym("func_a", 0), Vector: 0xec, Handler: f.sym("asm_sysvec_apic_timer_interrupt", 0), RSP: S - 0x40, Size: 40},
				rs{"rsp": S - 0x40}))
			f.rinsn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0), "MOV", S-0x40, rs{"rax": 0x1111, "rdx": 0x2222})
			f.add(task2, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_sysvec_apic_timer_interrupt", 0x47), Handler: f.sym("func_a", 0), RSP: S - 8},
				rs{"rax": 0xa0, "rdx": 0xd0, "rsp": S - 8}))
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return 0
		}, want{}},
		{"an interrupt handler rewrites the saved rax in its frame", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			f.add(task2, regRow(&format.Row{Kind: format.KindTrap, RIP: f.sym("func_a", 0), Vector: 0xec, Handler: f.sym("asm_sysvec_apic_timer_interrupt", 0), RSP: S - 0x40, Size: 40},
				rs{"rsp": S - 0x40}))
			f.rinsn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0), "MOV", S-0x40, rs{"rax": 0x1111})
			ch := f.add(task2, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_sysvec_apic_timer_interrupt", 0x47), Handler: f.sym("func_a", 0), RSP: S - 8},
				rs{"rax": 0x1111, "rsp": S - 8}))
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return ch
		}, want{msg: []string{"rax 0xa0 -> 0x1111 (changed at seq", "restored from the interrupt frame by the IRETQ at asm_sysvec_apic_timer_interrupt+0x47"}, site: "caller_main", ev: 3}},
		{"another task on the CPU and another CPU are other contexts", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.start(ctx{cpu: 2, task: 4}, S3)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			// Preempted in the callee: task 3 runs, passes the site's end
			// itself with other values, and is preempted back.
			f.add(task2, regRow(&format.Row{Kind: format.KindTrap, RIP: f.sym("func_a", 0), Vector: 0xec, Handler: f.sym("asm_sysvec_apic_timer_interrupt", 0), RSP: S - 0x40, Size: 40},
				rs{"rsp": S - 0x40}))
			f.switchTo(irq2, 3)
			f.add(task3, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_sysvec_apic_timer_interrupt", 0x47), Handler: site + 5, RSP: S3},
				rs{"rax": 0x3333, "rdx": 0x4444, "rsp": S3}))
			f.insn(task3, site+5, "MOV", S3)
			f.insn(task3, site+5, "MOV", S) // not task 2's, whatever its stack pointer
			f.rinsn(other, site, "MOV", S, rs{"rcx": 5})
			f.insn(other, site+5, "MOV", S)
			f.add(task3, regRow(&format.Row{Kind: format.KindTrap, RIP: site + 6, Vector: 0xec, Handler: f.sym("asm_sysvec_apic_timer_interrupt", 0), RSP: S3 - 0x40, Size: 40},
				rs{"rsp": S3 - 0x40}))
			f.switchTo(irq3, 2)
			f.add(task2, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_sysvec_apic_timer_interrupt", 0x47), Handler: f.sym("func_a", 0), RSP: S - 8},
				rs{"rax": 0xa0, "rdx": 0xd0, "rsp": S - 8}))
			// A handler of task 2 one depth deeper reaching the end is not
			// the pass's end either.
			f.insn(irq2, site+5, "MOV", S)
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return 0
		}, want{}},
		{"the end in a deeper frame (recursion) is not the pass's end", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			f.rinsn(task2, f.sym("func_a", 0), "MOV", S-8, rs{"rdx": 0x77})
			f.insn(task2, site+5, "MOV", S-0x100)
			f.rinsn(task2, f.sym("func_a", 1), "MOV", S-8, rs{"rdx": 0xd0})
			f.rinsn(task2, f.sym("func_a", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, site+5, "MOV", S)
			return 0
		}, want{}},
		{"a must_call site's callee clobbers a callee-saved register", func(f *feed) uint64 {
			f.rinsn(task2, f.site(), "CALL", S, rs{"rsp": S - 8})
			ch := f.rinsn(task2, f.sym("func_b", 0), "MOV", S-8, rs{"rbx": 0})
			f.rinsn(task2, f.sym("func_b", 0x30), "RET", S-8, rs{"rsp": S})
			f.insn(task2, f.body(), "PUSH", S)
			return ch
		}, want{msg: []string{"traced_fn, contract.must_call 1", "rbx 0xb0 -> 0x0 (changed at seq"}, site: "traced_fn", ev: 3}},
		{"a pass that leaves its frame is not judged", func(f *feed) uint64 {
			site := f.sym("caller_main", 0x10)
			f.rinsn(task2, site, "CALL", S, rs{"rsp": S - 8})
			f.rinsn(task2, f.sym("func_a", 0), "MOV", S-8, rs{"rdx": 0x77})
			f.rinsn(task2, f.sym("caller_main", 0x40), "RET", S+0x10, rs{"rsp": S + 0x18})
			f.insn(task2, site+5, "MOV", S)
			return 0
		}, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRegsFeed(t, true)
			f.start(task2, S)
			changed := tc.run(f)
			res := f.finish()
			if tc.want.msg == nil {
				if len(res.Findings) != 0 || res.Incomplete != "" {
					t.Fatalf("want clean, got incomplete %q:\n%s", res.Incomplete, summary(res))
				}
				return
			}
			if len(res.Findings) != 1 {
				t.Fatalf("want one finding, got:\n%s", summary(res))
			}
			fd := res.Findings[0]
			for _, m := range tc.want.msg {
				if !strings.Contains(fd.Message, m) {
					t.Errorf("finding %q does not say %q", fd.Message, m)
				}
			}
			if changed != 0 && !strings.Contains(fd.Message, fmt.Sprintf("changed at seq %d ", changed)) {
				t.Errorf("finding %q does not name seq %d as the change", fd.Message, changed)
			}
			if fd.Analyzer != "regs" || fd.Symbol != tc.want.site || fd.CPU != 1 || fd.Task != 2 || len(fd.Evidence) != tc.want.ev {
				t.Errorf("finding %s at %s cpu%d task %d evidence %v: want regs at %s on cpu1 task 2 with %d events", fd.Analyzer, fd.Where, fd.CPU, fd.Task, fd.Evidence, tc.want.site, tc.want.ev)
			}
		})
	}
}

// regsReturnContract declares func_a+0x20 a return that keeps rax and
// rflags (a fastop's RET, through whatever thunk apply_returns() chose).
const regsReturnContract = `[contract]
must_call = []
asm_sites = [{ site = "func_a+0x20", length = 5, returns = true, preserves = ["rax", "rflags"] }]
`

// TestRegsReturnSite feeds hand-made passes through a site declared a
// return: the pass ends at the RET that pops the word at the site's stack
// pointer, through a thunk that calls another function first (as
// srso_return_thunk does), and is judged there, not at site + length.
func TestRegsReturnSite(t *testing.T) {
	const S = uint64(0xffffc90000013f00) // task 2's stack at the site: the return address
	task2, irq2 := ctx{cpu: 1, task: 2}, ctx{cpu: 1, task: 2, depth: 1}
	thunk := func(f *feed, adjust rs) uint64 {
		// jmp thunk; thunk: call safe_ret; safe_ret: add/lea $8,%rsp; ret
		site := f.sym("func_a", 0x20)
		f.rinsn(task2, site, "JMP", S, nil)
		f.rinsn(task2, f.sym("func_b", 0), "CALL", S, rs{"rsp": S - 8})
		ch := f.rinsn(task2, f.sym("func_b", 0x10), "ADD", S-8, adjust)
		f.rinsn(task2, f.sym("func_b", 0x14), "RET", S, rs{"rsp": S + 8})
		f.insn(task2, f.sym("caller_main", 0x15), "MOV", S+8)
		return ch
	}
	for _, tc := range []struct {
		name string
		run  func(f *feed) (changed uint64)
		msg  []string // nil: clean
	}{
		{"a thunk that adjusts the stack with add clobbers rflags", func(f *feed) uint64 {
			return thunk(f, rs{"rsp": S, "rflags": 0x86})
		}, []string{"func_a+0x20, contract.asm_sites 1", "returned through the word at 0xffffc90000013f00 by the RET at func_b+0x14",
			"rflags 0x100 -> 0x86 (changed at seq"}},
		{"a thunk that adjusts the stack with lea keeps them", func(f *feed) uint64 {
			thunk(f, rs{"rsp": S})
			return 0
		}, nil},
		{"a plain ret is its own end", func(f *feed) uint64 {
			f.rinsn(task2, f.sym("func_a", 0x20), "RET", S, rs{"rsp": S + 8})
			f.insn(task2, f.sym("caller_main", 0x15), "MOV", S+8)
			return 0
		}, nil},
		{"an interrupt in the thunk that gives rflags back", func(f *feed) uint64 {
			site := f.sym("func_a", 0x20)
			f.rinsn(task2, site, "JMP", S, nil)
			f.rinsn(task2, f.sym("func_b", 0), "CALL", S, rs{"rsp": S - 8})
			f.add(task2, regRow(&format.Row{Kind: format.KindTrap, RIP: f.sym("func_b", 0x10), Vector: 0xec, Handler: f.sym("asm_sysvec_apic_timer_interrupt", 0), RSP: S - 0x48, Size: 40},
				rs{"rsp": S - 0x48, "rflags": 2}))
			f.rinsn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0), "ADD", S-0x48, rs{"rax": 0x1111, "rflags": 0x97})
			// The handler's own RET at the pass's stack pointer is another context's.
			f.rinsn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0x20), "RET", S, rs{"rsp": S + 8})
			f.add(task2, regRow(&format.Row{Kind: format.KindIret, RIP: f.sym("asm_sysvec_apic_timer_interrupt", 0x47), Handler: f.sym("func_b", 0x10), RSP: S - 8},
				rs{"rax": 0xa0, "rflags": 0x100, "rsp": S - 8}))
			f.rinsn(task2, f.sym("func_b", 0x10), "LEA", S-8, rs{"rsp": S})
			f.rinsn(task2, f.sym("func_b", 0x14), "RET", S, rs{"rsp": S + 8})
			return 0
		}, nil},
		{"site + length is not its end", func(f *feed) uint64 {
			// Through site + length with rflags changed, and back before the RET.
			f.rinsn(task2, f.sym("func_a", 0x20), "JMP", S, nil)
			f.rinsn(task2, f.sym("func_a_c", 0), "ADD", S, rs{"rflags": 0x86})
			f.rinsn(task2, f.sym("func_a", 0x25), "POPF", S, rs{"rflags": 0x100})
			f.rinsn(task2, f.sym("func_a_c", 1), "RET", S, rs{"rsp": S + 8})
			return 0
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRegsFeedWith(t, true, regsReturnContract)
			f.start(task2, S)
			f.add(task2, regRow(&format.Row{Kind: format.KindInsn, RIP: f.sym("caller_main", 0x20), Op: f.ops["MOV"], Len: 1, RSP: S}, rs{"rflags": 0x100}))
			changed := tc.run(f)
			res := f.finish()
			if tc.msg == nil {
				if len(res.Findings) != 0 || res.Incomplete != "" {
					t.Fatalf("want clean, got incomplete %q:\n%s", res.Incomplete, summary(res))
				}
				return
			}
			if len(res.Findings) != 1 {
				t.Fatalf("want one finding, got:\n%s", summary(res))
			}
			fd := res.Findings[0]
			for _, m := range tc.msg {
				if !strings.Contains(fd.Message, m) {
					t.Errorf("finding %q does not say %q", fd.Message, m)
				}
			}
			if !strings.Contains(fd.Message, fmt.Sprintf("changed at seq %d ", changed)) {
				t.Errorf("finding %q does not name seq %d as the change", fd.Message, changed)
			}
			if fd.Analyzer != "regs" || fd.Symbol != "func_a" || fd.CPU != 1 || fd.Task != 2 {
				t.Errorf("finding %s at %s cpu%d task %d: want regs at func_a on cpu1 task 2", fd.Analyzer, fd.Where, fd.CPU, fd.Task)
			}
		})
	}
}

// TestAsmSiteReturnAddress: the word after an asm site (site + length) is
// a return address the return-slot analyzer accepts, as an int3 handler
// may emulate a call there; after a site declared a return it is not (no
// call comes back after a return).
func TestAsmSiteReturnAddress(t *testing.T) {
	const slot = uint64(0xffffffff81111f00)
	for _, tc := range []struct {
		returns bool
		finding bool
	}{{false, false}, {true, true}} {
		t.Run(fmt.Sprintf("returns=%v", tc.returns), func(t *testing.T) {
			f := newContractFeed(t, true, fmt.Sprintf(`[contract]
must_call = []
asm_sites = [{ site = "caller_main+0x10", length = 5, returns = %v, preserves = ["rax"] }]
`, tc.returns), "return-slot")
			c := ctx{cpu: 1, task: 2}
			// A handler's plain store of site + 5 (an emulated call's push),
			// and a RET through it.
			f.write(c, f.sym("func_a", 0), slot, 8, f.sym("caller_main", 0x15), false)
			f.insn(c, f.sym("func_a", 0x10), "RET", slot)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
		})
	}
}

// TestRegsNoRegs: a trace recorded without register deltas cannot be
// checked: the result is incomplete and says why, whatever the rows.
func TestRegsNoRegs(t *testing.T) {
	f := newRegsFeed(t, false)
	task2 := ctx{cpu: 1, task: 2}
	f.insn(task2, f.sym("caller_main", 0x10), "CALL", 0x1000)
	f.insn(task2, f.sym("caller_main", 0x15), "CALL", 0x1000)
	res := f.finish()
	if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "regs could not check: the trace records no register deltas") ||
		!strings.Contains(res.Incomplete, `contract.asm_sites 1 (site = "caller_main+0x10")`) {
		t.Fatalf("verdict %s, incomplete %q: want incomplete naming regs and the sites", res.Verdict, res.Incomplete)
	}
}

// TestRegsUnknown: a pass whose registers the trace does not give (no
// start row) is not checked, and the result says so.
func TestRegsUnknown(t *testing.T) {
	f := newRegsFeed(t, true)
	task2 := ctx{cpu: 1, task: 2}
	f.rinsn(task2, f.sym("caller_main", 0x10), "MOV", 0x1000, rs{"rdx": 1})
	f.insn(task2, f.sym("caller_main", 0x15), "MOV", 0x1000)
	res := f.finish()
	if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "does not give every register's value") {
		t.Fatalf("verdict %s, incomplete %q: want incomplete", res.Verdict, res.Incomplete)
	}
}

// TestRegsBounded: a hostile stream of passes that never end keeps at
// most maxRegPasses pending; the ones beyond are counted as not checked.
func TestRegsBounded(t *testing.T) {
	f := newRegsFeed(t, true)
	task2 := ctx{cpu: 1, task: 2}
	f.start(task2, 0x1000)
	site := f.sym("caller_main", 0x10)
	for i := range uint64(20000) {
		f.insn(task2, site, "CALL", 0x100000-i*8)
	}
	res := f.finish()
	// 20000 passes, 4096 (maxRegPasses) kept: the rest are counted.
	if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "15904 passes through preserving sites were not checked: more than 4096 were pending at once") {
		t.Fatalf("verdict %s, incomplete %q: want incomplete for the passes beyond the bound", res.Verdict, res.Incomplete)
	}
}

// TestRegNamesTwin: the scenario package's register names are the trace's.
func TestRegNamesTwin(t *testing.T) {
	if !reflect.DeepEqual(scenario.RegNames, format.RegNames[:]) {
		t.Fatalf("scenario.RegNames %v, format.RegNames %v", scenario.RegNames, format.RegNames)
	}
}

// TestRegsCatalog: int3-selftest-kasan (the int3 selftest whose emulated
// call goes into a KASAN-instrumented C function) is a regs finding at the
// asm site naming the clobbered registers and the instructions that
// changed them, with a story that shows the emulated call and those
// instructions; its twin, whose
// call goes through a register-preserving thunk, is clean. (Both stay so
// over seeds: the catalog's check and TestCleanRowsStayClean.)
func TestRegsCatalog(t *testing.T) {
	res := analyzeRun(t, testkit.Load(t, "int3-selftest-kasan", nil), emu.Options{Seed: 1}, "regs")
	if len(res.Findings) != 1 {
		t.Fatalf("want one regs finding, got:\n%s", summary(res))
	}
	fd := res.Findings[0]
	if fd.Symbol != "int3_selftest_ip" || !strings.HasSuffix(fd.Source, "selftest.c:131") || fd.Count < 2 {
		t.Errorf("finding at %s (%s), %d times: want int3_selftest_ip at selftest.c:131, every pass", fd.Where, fd.Source, fd.Count)
	}
	for _, m := range []string{"contract.asm_sites 1 (site = \"int3_selftest_ip\")", "reached int3_selftest_ip+0x5 with",
		"rcx ", "rdx ", "rsi ", "(changed at seq ", "by kasan_check_range", "registers the compiler assumes the site preserves were clobbered"} {
		if !strings.Contains(fd.Message, m) {
			t.Errorf("message does not say %q: %s", m, fd.Message)
		}
	}
	story := strings.Join(fd.Story, "\n")
	// The pass's own int3, the IRETQ into the emulated callee and the
	// instructions that changed the registers, told whatever the other
	// CPUs did meanwhile.
	for _, s := range []string{"executes int3 at int3_selftest_ip", "back to int3_magic", "executes shr at kasan_check_range", "executes mov at int3_selftest_ip+0x5"} {
		if !strings.Contains(story, s) {
			t.Errorf("story does not show %q:\n%s", s, story)
		}
	}
	twin := analyzeRun(t, testkit.Load(t, "int3-selftest", nil), emu.Options{Seed: 1}, "regs")
	if len(twin.Findings) > 0 || twin.Verdict != analyze.VerdictClean {
		t.Errorf("int3-selftest: want clean, got %s:\n%s", twin.Verdict, summary(twin))
	}
}

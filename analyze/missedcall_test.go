package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
)

// TestMissedCallPasses feeds hand-made passes through int3-emulate-call's
// must_call site (traced_fn, handlers func_a and func_b, from marker 1):
// passes that reach the site's end, passes a handler made leave the
// function without reaching it, passes paused by an interrupt or a
// preemption, and passes the stream ends in the middle of.
func TestMissedCallPasses(t *testing.T) {
	const (
		S  = uint64(0xffffffff81111f00) // task 2's stack at the site
		S3 = uint64(0xffffffff81119f00) // task 3's stack, above task 2's
		bp = 3                          // #BP
	)
	task2, irq2 := ctx{cpu: 1, task: 2}, ctx{cpu: 1, task: 2, depth: 1}
	task3, irq3 := ctx{cpu: 1, task: 3}, ctx{cpu: 1, task: 3, depth: 1}
	idle, idleIRQ := ctx{cpu: 1, task: 0}, ctx{cpu: 1, task: 0, depth: 1}
	for _, tc := range []struct {
		name string
		run  func(f *feed)
		want string // "" clean, else a substring of the one finding's message
	}{
		{"the site calls a handler", func(f *feed) {
			f.insn(task2, f.site(), "CALL", S)
			f.handlerRuns(task2, "func_a", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"int3 handler emulates the call", func(f *feed) {
			f.int3(task2, S, "func_a", S-8)
			f.handlerRuns(task2, "func_a", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"int3 handler skips the call", func(f *feed) {
			f.int3(task2, S, "", S)
			f.insn(task2, f.body(), "PUSH", S)
		}, "reached traced_fn+0x5 without entering"},
		{"int3 handler emulates a ret and skips the function", func(f *feed) {
			ret := f.callReturn("caller_main")
			f.int3(task2, S, "caller_main", S+8)
			f.insn(task2, ret, "MOV", S+8)
		}, "resumed it at caller_main"},
		{"int3 handler sends the pass to the function's ret", func(f *feed) {
			f.int3(task2, S, "traced_fn+0x40", S)
			f.insn(task2, f.sym("traced_fn", 0x40), "RET", S)
		}, "the RET at traced_fn+0x40 returned from the site's frame"},
		{"a handler redirects the function (livepatch), the new one returns", func(f *feed) {
			f.insn(task2, f.site(), "CALL", S)
			f.insn(task2, f.sym("func_a", 0), "PUSH", S-8)
			f.insn(task2, f.sym("func_a", 0x30), "RET", S-8) // to a new function, not site+5
			f.insn(task2, f.sym("caller_main", 0), "MOV", S)
			f.insn(task2, f.sym("caller_main", 0x10), "RET", S)
		}, ""},
		{"an interrupt in the pass returns into it", func(f *feed) {
			f.insn(task2, f.site(), "CALL", S)
			f.insn(task2, f.sym("func_a", 0), "PUSH", S-8)
			f.trap(task2, f.sym("func_a", 1), 0xec, f.sym("asm_sysvec_apic_timer_interrupt", 0), S-64)
			f.insn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0), "PUSH", S-64)
			f.insn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0x20), "RET", S-72)
			f.iret(task2, f.sym("asm_sysvec_apic_timer_interrupt", 0x47), f.sym("func_a", 1), S-16)
			f.insn(task2, f.sym("func_a", 0x30), "RET", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"an NMI on its own stack, above the task's, in the pass", func(f *feed) {
			const N = uint64(0xffffffff81400f00) // the IST stack
			nmi := ctx{cpu: 1, task: 2, depth: 1}
			f.insn(task2, f.site(), "CALL", S)
			f.trap(task2, f.sym("func_a", 0), 2, f.sym("asm_exc_nmi", 0), N)
			f.insn(nmi, f.sym("asm_exc_nmi", 0), "PUSH", N)
			f.insn(nmi, f.sym("caller_main", 0x40), "RET", N-0x20)
			f.iret(task2, f.sym("asm_exc_nmi", 0x40), f.sym("func_a", 0), S-8)
			f.handlerRuns(task2, "func_a", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"a task preempted mid-pass resumes after another task's passes", func(f *feed) {
			// Preempted between the site's CALL and the handler's first
			// instruction: nothing of the pass has run yet.
			f.insn(task2, f.site(), "CALL", S)
			f.trap(task2, f.sym("func_a", 0), 0xec, f.sym("asm_sysvec_apic_timer_interrupt", 0), S-56)
			f.switchTo(irq2, 3)
			// Task 3 (on a stack above task 2's) passes the site and returns
			// from its callers, then is preempted back to task 2.
			f.insn(task3, f.site(), "CALL", S3)
			f.handlerRuns(task3, "func_b", S3-8)
			f.insn(task3, f.body(), "PUSH", S3)
			f.insn(task3, f.sym("traced_fn", 0x40), "RET", S3)
			f.insn(task3, f.sym("caller_main", 0x40), "RET", S3+0x40)
			f.trap(task3, f.sym("caller_main", 0x10), 0xec, f.sym("asm_sysvec_apic_timer_interrupt", 0), S3+0x10)
			f.switchTo(irq3, 2)
			f.insn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0x47), "IRETQ", S-56)
			f.iret(task2, f.sym("asm_sysvec_apic_timer_interrupt", 0x47), f.sym("func_a", 0), S-8)
			f.insn(task2, f.sym("func_a", 0), "PUSH", S-8)
			f.insn(task2, f.sym("func_a", 0x30), "RET", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"the site again in the same frame (an int3 handler that retries)", func(f *feed) {
			f.int3(task2, S, "traced_fn", S)
			f.insn(task2, f.site(), "CALL", S)
			f.handlerRuns(task2, "func_b", S-8)
			f.insn(task2, f.body(), "PUSH", S)
			f.insn(task2, f.sym("traced_fn", 0x40), "RET", S)
		}, ""},
		{"a handler passes through the site again, deeper", func(f *feed) {
			f.insn(task2, f.site(), "CALL", S)
			f.insn(task2, f.sym("func_a", 0), "PUSH", S-8)
			f.insn(task2, f.site(), "CALL", S-0x100)
			f.handlerRuns(task2, "func_b", S-0x108)
			f.insn(task2, f.body(), "PUSH", S-0x100)
			f.insn(task2, f.sym("traced_fn", 0x40), "RET", S-0x100)
			f.insn(task2, f.sym("func_a", 0x30), "RET", S-8)
			f.insn(task2, f.body(), "PUSH", S)
		}, ""},
		{"an interrupt handler's pass cut off by its own IRETQ", func(f *feed) {
			const S1 = S - 0x200
			f.insn(irq2, f.site(), "INT", S1)
			f.trap(irq2, f.site()+1, bp, f.sym("asm_exc_int3", 0), S1-40)
			f.iret(irq2, f.sym("asm_exc_int3", 0x59), f.sym("asm_sysvec_apic_timer_interrupt", 0x40), S1-8)
			f.insn(irq2, f.sym("asm_sysvec_apic_timer_interrupt", 0x47), "IRETQ", S1-8)
			f.iret(task2, f.sym("asm_sysvec_apic_timer_interrupt", 0x47), f.sym("caller_main", 0x10), S)
		}, "the IRETQ at asm_sysvec_apic_timer_interrupt+0x47 ended that context"},
		{"a task that exits mid-pass", func(f *feed) {
			f.int3(task2, S, "", 0)
			f.switchTo(irq2, 0)
			f.service(idle, emu.SvcExit)
		}, "task 2 exited (cpu1 reported pt_cpu_done)"},
		{"pending when the stream ends on a running CPU: unknown", func(f *feed) {
			f.insn(task2, f.site(), "CALL", S)
			f.insn(task2, f.sym("func_a", 0), "PUSH", S-8)
		}, ""},
		{"pending when the stream ends, int3 handler never returned: unknown", func(f *feed) {
			f.int3(task2, S, "", 0)
		}, ""},
		{"pending on a CPU that finished and halted", func(f *feed) {
			f.insn(idleIRQ, f.site(), "INT", S)
			f.service(idle, emu.SvcExit)
			f.add(idle, haltRow())
		}, "the run ended with cpu1 finished and idle"},
		{"pending on a CPU that finished but did not halt: unknown", func(f *feed) {
			f.insn(idleIRQ, f.site(), "INT", S)
			f.service(idle, emu.SvcExit)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "int3-emulate-call", "missed-call")
			f.marker(ctx{cpu: 0, task: 1}, 1, 0)
			tc.run(f)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) != 0 {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one finding saying %q, got:\n%s", tc.want, summary(res))
			}
			if fd := res.Findings[0]; fd.Symbol != "traced_fn" || fd.CPU != 1 || len(fd.Evidence) != 2 {
				t.Errorf("finding at %s cpu%d evidence %v: want traced_fn on cpu1 with the site hit and the end", fd.Where, fd.CPU, fd.Evidence)
			}
		})
	}
}

func (f *feed) site() uint64 { return f.sym("traced_fn", 0) }
func (f *feed) body() uint64 { return f.sym("traced_fn", 5) }

// handlerRuns is a handler entered with rsp that returns with a RET.
func (f *feed) handlerRuns(c ctx, name string, rsp uint64) {
	f.insn(c, f.sym(name, 0), "PUSH", rsp)
	f.insn(c, f.sym(name, 0x30), "RET", rsp)
}

// int3 hits the int3 at the site with rsp and, unless to is "", has the
// #BP handler (one depth deeper) IRETQ back to to (symbol[+off]) with
// stack pointer back.
func (f *feed) int3(c ctx, rsp uint64, to string, back uint64) {
	f.t.Helper()
	h := ctx{cpu: c.cpu, task: c.task, depth: c.depth + 1}
	f.insn(c, f.site(), "INT", rsp)
	f.trap(c, f.site()+1, 3, f.sym("asm_exc_int3", 0), rsp-0x70)
	f.insn(h, f.sym("int3_hook", 0), "PUSH", rsp-0x100)
	f.insn(h, f.sym("int3_hook", 0x20), "RET", rsp-0x100)
	if to == "" && back == 0 {
		return
	}
	target := f.site() + 5
	if to != "" {
		a, err := f.symExpr(to)
		if err != nil {
			f.t.Fatal(err)
		}
		target = a
	}
	f.insn(h, f.sym("asm_exc_int3", 0x59), "IRETQ", rsp-0x98)
	f.iret(c, f.sym("asm_exc_int3", 0x59), target, back)
}

// TestMissedCallSkippedRest feeds hand-made events over sc-call's slice,
// whose must_call site is a call inside mod_call_fn: a pass that enters
// the handler and comes back to the instruction after the call is fine;
// one whose handler returns from mod_call_fn's frame (the site written as
// a jmp) entered the handler but skipped the rest of the function, and is
// a finding all the same.
func TestMissedCallSkippedRest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		jmp     bool // the site ran as a jmp: the handler returns from the site's frame
		finding bool
	}{
		{"call returns after the site", false, false},
		{"jmp returns from the function", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "sc-call", "missed-call")
			c := ctx{cpu: 1, task: 2}
			site, body := f.sym("mod_call_site", 0), f.sym("mod_call_site", 5)
			f.marker(c, 1, 0)
			sp := uint64(ltStackB)
			if tc.jmp {
				f.insn(c, site, "JMP", sp)
				f.insn(c, f.sym("sc_func_a", 0), "LEA", sp)
				f.insn(c, f.sym("sc_func_a", 4), "RET", sp)
				f.insn(c, f.sym("caller_main", 0), "NOP", sp+8)
			} else {
				f.insn(c, site, "CALL", sp)
				f.insn(c, f.sym("sc_func_a", 0), "LEA", sp-8)
				f.insn(c, f.sym("sc_func_a", 4), "RET", sp-8)
				f.insn(c, body, "ADD", sp)
			}
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "entered sc_func_a but never came back to mod_call_site+0x5") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestMissedCallWindowCloses feeds passes over dyn-tramp-func's must_call
// rules (traced_fn must enter tracer_func or other_func from marker 1, or
// 3, until marker 2, when an update of the trampoline's call begins): a
// pass that has entered no handler when the window closes is not judged
// (its call would come after the window, where the int3 of the update may
// skip it), one that reached the site's end inside the window without a
// handler is, and the window opens again at marker 3.
func TestMissedCallWindowCloses(t *testing.T) {
	const S = uint64(0xffffffff81111f00)
	c, patcher := ctx{cpu: 1, task: 2}, ctx{cpu: 0, task: 1}
	for _, tc := range []struct {
		name string
		run  func(f *feed)
		want string // "" clean, else a substring of the one finding's message
	}{
		{"a pass still short of the callback when the window closes", func(f *feed) {
			f.insn(c, f.site(), "CALL", S)
			f.marker(patcher, 2, 0)
			f.insn(c, f.body(), "PUSH", S)
		}, ""},
		{"a pass that missed the callback inside the window", func(f *feed) {
			f.insn(c, f.site(), "CALL", S)
			f.insn(c, f.body(), "PUSH", S)
			f.marker(patcher, 2, 0)
		}, "reached traced_fn+0x5 without entering tracer_func or other_func"},
		{"a pass that entered the callback before the window closed", func(f *feed) {
			f.insn(c, f.site(), "CALL", S)
			f.handlerRuns(c, "other_func", S-16)
			f.marker(patcher, 2, 0)
			f.insn(c, f.body(), "PUSH", S)
		}, ""},
		{"the window open again after the update", func(f *feed) {
			f.marker(patcher, 2, 0)
			f.insn(c, f.site(), "CALL", S)
			f.insn(c, f.body(), "PUSH", S)
			f.marker(patcher, 3, 0)
			f.insn(c, f.site(), "CALL", S)
			f.insn(c, f.body(), "PUSH", S)
		}, "reached traced_fn+0x5 without entering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "dyn-tramp-func", "missed-call")
			f.marker(patcher, 1, 0)
			tc.run(f)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) != 0 {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one finding saying %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

// TestMissedCallForbid feeds passes over ftrace-ops's forbid rules
// (tracer_a must never be entered from fn_b's site, from marker 1): a pass
// through fn_b that enters tracer_b, or no handler, is fine; one that
// enters tracer_a is a finding as it enters it.
func TestMissedCallForbid(t *testing.T) {
	const S = uint64(0xffffffff81111f00)
	c, patcher := ctx{cpu: 1, task: 2}, ctx{cpu: 0, task: 1}
	for _, tc := range []struct {
		name    string
		handler string // entered in the pass through fn_b, "" none
		want    string
	}{
		{"the list function calls fn_b's own tracer", "tracer_b", ""},
		{"the site is a nop", "", ""},
		{"the trampoline calls tracer_a for fn_b", "tracer_a", "entered tracer_a, which the contract forbids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "ftrace-ops", "missed-call")
			f.marker(patcher, 1, 0)
			site := f.sym("fn_b", 0)
			f.insn(c, site, "CALL", S)
			if tc.handler != "" {
				f.handlerRuns(c, tc.handler, S-0x50)
			}
			f.insn(c, site+5, "PUSH", S)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) != 0 {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) || res.Findings[0].Symbol != "fn_b" {
				t.Fatalf("want one finding at fn_b saying %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

package analyze_test

import (
	"strings"
	"testing"
)

// TestReturnSlotPartialOverwrite: a CALL pushes a genuine return address;
// a store overlapping that word (1, 2 or 4 bytes into it, or an unaligned
// 8-byte store straddling it) zeroes part of it before the RET pops it.
// The RET then goes nowhere a call produced and must be a finding, however
// narrow the store was; a store next to the word, not into it, leaves the
// CALL's word intact and the RET clean.
func TestReturnSlotPartialOverwrite(t *testing.T) {
	const slot = uint64(0xffffffff81111f00) // a task stack word
	for _, tc := range []struct {
		name    string
		addr    uint64 // the store (it writes zeros)
		size    uint32
		finding bool
	}{
		{"untouched", 0, 0, false},
		{"1 byte, top", slot + 7, 1, true},
		{"1 byte, low", slot, 1, true},
		{"2 bytes", slot + 6, 2, true},
		{"2 bytes, low", slot, 2, true},
		{"4 bytes, high half", slot + 4, 4, true},
		{"4 bytes, low half", slot, 4, true},
		{"8 bytes unaligned, over the high half", slot + 4, 8, true},
		{"8 bytes unaligned, over the low half", slot - 4, 8, true},
		{"8 bytes unaligned, one byte in", slot - 7, 8, true},
		{"1 byte just below", slot - 1, 1, false},
		{"4 bytes just below", slot - 4, 4, false},
		{"8 bytes just below", slot - 8, 8, false},
		{"1 byte just above", slot + 8, 1, false},
		{"8 bytes just above", slot + 8, 8, false},
		{"8 bytes unaligned, just above", slot + 8 + 3, 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "return-slot")
			c := ctx{cpu: 1, task: 2}
			ret := f.callReturn("caller_main")
			f.insn(c, ret-5, "CALL", slot+8)
			f.write(c, ret-5, slot, 8, ret, false)
			callee := f.sym("traced_fn", 0)
			f.insn(c, callee, "MOV", slot)
			if tc.size != 0 {
				f.write(c, callee, tc.addr, tc.size, 0, false)
			}
			f.insn(c, callee+8, "RET", slot)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "overwrote in part") {
				t.Errorf("message %q does not say the word was partly overwritten", res.Findings[0].Message)
			}
		})
	}
}

// TestReturnSlotUnalignedWords: the same with the CALL's word itself not
// 8-byte aligned (RSP is whatever the code made it).
func TestReturnSlotUnalignedWords(t *testing.T) {
	const slot = uint64(0xffffffff81111f04)
	for _, tc := range []struct {
		name    string
		addr    uint64
		size    uint32
		finding bool
	}{
		{"untouched", 0, 0, false},
		{"1 byte, top", slot + 7, 1, true},
		{"4 bytes at the aligned word above", slot + 4, 4, true},
		{"8 bytes aligned, over the low half", slot - 4, 8, true},
		{"4 bytes just below", slot - 4, 4, false},
		{"8 bytes aligned, just above", slot + 12, 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "return-slot")
			c := ctx{cpu: 1, task: 2}
			ret := f.callReturn("caller_main")
			f.insn(c, ret-5, "CALL", slot+8)
			f.write(c, ret-5, slot, 8, ret, false)
			callee := f.sym("traced_fn", 0)
			if tc.size != 0 {
				f.write(c, callee, tc.addr, tc.size, 0, false)
			}
			f.insn(c, callee+8, "RET", slot)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
		})
	}
}

// TestReturnSlotConsumedByAnotherTask: a per-CPU return slot filled by
// the int3 handler for the task it interrupted must be consumed by that
// task; another task reading it first takes a return address its own trap
// did not produce. A slot holding 0 (cleared) carries nothing to take.
func TestReturnSlotConsumedByAnotherTask(t *testing.T) {
	const slot = "ftrace_bp_call_return"
	for _, tc := range []struct {
		name     string
		value    uint64
		consumer uint32
		finding  bool
		load     bool // the read is a load row (format version 4), not percpu_read
	}{
		{"by the task it was filled for", 1, 2, false, false},
		{"by another task", 1, 3, true, false},
		{"cleared, by another task", 0, 3, false, false},
		{"load, by the task it was filled for", 1, 2, false, true},
		{"load, by another task", 1, 3, true, true},
		{"load, cleared, by another task", 0, 3, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "ftrace-emulate-percpu", "return-slot")
			v := tc.value
			if v != 0 {
				v = f.sym("lp_fn1", 5)
			}
			// Task 2's #BP handler (depth 1) fills the slot for task 2.
			f.percpuWrite(ctx{cpu: 1, task: 2, depth: 1}, f.sym("int3_hook", 0), slot, 1, v)
			if tc.load {
				f.percpuLoad(ctx{cpu: 1, task: tc.consumer}, f.sym("ftrace_emulate_call", 0), slot, 1, v)
			} else {
				f.percpuRead(ctx{cpu: 1, task: tc.consumer}, f.sym("ftrace_emulate_call", 0), slot, 1, v)
			}
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "filled at seq 0 for task 2") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestReturnSlotRedirectedReturn feeds hand-made events over
// ftrace-ipmodify's slice: traced_fn's fentry site calls
// ftrace_regs_caller, which stores regs->ip over the return address its
// CALL pushed and returns through it. A function's entry stored over that
// live word by the function that then returns through it is a return
// sent there on purpose (a livepatch's redirect to new_fn); popped by the
// traced function's own RET (a stack one word off, exc-tramp-nopop's
// forgotten pop), stored by another function (an undeclared hijack),
// stored after a RET already popped the word, stored as anything but an
// entry, or over a word a narrower store had touched, it is a finding.
func TestReturnSlotRedirectedReturn(t *testing.T) {
	const slot = uint64(0xffffffff81111f00) // a task stack word
	for _, tc := range []struct {
		name     string
		to       string // the function whose entry (plus off) is stored
		off      uint64
		popFirst bool // a RET popped the CALL's word before the store
		partial  bool // a 4-byte store touched the word before
		byCaller bool // the RET through it is traced_fn's, not the callee's
		byOther  bool // another function stores the entry
		finding  bool
	}{
		{"redirect to new_fn, callee returns", "new_fn", 0, false, false, false, false, false},
		{"redirect, the caller's RET pops it", "new_fn", 0, false, false, true, false, true},
		{"stored by another function", "new_fn", 0, false, false, false, true, true},
		{"not an entry", "new_fn", 1, false, false, false, false, true},
		{"the word was popped before", "new_fn", 0, true, false, false, false, true},
		{"the word was touched in part", "new_fn", 0, false, true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "ftrace-ipmodify", "return-slot")
			c := ctx{cpu: 1, task: 2}
			site := f.sym("traced_fn", 0)
			callee := f.sym("ftrace_regs_caller", 0)
			f.insn(c, site, "CALL", slot+8)
			f.write(c, site, slot, 8, site+5, false)
			f.insn(c, callee, "MOV", slot)
			if tc.popFirst {
				f.insn(c, callee+1, "RET", slot)
				f.insn(c, site+5, "MOV", slot+8)
			}
			if tc.partial {
				f.write(c, callee, slot, 4, uint64(uint32(site+5)), false)
			}
			by := callee + 2
			if tc.byOther {
				by = f.sym("ftrace_ops_list_func", 4)
			}
			f.write(c, by, slot, 8, f.sym(tc.to, tc.off), false)
			at := callee + 3
			if tc.byCaller {
				at = site + 9
			}
			f.insn(c, at, "RET", slot)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
		})
	}
}

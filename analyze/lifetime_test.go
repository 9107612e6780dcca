package analyze_test

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// Stacks of the hand-made streams: far apart, as the slice's are.
const (
	ltStackA uint64 = 0xffffc90000003f00 // cpu0 task 1
	ltStackB uint64 = 0xffffc90000013f00 // cpu1 task 2
	ltIST    uint64 = 0xffffc90000024000 // cpu1's IST stack top
)

func (f *feed) load(c ctx, rip, addr uint64, v uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindLoad, RIP: rip, Addr: addr, Size: 8, New: v})
}

// pf is a #PF delivered at rip for addr (CR2) with error code ec.
func (f *feed) pf(c ctx, rip, addr, ec, rsp uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindTrap, RIP: rip, Vector: 14, Handler: f.sym("asm_exc_page_fault", 0), RSP: rsp, Size: 48,
		Addr: addr, HasAddr: true, ErrCode: ec, HasErrCode: true})
}

// free runs svc(addr) and unmaps its one page, as the machine records it.
func (f *feed) free(c ctx, svc emu.ServiceID, addr uint64) uint64 {
	seq := f.service(c, svc, addr)
	f.add(c, &format.Row{Kind: format.KindPerm, Addr: addr, Size: 1, PermOld: 3, PermNew: 0, Service: format.Service(svc)})
	return seq
}

// TestLifetimeDeadFrame: a load by another CPU below a stack's RSP (in a
// frame its owner left) is a finding naming the owner and when the frame
// died; the same load above the RSP, below the lowest RSP the stack ever
// had, or by the owner itself is not.
func TestLifetimeDeadFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		by      ctx
		addr    uint64
		finding bool
	}{
		{"another CPU below the RSP", ctx{cpu: 1, task: 2}, ltStackA - 0x80, true},
		{"another CPU above the RSP", ctx{cpu: 1, task: 2}, ltStackA + 8, false},
		{"below what the stack ever used", ctx{cpu: 1, task: 2}, ltStackA - 0x200, false},
		{"the owner itself", ctx{cpu: 0, task: 1}, ltStackA - 0x80, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			owner := ctx{cpu: 0, task: 1}
			fn := f.sym("text_poke_bp", 0)
			f.insn(owner, fn, "PUSH", ltStackA)
			f.insn(owner, fn+1, "SUB", ltStackA-0x100) // a frame of 0x100 bytes
			rise := f.insn(owner, fn+2, "ADD", ltStackA-0x100)
			f.insn(owner, fn+3, "NOP", ltStackA) // the frame is gone
			f.insn(ctx{cpu: 1, task: 2}, f.sym("traced_fn", 0), "NOP", ltStackB)
			if tc.by.cpu == 0 {
				f.insn(tc.by, fn+4, "MOV", ltStackA)
			} else {
				f.insn(tc.by, f.sym("poke_int3_handler", 0), "MOV", ltStackB)
			}
			acc := f.load(tc.by, f.sym("poke_int3_handler", 0), tc.addr, 1)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if !tc.finding {
				return
			}
			fd := res.Findings[0]
			for _, want := range []string{"8-byte load at", "poke_int3_handler", "dead frame of the stack of task 1 (cpu0)", "at seq " + itoa(rise), "text_poke_bp+0x2"} {
				if !strings.Contains(fd.Message, want) {
					t.Errorf("message %q lacks %q", fd.Message, want)
				}
			}
			if fd.CPU != 1 || fd.SeqLast != acc || fd.SeqFirst != rise {
				t.Errorf("cpu %d seqs %d..%d, want cpu1 %d..%d", fd.CPU, fd.SeqFirst, fd.SeqLast, rise, acc)
			}
		})
	}
}

// TestLifetimeDeadFrameFetch: executing code in another context's dead
// frame (a trampoline built on the stack, say) is a finding; in its live
// part it is not.
func TestLifetimeDeadFrameFetch(t *testing.T) {
	for _, tc := range []struct {
		rip     uint64
		finding bool
	}{{ltStackA - 0x40, true}, {ltStackA + 0x10, false}} {
		f := newFeed(t, "text-poke-bp", "lifetime")
		owner, other := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
		fn := f.sym("text_poke_bp", 0)
		f.insn(owner, fn, "SUB", ltStackA)
		f.insn(owner, fn+1, "ADD", ltStackA-0x100)
		f.insn(owner, fn+2, "NOP", ltStackA)
		f.insn(other, f.sym("traced_fn", 0), "CALL", ltStackB)
		f.insn(other, tc.rip, "NOP", ltStackB-8)
		res := f.finish()
		if got := len(res.Findings) > 0; got != tc.finding {
			t.Fatalf("fetch at %#x: finding %v, want %v:\n%s", tc.rip, got, tc.finding, summary(res))
		}
		if tc.finding && !strings.HasPrefix(res.Findings[0].Message, "instruction fetch at ") {
			t.Errorf("message %q", res.Findings[0].Message)
		}
	}
}

// TestLifetimeDeliveryPushes: the words a delivery pushes onto an IST
// stack below where its last handler left RSP are the CPU's own; the same
// store by the CPU not followed by that delivery is a finding (another
// context's dead frame).
func TestLifetimeDeliveryPushes(t *testing.T) {
	for _, delivered := range []bool{true, false} {
		name := "then delivered"
		if !delivered {
			name = "no delivery"
		}
		t.Run(name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c1 := ctx{cpu: 1, task: 2}
			h := f.sym("asm_exc_nmi", 0)
			f.insn(c1, f.sym("traced_fn", 0), "NOP", ltStackB)
			f.trap(c1, f.sym("traced_fn", 1), 2, h, ltIST-40) // NMI on the IST stack
			in := ctx{cpu: 1, task: 2, depth: 1}
			f.insn(in, h, "SUB", ltIST-40)
			f.insn(in, h+1, "ADD", ltIST-0x100)
			f.insn(in, h+1, "IRETQ", ltIST-40) // [-0x100, -40) is dead now
			f.iret(c1, h+1, f.sym("traced_fn", 1), ltStackB)
			f.insn(c1, f.sym("traced_fn", 1), "NOP", ltStackB)
			// Task 5 runs on cpu1 next (on its own stack) and takes a
			// #DF-like delivery on the IST stack: with its error code
			// it pushes 48 bytes, the lowest word in the dead part.
			f.switchTo(c1, 5)
			c1 = ctx{cpu: 1, task: 5}
			f.insn(c1, f.sym("traced_fn", 1), "NOP", ltStackB+0x20000)
			f.write(c1, f.sym("traced_fn", 2), ltIST-48, 8, 0, false)
			if delivered {
				f.add(c1, &format.Row{Kind: format.KindTrap, RIP: f.sym("traced_fn", 2), Vector: 8, Handler: h, RSP: ltIST - 48, Size: 48, HasErrCode: true})
			} else {
				f.insn(c1, f.sym("traced_fn", 2), "NOP", ltStackB+0x20000)
			}
			res := f.finish()
			if got := len(res.Findings) > 0; got == delivered {
				t.Fatalf("finding %v, want %v:\n%s", got, !delivered, summary(res))
			}
		})
	}
}

// TestLifetimeFreed: an access that faults in a page vfree or
// module_memfree released is a finding naming the free; one in the guard
// page after it, or in a freed page mapped again, is not.
func TestLifetimeFreed(t *testing.T) {
	const page = slice.ModuleBase
	for _, tc := range []struct {
		name    string
		svc     emu.ServiceID
		addr    uint64
		remap   bool
		finding string
	}{
		{"vfree", emu.SvcVfree, page + 8, false, "load (a #PF) at 0xffffffffa0000008"},
		{"module_memfree", emu.SvcModuleFree, page + 8, false, "released at seq 1 by module_memfree(0xffffffffa0000000)"},
		{"the guard page", emu.SvcVfree, page + 0x1008, false, ""},
		{"mapped again", emu.SvcVfree, page + 8, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			f.insn(c0, f.sym("patcher_main", 0), "CALL", ltStackA)
			f.free(c0, tc.svc, page)
			if tc.remap {
				f.perm(c0, page, 1, 0, 3)
			}
			f.insn(c1, f.sym("traced_fn", 0), "MOV", ltStackB)
			f.pf(c1, f.sym("traced_fn", 0), tc.addr, 0, ltStackB-48)
			res := f.finish()
			if got := len(res.Findings) > 0; got != (tc.finding != "") {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding != "", summary(res))
			}
			if tc.finding != "" && !strings.Contains(res.Findings[0].Message, tc.finding) {
				t.Errorf("message %q lacks %q", res.Findings[0].Message, tc.finding)
			}
		})
	}
}

// TestLifetimePokeFreed: a text_poke whose target or source lies in a
// page module_memfree released is a finding naming the free, placed at the
// call of text_poke (the machine oopses in the service: no access row
// follows); one into the guard page after it, or into the page mapped
// again, is not.
// f0text is a target in the slice's text (the linked text base).
const f0text = 0xffffffff81000000

func TestLifetimePokeFreed(t *testing.T) {
	const page = slice.ModuleBase
	for _, tc := range []struct {
		name     string
		dst, src uint64
		remap    bool
		finding  string
	}{
		{"target freed", page + 0x10, 0, false, "text_poke of 5 byte(s) at 0xffffffffa0000010 by text_poke_bp"},
		{"source freed", f0text, page + 0x10, false, "text_poke's read of its 5-byte source at 0xffffffffa0000010"},
		{"straddles into freed", page - 2, 0, false, "text_poke of 5 byte(s) at 0xffffffff9ffffffe by text_poke_bp (base/alternative.c:102)"},
		{"the guard page", page + 0x1000, 0, false, ""},
		{"mapped again", page + 0x10, 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c0 := ctx{cpu: 0, task: 1}
			f.insn(c0, f.sym("patcher_main", 0), "CALL", ltStackA)
			f.free(c0, emu.SvcModuleFree, page)
			if tc.remap {
				f.perm(c0, page, 1, 0, 3)
			}
			f.insn(c0, f.sym("text_poke_bp", 0), "CALL", ltStackA-8)
			f.service(c0, emu.SvcTextPoke, tc.dst, tc.src, 5)
			res := f.finish()
			if got := len(res.Findings) > 0; got != (tc.finding != "") {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding != "", summary(res))
			}
			if tc.finding == "" {
				return
			}
			fd := res.Findings[0]
			if !strings.Contains(fd.Message, tc.finding) {
				t.Errorf("message %q lacks %q", fd.Message, tc.finding)
			}
			if fd.RIP != f.sym("text_poke_bp", 0) {
				t.Errorf("finding at %#x, want the call of text_poke at %#x", fd.RIP, f.sym("text_poke_bp", 0))
			}
		})
	}
}

// TestLifetimeResume: freeing code a switched-out task holds a return
// address into is a finding at the free naming the task; once the task
// has returned (its RSP rose over the word) it is not. A text_poke over a
// resume address strictly inside the range is a finding, one at the
// range's first byte (an instruction start) is not.
func TestLifetimeResume(t *testing.T) {
	const page = slice.ModuleBase
	for _, tc := range []struct {
		name     string
		returned bool
		poke     uint64 // 0: free the page; else text_poke(poke, 5)
		finding  bool
	}{
		{"freed under a preempted task", false, 0, true},
		{"freed after it returned", true, 0, false},
		{"rewritten inside", false, page + 0x10, true},
		{"rewritten at its start", false, page + 0x11, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 3}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			f.insn(c1, page+0x10, "CALL", ltStackB)                                 // the trampoline calls a handler: returns to page+0x11
			f.insn(c1, f.sym("handler", 0), "NOP", ltStackB-8)                      // in the handler
			f.trap(c1, f.sym("handler", 0), 0xec, f.sym("handler", 0), ltStackB-48) // the timer
			f.switchTo(ctx{cpu: 1, task: 3, depth: 1}, 4)                           // preempted
			if tc.returned {
				f.switchTo(ctx{cpu: 1, task: 4}, 3)
				f.insn(c1, f.sym("handler", 1), "RET", ltStackB-8)
				f.insn(c1, page+0x11, "NOP", ltStackB)
				f.insn(c1, f.sym("traced_fn", 0), "NOP", ltStackB)
			}
			var at uint64
			if tc.poke == 0 {
				f.insn(c0, f.sym("patcher_main", 5), "CALL", ltStackA)
				at = f.free(c0, emu.SvcVfree, page)
			} else {
				f.insn(c0, f.sym("patcher_main", 5), "CALL", ltStackA)
				at = f.service(c0, emu.SvcTextPoke, tc.poke, 0, 5)
			}
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if !tc.finding {
				return
			}
			fd := res.Findings[0]
			// A free and a rewrite are unsafe for different reasons, and
			// the finding gives its own.
			why := "synchronize_rcu_tasks() waits out a task preempted there, not one asleep in a function it called"
			if tc.poke != 0 {
				why = "text_poke_bp()'s int3 guards only an instruction's first byte, so what it replaces must be one instruction"
			}
			for _, want := range []string{"task 3 (cpu1, switched out (preempted) at seq", "a return address into it", "0xffffffffa0000011", why} {
				if !strings.Contains(fd.Message, want) {
					t.Errorf("message %q lacks %q", fd.Message, want)
				}
			}
			if fd.CPU != 0 || fd.SeqLast != at || fd.Where != "patcher_main+0x5" {
				t.Errorf("finding at cpu%d seq %d %s, want cpu0 seq %d patcher_main+0x5", fd.CPU, fd.SeqLast, fd.Where, at)
			}
		})
	}
}

// TestLifetimeWarnsWithoutLoads: a trace without load rows is judged by
// stores and fetches alone, and the result says so.
func TestLifetimeWarnsWithoutLoads(t *testing.T) {
	md := hostileMeta(t) // text-poke-bp's, as a trace without loads says it
	md.Loads = false
	live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "lifetime")})
	if err != nil {
		t.Fatal(err)
	}
	res := live.Finish()
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "lifetime: the trace records no loads") {
		t.Fatalf("warnings %q", res.Warnings)
	}
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// TestLifetimeHostileBounded: a stream built to grow the analyzer's state
// without end (a new stack at every row, a stack whose RSP rises a word
// at a time, calls that never return, thousands of freed pages, more
// pointers into a dead frame than a CPU's ring holds) keeps it
// bounded, the analyzer still reports, and the result says what the
// bounds made it forget (incomplete, never clean).
func TestLifetimeHostileBounded(t *testing.T) {
	f := newFeed(t, "text-poke-bp", "lifetime")
	c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
	fn := f.sym("traced_fn", 0)
	// What the analyzer keeps after the stream, over what was live
	// before it (other tests of the package keep caches of built-in
	// scenarios; garbage is the collector's business, not a bound).
	base := liveHeap()
	for i := uint64(0); i < 200_000; i++ { // a new stack each time
		f.insn(c0, fn, "NOP", 0xffffc90000000000+i<<20)
	}
	bottom := ltStackA - 0x100000
	for i := uint64(0); i < 60_000; i++ { // calls that never return
		f.insn(c0, fn, "CALL", bottom+0x100000-8*i)
	}
	for i := uint64(0); i < 60_000; i++ { // RSP rising a word at a time
		f.insn(c0, fn, "NOP", bottom+8*i)
	}
	for i := uint64(0); i < 20_000; i++ {
		f.free(c0, emu.SvcVfree, slice.ModuleBase+i<<12)
	}
	after := liveHeap()
	kept := after - min(base, after)
	f.insn(c1, fn, "NOP", ltStackB)
	for i := 0; i < 3*8; i++ { // pointers into a dead frame, more than a CPU's ring holds
		f.load(c1, fn, fn+8, low(ltStackA))
	}
	f.load(c1, fn, low(ltStackA), 0)
	res := f.finish()
	t.Logf("%.1f MiB live after the stream over the %.1f MiB before", float64(kept)/(1<<20), float64(base)/(1<<20))
	if kept > 16<<20 {
		t.Errorf("%d MiB more live after the stream: the analyzer's state grows with it", kept>>20)
	}
	if len(res.Findings) == 0 {
		t.Errorf("no finding for the load from the dead part of a bounded stack")
	}
	// What the bounds made it forget is said, and the result is not clean.
	if res.Verdict != analyze.VerdictIncomplete || !strings.Contains(res.Incomplete, "lifetime could not check: ") ||
		!strings.Contains(res.Incomplete, "stacks were forgotten") || !strings.Contains(res.Incomplete, "return addresses or interrupted RIPs were not kept") ||
		!strings.Contains(res.Incomplete, "freed ranges were forgotten") || !strings.Contains(res.Incomplete, "pointers into ended frames were forgotten") {
		t.Errorf("verdict %s, incomplete %q", res.Verdict, res.Incomplete)
	}
}

func low(top uint64) uint64 { return top - 0x100000 + 8 }

// liveHeap is the heap still reachable after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLifetimeCopiedFrameReturned: an NMI whose entry copies its hardware
// frame and returns through the copy (the base's nested-NMI entry) leaves
// the original frame on its IST stack above the copy; once the IRETQ has
// resumed the interrupted context, the RIP in that frame is no resume
// address, and a text_poke over it is not a finding. Before the IRETQ it
// is (the task is still interrupted there).
func TestLifetimeCopiedFrameReturned(t *testing.T) {
	const page = slice.ModuleBase
	for _, returned := range []bool{true, false} {
		t.Run(map[bool]string{true: "returned", false: "still in the NMI"}[returned], func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 3}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			f.insn(c1, page+0x10, "NOP", ltStackB)
			f.trap(c1, page+0x11, 2, f.sym("asm_exc_nmi", 0), ltIST-40) // the hardware frame at the IST top
			nmi := ctx{cpu: 1, task: 3, depth: 1}
			f.insn(nmi, f.sym("asm_exc_nmi", 0), "NOP", ltIST-40)
			f.insn(nmi, f.sym("asm_exc_nmi", 1), "NOP", ltIST-200) // on the copy, below NMI_HEADER
			if returned {
				f.iret(c1, f.sym("asm_exc_nmi", 2), page+0x11, ltStackB)
				f.insn(c1, page+0x11, "NOP", ltStackB)
				f.insn(c1, f.sym("traced_fn", 0), "NOP", ltStackB)
			}
			f.insn(c0, f.sym("patcher_main", 5), "CALL", ltStackA)
			f.service(c0, emu.SvcTextPoke, page, 0, 0x20)
			res := f.finish()
			if got := len(res.Findings) > 0; got == returned {
				t.Fatalf("finding %v, want %v:\n%s", got, !returned, summary(res))
			}
			if !returned && !strings.Contains(res.Findings[0].Message, "the RIP a NMI interrupted there") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestLifetimeCatalog: the catalog's lifetime scenarios report what their
// mechanism did, with the cause in the story: tramp-free-nowait frees the
// trampoline under a preempted worker (the finding at the free names the
// task, and its story the call that pushed the return address and the
// switch that preempted it) and the worker's fetch in the freed page
// names the free; tramp-free, which waits in synchronize_rcu_tasks(), is
// clean. text-poke-bp-desc-stack takes a reference in the patcher's dead
// frame; text-poke-bp-desc, whose descriptor is a static object, is clean;
// text-poke-bp-desc-reuse takes it through the stale pointer in the
// patcher's next frame.
func TestLifetimeCatalog(t *testing.T) {
	spec := testkit.Load(t, "tramp-free-nowait", nil)
	res := analyzeRun(t, spec, emu.Options{Seed: 1})
	var atFree, fetch *analyze.Finding
	for _, f := range res.Findings {
		if f.Analyzer != "lifetime" {
			continue
		}
		switch {
		case f.Symbol == "freer_main" && strings.Contains(f.Message, "switched out (preempted)"):
			atFree = f
		case strings.Contains(f.Message, "instruction fetch (a #PF)"):
			fetch = f
		}
	}
	if atFree == nil || fetch == nil {
		t.Fatalf("want a finding at the free naming the preempted task and one at the fetch:\n%s", summary(res))
	}
	story := strings.Join(atFree.Story, "\n")
	for _, want := range []string{"executes call at 0xffffffffa000", "switches task", "calls module_memfree(0xffffffffa0000000"} {
		if !strings.Contains(story, want) {
			t.Errorf("the free's story lacks %q:\n%s", want, story)
		}
	}
	if atFree.CPU != 0 || atFree.Source != "lib/tramp-free/free.c:123" || !strings.Contains(atFree.Message, "released 0xffffffffa0000000..0xffffffffa0001000") {
		t.Errorf("finding at the free: cpu%d %s %q", atFree.CPU, atFree.Source, atFree.Message)
	}
	if fetch.CPU != 1 || !strings.Contains(fetch.Message, "module_memfree(0xffffffffa0000000) on cpu0 task 1, called from freer_main") {
		t.Errorf("finding at the fetch: cpu%d %q", fetch.CPU, fetch.Message)
	}
	clean := analyzeRun(t, testkit.Load(t, "tramp-free", nil), emu.Options{Seed: 1})
	if clean.Verdict != analyze.VerdictClean {
		t.Errorf("tramp-free: %s:\n%s", clean.Verdict, summary(clean))
	}

	// text-poke-bp-desc-stack: a CPU takes its reference in the
	// patcher's returned frame; the finding names the patcher's stack,
	// the instruction that ended the frame and the load of bp_desc that
	// gave the CPU the address while the frame was live, and the story
	// shows all three and the late load.
	res = analyzeRun(t, testkit.Load(t, "text-poke-bp-desc-stack", nil), emu.Options{Seed: 1})
	var dead *analyze.Finding
	for _, f := range res.Findings {
		if f.Analyzer != "lifetime" {
			t.Errorf("text-poke-bp-desc-stack: unexpected %s finding: %s", f.Analyzer, f.Message)
		} else if dead == nil {
			dead = f
		}
	}
	if dead == nil {
		t.Fatalf("text-poke-bp-desc-stack: no lifetime finding:\n%s", summary(res))
	}
	if dead.CPU == 0 || dead.Symbol != "int3_hook" || !strings.Contains(dead.Message, "into a dead frame of the stack of task 1 (cpu0)") ||
		!strings.Contains(dead.Message, "when cpu0 task 1 at text_poke_bp_batch") ||
		!strings.Contains(dead.Message, "from bp_desc at seq") || !strings.Contains(dead.Message, "before the frame died") {
		t.Errorf("text-poke-bp-desc-stack: cpu%d %s %q", dead.CPU, dead.Symbol, dead.Message)
	}
	story = strings.Join(dead.Story, "\n")
	for _, want := range []string{"reads bp_desc = task_stacks+", "cpu0 task 1: executes ", "(trap depth 1): int3_hook+", "reads task_stacks+"} {
		if !strings.Contains(story, want) {
			t.Errorf("text-poke-bp-desc-stack's story lacks %q:\n%s", want, story)
		}
	}
	clean = analyzeRun(t, testkit.Load(t, "text-poke-bp-desc", nil), emu.Options{Seed: 1})
	if clean.Verdict != analyze.VerdictClean {
		t.Errorf("text-poke-bp-desc: %s:\n%s", clean.Verdict, summary(clean))
	}

	// text-poke-bp-desc-reuse: the patcher's next batch covers the old
	// descriptor's words before the late handler reads through its
	// pointer; the access is in a live frame, and the finding is the
	// stale pointer's: its load, the frame's end and the reuse.
	res = analyzeRun(t, testkit.Load(t, "text-poke-bp-desc-reuse", nil), emu.Options{Seed: 1})
	var stale *analyze.Finding
	for _, f := range res.Findings {
		if f.Analyzer == "lifetime" && strings.Contains(f.Message, "through a stale pointer") {
			stale = f
			break
		}
	}
	if stale == nil {
		t.Fatalf("text-poke-bp-desc-reuse: no stale-pointer finding:\n%s", summary(res))
	}
	if stale.CPU == 0 || stale.Symbol != "int3_hook" || !strings.Contains(stale.Message, "into the stack of task 1 (cpu0)") ||
		!strings.Contains(stale.Message, "from bp_desc at seq") || !strings.Contains(stale.Message, "while that frame was live") ||
		!strings.Contains(stale.Message, "at text_poke_bp_batch") || !strings.Contains(stale.Message, "reused the words from seq") {
		t.Errorf("text-poke-bp-desc-reuse: cpu%d %s %q", stale.CPU, stale.Symbol, stale.Message)
	}
	story = strings.Join(stale.Story, "\n")
	for _, want := range []string{"reads bp_desc = ", "cpu0 task 1: executes ", "(trap depth 1): int3_hook+"} {
		if !strings.Contains(story, want) {
			t.Errorf("text-poke-bp-desc-reuse's story lacks %q:\n%s", want, story)
		}
	}
}

// TestLifetimeResumePath: a task interrupted where its straight-line code
// jumps into the instruction text_poke_bp is writing (a kprobe's boost
// slot jumping back behind the probed instruction, as optprobe-nowait) is
// a finding at the poke of the instruction's rest, which with the int3
// poked just before covers it from the int3 on; a jump to the
// instruction's first byte, or the same poke not preceded by the int3 (no
// instruction known to start before it), is not.
func TestLifetimeResumePath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		toOff   uint64 // the slot's jmp target: site + toOff
		int3    bool   // the int3 poke comes first
		finding bool
	}{
		{"into the instruction", 1, true, true},
		{"to its first byte", 0, true, false},
		{"no int3 poke first", 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 3}
			site := f.sym("traced_fn", 0)
			slot := f.sym("patcher_main", 0x40) // scratch text: nop; jmp site+toOff
			src := f.sym("patcher_main", 0x80)  // the int3 byte text_poke copies
			rel := uint32(site + tc.toOff - (slot + 1 + 5))
			f.write(c0, 0, slot, 1, 0x90, true)
			f.write(c0, 0, slot+1, 1, 0xe9, true)
			f.write(c0, 0, slot+2, 4, uint64(rel), true)
			f.write(c0, 0, src, 1, 0xcc, true)
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			f.insn(c1, slot, "NOP", ltStackB)
			f.trap(c1, slot, 0xec, f.sym("handler", 0), ltStackB-48) // interrupted at the slot
			f.switchTo(ctx{cpu: 1, task: 3, depth: 1}, 4)
			if tc.int3 {
				f.service(c0, emu.SvcTextPoke, site, src, 1)
			}
			f.insn(c0, f.sym("patcher_main", 5), "CALL", ltStackA)
			f.service(c0, emu.SvcTextPoke, site+1, src, 4)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "whose straight-line path jumps at patcher_main+0x41") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestLifetimeStalePointer: a context that loaded a pointer into another
// stack's frame from memory that is no stack (a published descriptor),
// and accesses through it after the owner left that frame and called
// deeper again (the words are a newer frame's now, live), uses the frame
// after its scope: a finding naming the load, the scope's end and the
// reuse. The same access while the owner is still in the frame (a patcher
// that waits for the references to drop), through a pointer loaded again
// after the reuse (the new frame's object, published anew), past the
// return address above the object, or by a later handler invocation that
// loaded no pointer is not.
func TestLifetimeStalePointer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ended   bool // the owner returns from the frame
		reload  bool // the handler loads the pointer again after the reuse
		off     uint64
		newInv  bool // the access is by a later handler invocation
		finding bool
	}{
		{"reused frame", true, false, 8, false, true},
		{"frame still live", false, false, 8, false, false},
		{"pointer loaded again", true, true, 8, false, false},
		{"past the return address", true, false, 0x80, false, false},
		{"a later handler", true, false, 8, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			owner, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			h := ctx{cpu: 1, task: 2, depth: 1}
			fn, hook := f.sym("text_poke_bp", 0), f.sym("poke_int3_handler", 0)
			global := f.sym("traced_fn", 0x10) // where the pointer is published: no stack
			desc := ltStackA - 0x80            // the descriptor in text_poke_bp's frame
			f.insn(owner, f.sym("patcher_main", 0), "CALL", ltStackA)
			f.insn(owner, fn, "SUB", ltStackA-8)
			f.insn(owner, fn+1, "NOP", ltStackA-0x100) // the frame [-0x100, -8)
			f.insn(c1, f.sym("traced_fn", 0), "NOP", ltStackB)
			f.trap(c1, f.sym("traced_fn", 1), 3, hook, ltStackB-40)
			f.insn(h, hook, "MOV", ltStackB-40)
			ptr := f.load(h, hook, global, desc)
			f.load(h, hook+1, desc, 1) // while live: fine
			var rise, reuse uint64
			if tc.ended {
				rise = f.insn(owner, fn+2, "ADD", ltStackA-0x100)
				f.insn(owner, fn+3, "RET", ltStackA-8)
				f.insn(owner, f.sym("patcher_main", 5), "CALL", ltStackA) // the frame is gone
				reuse = f.insn(owner, fn, "SUB", ltStackA-8)
				f.insn(owner, fn+1, "NOP", ltStackA-0x100) // a new frame over the same words
			}
			if tc.reload {
				f.load(h, hook+2, global, desc)
			}
			if tc.newInv {
				f.iret(c1, f.sym("traced_fn", 0), f.sym("traced_fn", 1), ltStackB)
				f.insn(c1, f.sym("traced_fn", 1), "NOP", ltStackB)
				f.trap(c1, f.sym("traced_fn", 2), 3, hook, ltStackB-40)
				f.insn(h, hook, "MOV", ltStackB-40)
			}
			acc := f.load(h, hook+3, desc+tc.off, 1)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if !tc.finding {
				return
			}
			fd := res.Findings[0]
			for _, want := range []string{"8-byte load at " + hex(desc+8), "through a stale pointer into the stack of task 1 (cpu0)",
				"loaded the pointer " + hex(desc) + " from traced_fn+0x10 at seq " + itoa(ptr), "while that frame was live",
				"scope ended at seq " + itoa(rise), "at text_poke_bp+0x2", "at text_poke_bp (", "reused the words from seq " + itoa(reuse), "use after scope"} {
				if !strings.Contains(fd.Message, want) {
					t.Errorf("message %q lacks %q", fd.Message, want)
				}
			}
			if fd.CPU != 1 || fd.SeqFirst != ptr || fd.SeqLast != acc {
				t.Errorf("cpu%d seqs %d..%d, want cpu1 %d..%d", fd.CPU, fd.SeqFirst, fd.SeqLast, ptr, acc)
			}
		})
	}
}

func hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

// TestLifetimeSwitchedInOnOldStack: between pt_switch and switch_to the
// CPU runs as the next task on the previous task's stack, at the RSP the
// previous task left (the rows change task, RSP does not). An int3
// delivered there on an IST stack whose handler emulates a push onto the
// interrupted stack (int3_emulate_push, below the interrupted RSP, over
// the slot pt_switch's return address died in) is the interrupted
// context's own doing, not a finding: the stack's last user is the task
// the rows name now. The same store by another CPU is one (the slot is a
// dead frame), so the quiet case is the exemption, not a blind spot.
func TestLifetimeSwitchedInOnOldStack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		by      ctx
		finding bool
	}{
		{"the interrupted next task's int3 handler", ctx{cpu: 1, task: 3, depth: 1}, false},
		{"another CPU", ctx{cpu: 0, task: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "lifetime")
			prev, next := ctx{cpu: 1, task: 2}, ctx{cpu: 1, task: 3}
			sched := f.sym("schedule", 0)
			f.insn(prev, sched, "CALL", ltStackB)                          // call pt_switch: its return address at ltStackB-8
			rise := f.insn(prev, f.sym("pt_switch", 0), "RET", ltStackB-8) // the native stub returns
			f.insn(prev, sched+5, "MOV", ltStackB)                         // [ltStackB-8, ltStackB) is dead
			f.switchTo(prev, 3)
			f.insn(next, sched+8, "MOV", ltStackB) // the next task, still on the previous task's stack
			f.insn(ctx{cpu: 0, task: 1}, f.sym("patcher_main", 0), "NOP", ltStackA)
			h := f.sym("asm_exc_int3", 0)
			f.trap(next, sched+11, 3, h, ltIST-40) // #BP on cpu1's IST stack
			in := ctx{cpu: 1, task: 3, depth: 1}
			f.insn(in, h, "MOV", ltIST-40)
			if tc.by == in {
				f.write(in, h+1, ltStackB-8, 8, sched+16, false) // int3_emulate_push onto the interrupted stack
				f.insn(in, h+4, "NOP", ltIST-40)
			} else {
				f.write(tc.by, f.sym("patcher_main", 1), ltStackB-8, 8, 0, false)
				f.insn(tc.by, f.sym("patcher_main", 4), "NOP", ltStackA)
			}
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "at seq "+itoa(rise)) {
				t.Errorf("message %q lacks the rise at seq %d", res.Findings[0].Message, rise)
			}
		})
	}
}

package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestFrameStores: a #BP frame delivered on task 2's stack at frameAt
// (RIP, CS, RFLAGS, RSP, SS upwards), then one store. Its CS and SS words
// may be written by no one; its RIP, RSP and RFLAGS words by its own
// handler only (same CPU and task, one trap depth deeper); a store next to
// the frame, after its IRETQ, or into the hardware frame after the handler
// moved it, is no finding; the delivery's own pushes are not either.
func TestFrameStores(t *testing.T) {
	const frameAt = uint64(0xffffffff81111f00)
	task := ctx{cpu: 1, task: 2}
	handler := ctx{cpu: 1, task: 2, depth: 1}
	for _, tc := range []struct {
		name    string
		by      ctx
		addr    uint64
		size    uint32
		iret    bool // the frame's IRETQ ran before the store
		move    bool // the handler copied the frame below it first
		nmi     bool // an NMI is delivered in the middle of the copy
		finding string
	}{
		{"handler rewrites RIP", handler, frameAt, 8, false, false, false, ""},
		{"handler rewrites RSP", handler, frameAt + 24, 8, false, false, false, ""},
		{"handler rewrites RFLAGS", handler, frameAt + 16, 8, false, false, false, ""},
		{"handler writes SS", handler, frameAt + 32, 8, false, false, false, "saved SS word"},
		{"handler writes one byte of CS", handler, frameAt + 9, 1, false, false, false, "saved CS word"},
		{"other CPU writes RIP", ctx{cpu: 2, task: 3}, frameAt, 8, false, false, false, "saved RIP word"},
		{"nested NMI writes RIP", ctx{cpu: 1, task: 2, depth: 2}, frameAt, 8, false, false, false, "saved RIP word"},
		{"interrupted task writes RSP", task, frameAt + 24, 8, false, false, false, "saved RSP word"},
		{"store just above the frame", handler, frameAt + 40, 8, false, false, false, ""},
		{"store just below the frame", ctx{cpu: 2, task: 3}, frameAt - 8, 8, false, false, false, ""},
		{"SS after the IRETQ", handler, frameAt + 32, 8, true, false, false, ""},
		{"old SS after the move", handler, frameAt + 32, 8, false, true, false, ""},
		{"moved frame's SS", handler, frameAt - 0x100 + 32, 8, false, true, false, "saved SS word"},
		// The NMI's delivery pushes the same SS and CS values on its own
		// stack, in the copying handler's context: not the copy.
		{"old SS after a move an NMI interrupted", handler, frameAt + 32, 8, false, true, true, ""},
		{"moved frame's SS after a move an NMI interrupted", handler, frameAt - 0x100 + 32, 8, false, true, true, "saved SS word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "int3-emulate-call", "frame")
			site := f.sym("traced_fn", 1)
			entry := f.sym("asm_exc_int3", 0)
			f.insn(task, site-1, "NOP", frameAt+0x48) // the int3
			// The delivery's pushes (SS first), then the trap row.
			for i, v := range []uint64{0x18, frameAt + 0x48, 0x246, 0x10, site} {
				f.write(task, site, frameAt+32-8*uint64(i), 8, v, false)
			}
			f.trap(task, site, 3, entry, frameAt)
			f.insn(handler, entry, "PUSH", frameAt)
			if tc.move {
				// The gap entry's copy, SS first, 0x100 bytes down.
				for i, v := range []uint64{0x18, frameAt + 0x48, 0x246, 0x10, site} {
					if tc.nmi && i == 2 {
						const nmiAt = uint64(0xffffffff8100cfd8)
						for j, w := range []uint64{0x18, frameAt - 0x100 + 24, 0x2, 0x10, entry + 8} {
							f.write(handler, entry+8, nmiAt+32-8*uint64(j), 8, w, false)
						}
						f.trap(handler, entry+8, 2, f.sym("asm_exc_nmi", 0), nmiAt)
						f.insn(ctx{cpu: 1, task: 2, depth: 2}, f.sym("asm_exc_nmi", 0), "PUSH", nmiAt)
						f.insn(ctx{cpu: 1, task: 2, depth: 2}, f.sym("asm_exc_nmi", 0x10), "IRETQ", nmiAt)
						f.iret(handler, f.sym("asm_exc_nmi", 0x10), entry+8, frameAt-0x100+24)
					}
					f.write(handler, entry, frameAt-0x100+32-8*uint64(i), 8, v, false)
				}
			}
			if tc.iret {
				f.insn(handler, entry+0x40, "IRETQ", frameAt)
				f.iret(task, entry+0x40, site, frameAt+0x48)
			}
			store := f.sym("do_int3", 0)
			f.insn(tc.by, store, "MOV", frameAt-0x200)
			f.write(tc.by, store, tc.addr, tc.size, 0x1234, false)
			f.insn(tc.by, store+4, "NOP", frameAt-0x200)
			res := f.finish()
			if tc.finding == "" {
				if len(res.Findings) > 0 {
					t.Fatalf("want no finding, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 {
				t.Fatalf("want one finding, got:\n%s", summary(res))
			}
			fd := res.Findings[0]
			if fd.Analyzer != "frame" || fd.CPU != int(tc.by.cpu) || fd.Symbol != "do_int3" || !strings.Contains(fd.Message, tc.finding) || !strings.Contains(fd.Message, "live #BP frame") {
				t.Errorf("finding %s cpu%d %s: %s; want frame cpu%d do_int3 %q", fd.Analyzer, fd.CPU, fd.Symbol, fd.Message, tc.by.cpu, tc.finding)
			}
		})
	}
}

// TestFrameNestedDelivery: a second NMI delivered at the top of the IST
// stack while the first NMI's frame there is live is a finding naming both
// deliveries; after the first NMI's IRETQ, or once its handler moved its
// frame off the IST top (the nested-NMI protocol), it is not.
func TestFrameNestedDelivery(t *testing.T) {
	const istTop = uint64(0xffffffff81010000)
	const frameAt = istTop - 40
	for _, tc := range []struct {
		name    string
		iret    bool
		move    bool
		finding bool
	}{
		{"nested on the live frame", false, false, true},
		{"after the IRETQ", true, false, false},
		{"after the handler moved its frame", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "ftrace-emulate-percpu", "frame")
			task := ctx{cpu: 2, task: 4}
			nmi := ctx{cpu: 2, task: 4, depth: 1}
			entry := f.sym("asm_exc_nmi", 0)
			from := f.sym("caller_main", 0)
			for i, v := range []uint64{0x18, 0xffffffff81111f00, 0x246, 0x10, from} {
				f.write(task, from, frameAt+32-8*uint64(i), 8, v, false)
			}
			first := f.add(task, nmiRow(from, entry, frameAt))
			f.insn(nmi, entry, "PUSH", frameAt)
			if tc.move {
				for i, v := range []uint64{0x18, 0xffffffff81111f00, 0x246, 0x10, from} {
					f.write(nmi, entry+8, frameAt-0x40+32-8*uint64(i), 8, v, false)
				}
			}
			if tc.iret {
				f.insn(nmi, entry+0x80, "IRETQ", frameAt)
				f.iret(task, entry+0x80, from, 0xffffffff81111f00)
				f.insn(task, from, "NOP", 0xffffffff81111f00)
			}
			at := f.sym("do_nmi", 0)
			by := nmi
			if tc.iret {
				by = task
			}
			f.insn(by, at, "NOP", frameAt-0x80)
			for i, v := range []uint64{0x18, frameAt - 0x80, 0x246, 0x10, at} {
				f.write(by, at, frameAt+32-8*uint64(i), 8, v, false)
			}
			second := f.add(by, nmiRow(at, entry, frameAt))
			f.insn(ctx{cpu: 2, task: 4, depth: by.depth + 1}, entry, "PUSH", frameAt)
			res := f.finish()
			if !tc.finding {
				if len(res.Findings) > 0 {
					t.Fatalf("want no finding, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 {
				t.Fatalf("want one finding, got:\n%s", summary(res))
			}
			fd := res.Findings[0]
			if fd.CPU != 2 || fd.Symbol != "asm_exc_nmi" || fd.SeqFirst != first || fd.SeqLast != second ||
				!strings.Contains(fd.Message, "over the live NMI frame on IST stack 2") || !strings.Contains(fd.Message, "interrupted at caller_main") ||
				!strings.Contains(fd.Message, "at do_nmi") {
				t.Errorf("finding cpu%d %s seq %d..%d: %s", fd.CPU, fd.Symbol, fd.SeqFirst, fd.SeqLast, fd.Message)
			}
		})
	}
}

// TestFrameCatalog: the frame analyzer names the historical frame bugs of
// the catalog directly (the #BP frame under int3 call emulation without the
// gap, the NMI and the #DB re-entering their IST stack), on their default
// seed, with the story that shows how the frame came to be overwritten;
// their fixed twins are clean (and stay so over the seeds of
// TestCleanRowsStayClean).
func TestFrameCatalog(t *testing.T) {
	for _, tc := range []struct {
		id, twin string
		cpu      int
		symbol   string
		message  []string
		story    []string
	}{
		{"int3-emulate-call-nogap", "int3-emulate-call", 3, "int3_hook",
			[]string{"overwrote the saved SS word of the live #BP frame", "interrupted at traced_fn+0x1, handled by asm_exc_int3"},
			[]string{"hits int3 at traced_fn", "enters int3_hook", "stores"}},
		{"ftrace-nmi-nonest", "ftrace-emulate-percpu", 2, "asm_exc_nmi",
			[]string{"NMI delivered at seq", "over the live NMI frame on IST stack 2", "handled by asm_exc_nmi"},
			[]string{"iretq from asm_exc_int3", "NMI raised on cpu2", "takes NMI at"}},
		{"kprobe-db-ist-noshift", "kprobe-db-ist", 2, "asm_exc_debug",
			[]string{"#DB delivered at seq", "on IST stack 3 interrupting task 3, trap depth 1 at kprobe_insn_slot+0x1",
				"over the live #DB frame on IST stack 3", "to task 3 interrupted at kprobe_insn_slot+0x1, handled by asm_exc_debug"},
			[]string{"takes #DB at kprobe_insn_slot+0x1", "hits int3 at probed_fn", "iretq from asm_exc_int3"}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			res := analyzeRun(t, testkit.Load(t, tc.id, nil), emu.Options{Seed: 1}, "frame")
			var fd *analyze.Finding
			for _, f := range res.Findings {
				if f.Analyzer == "frame" {
					fd = f
					break
				}
			}
			if fd == nil {
				t.Fatalf("no frame finding:\n%s", summary(res))
			}
			if fd.CPU != tc.cpu || fd.Symbol != tc.symbol {
				t.Errorf("first frame finding on cpu%d in %s, want cpu%d in %s: %s", fd.CPU, fd.Symbol, tc.cpu, tc.symbol, fd.Message)
			}
			for _, m := range tc.message {
				if !strings.Contains(fd.Message, m) {
					t.Errorf("message does not say %q: %s", m, fd.Message)
				}
			}
			story := strings.Join(fd.Story, "\n")
			for _, s := range tc.story {
				if !strings.Contains(story, s) {
					t.Errorf("story does not show %q:\n%s", s, story)
				}
			}
			twin := analyzeRun(t, testkit.Load(t, tc.twin, nil), emu.Options{Seed: 1}, "frame")
			if len(twin.Findings) > 0 {
				t.Errorf("fixed twin %s: want clean, got:\n%s", tc.twin, summary(twin))
			}
		})
	}
}

// nmiRow is an NMI delivery on IST stack 2 from rip to handler with its
// frame at rsp.
func nmiRow(rip, handler, rsp uint64) *format.Row {
	return &format.Row{Kind: format.KindTrap, RIP: rip, Vector: 2, Handler: handler, RSP: rsp, Size: 40, IST: 2}
}

package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestReturnHijacks: the kretprobe scenario's trampoline returns, for every
// hijacked frame, to the return address saved for that frame. Declared in
// contract.return_hijacks it is clean; without the declaration the RET
// into the trampoline is a return-slot finding (no call produced that
// address); and kretprobe-wrongframe, whose trampoline handler takes the
// task's oldest instance, returns an inner frame to the outer frame's
// caller: an address right after a call (which the old rule accepted),
// but not the one its frame held.
func TestReturnHijacks(t *testing.T) {
	const decl = `return_hijacks = [{ handler = "kretprobe_hijack", trampoline = "kretprobe_trampoline" }]`
	for _, tc := range []struct {
		name, id string
		drop     bool     // remove the declaration from the trace's scenario text
		want     []string // in the first return-slot finding; nil: clean
		story    []string
	}{
		{"declared", "kretprobe", false, nil, nil},
		{"undeclared", "kretprobe", true,
			[]string{"returns to kretprobe_trampoline", "no call produced that return address"}, nil},
		{"wrong frame", "kretprobe-wrongframe", false,
			[]string{"kretprobe_trampoline's ret at kretprobe_trampoline+0x", "returns to caller_main+0x", "the frame it was entered from returns to probed_body+0x",
				"kretprobe_hijack+0x", "returned through the wrong frame"},
			[]string{"kretprobe_hijack+0x", "stores 0x", "executes ret at probed_body+0x", "executes ret at kretprobe_trampoline+0x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testkit.Load(t, tc.id, nil)
			if !strings.Contains(spec.Text, decl) {
				t.Fatalf("%s does not declare %s", tc.id, decl)
			}
			if tc.drop {
				spec.Text = strings.Replace(spec.Text, decl, "", 1)
			}
			res := analyzeRun(t, spec, emu.Options{Seed: 1}, "return-slot")
			if tc.want == nil {
				if len(res.Findings) > 0 || res.Verdict != analyze.VerdictClean {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) == 0 {
				t.Fatalf("no return-slot finding (verdict %s)", res.Verdict)
			}
			f := res.Findings[0]
			if f.Analyzer != "return-slot" || f.CPU != 2 {
				t.Errorf("first finding %s on cpu%d, want return-slot on cpu2", f.Analyzer, f.CPU)
			}
			if tc.drop && f.Symbol != "probed_body" || !tc.drop && f.Symbol != "kretprobe_trampoline" {
				t.Errorf("finding in %s", f.Symbol)
			}
			for _, w := range tc.want {
				if !strings.Contains(f.Message, w) {
					t.Errorf("message does not say %q: %s", w, f.Message)
				}
			}
			story := strings.Join(f.Story, "\n")
			for _, w := range tc.story {
				if !strings.Contains(story, w) {
					t.Errorf("story does not show %q:\n%s", w, story)
				}
			}
		})
	}
}

// TestMissedCallNestedSite: kretprobe's must_call site is probed_fn's
// one-byte nop (length = 1), whose handler runs in the #BP its int3 raises
// (nested = true). As declared the run is clean; without nested, every
// armed pass is a missed call (the handler ran one trap deeper than the
// pass) that reached the body at site+1; without length either, the pass
// never reaches site+5 and is abandoned by probed_fn's return.
func TestMissedCallNestedSite(t *testing.T) {
	const rule = `{ site = "probed_fn", length = 1, nested = true, handlers = ["kretprobe_hijack"], from_marker = 1, until_marker = 3 }`
	for _, tc := range []struct {
		name, from, to string
		want           []string // in the first missed-call finding; nil: clean
	}{
		{"declared", "", "", nil},
		{"not nested", "nested = true, ", "", []string{"pass through probed_fn", "reached probed_fn+0x1 without entering kretprobe_hijack: missed call"}},
		{"neither", "length = 1, nested = true, ", "", []string{"pass through probed_fn", "never reached probed_fn+0x5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testkit.Load(t, "kretprobe", nil)
			if !strings.Contains(spec.Text, rule) {
				t.Fatalf("kretprobe does not declare %s", rule)
			}
			if tc.from != "" {
				spec.Text = strings.Replace(spec.Text, rule, strings.Replace(rule, tc.from, tc.to, 1), 1)
			}
			res := analyzeRun(t, spec, emu.Options{Seed: 1}, "missed-call")
			if tc.want == nil {
				if len(res.Findings) > 0 || res.Verdict != analyze.VerdictClean {
					t.Fatalf("want clean, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) == 0 {
				t.Fatalf("no missed-call finding (verdict %s)", res.Verdict)
			}
			f := res.Findings[0]
			if f.Analyzer != "missed-call" || f.Symbol != "probed_fn" || (f.CPU != 1 && f.CPU != 2) {
				t.Errorf("first finding %s on cpu%d in %s", f.Analyzer, f.CPU, f.Symbol)
			}
			for _, w := range tc.want {
				if !strings.Contains(f.Message, w) {
					t.Errorf("message does not say %q: %s", w, f.Message)
				}
			}
		})
	}
}

// TestMissedCallNestedOnlyInTheSiteTrap: with nested = true, a handler
// counts for a pass when it runs in the #BP the site's own int3 raised; the
// same handler run by an NMI that arrived right after the site (its saved
// RIP is site+1 too) is the NMI's, not the pass's.
func TestMissedCallNestedOnlyInTheSiteTrap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vector  uint8
		entry   string
		finding bool
	}{
		{"#BP at the site", 3, "asm_exc_int3", false},
		{"NMI after the site", 2, "asm_exc_nmi", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "kretprobe", "missed-call")
			task := ctx{cpu: 1, task: 2}
			in := ctx{cpu: 1, task: 2, depth: 1}
			const rsp = 0xffffffff81111f00
			site := f.sym("probed_fn", 0)
			f.marker(task, 1, 0)
			f.insn(task, site, "NOP", rsp) // the int3 (or the nop)
			f.trap(task, site+1, tc.vector, f.sym(tc.entry, 0), rsp-0x40)
			f.insn(in, f.sym(tc.entry, 0), "PUSH", rsp-0x40)
			f.insn(in, f.sym("kretprobe_hijack", 0), "PUSH", rsp-0x100)
			f.insn(in, f.sym(tc.entry, 0)+0x40, "IRETQ", rsp-0x40)
			f.iret(task, f.sym(tc.entry, 0)+0x40, site+1, rsp)
			f.insn(task, site+1, "JMP", rsp)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
		})
	}
}

package scenarios_test

// The rows of mail 001 (docs/background.md): W^X for dynamically allocated trampolines,
// checked against the observer (observer_test.go).

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

const moduleBase = slice.ModuleBase

// TestSeed001DynTrampWX: set_memory_x() makes the trampoline page rwx on
// CPU 0, and the callers then execute from it while it is writable.
func TestSeed001DynTrampWX(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		spec := testkit.Load(t, "dyn-tramp-wx", map[string]uint64{"calls": 150, "dwell": 500})
		o, m, res := observe(t, spec, seed)
		if res.Stop != emu.StopDone {
			t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
		}
		if len(o.rwx) != 1 {
			t.Fatalf("seed %d: %d rwx changes, want 1", seed, len(o.rwx))
		}
		p := o.rwx[0]
		if p.page != moduleBase || p.cpu != 0 || p.old != emu.PermRW || p.new != emu.PermRWX || p.svc != emu.SvcSetMemoryX {
			t.Errorf("seed %d: rwx change %+v", seed, p)
		}
		if o.execW == 0 || o.execWAt[0]>>pageShift != moduleBase>>pageShift {
			t.Errorf("seed %d: %d instructions from writable pages (%#x)", seed, o.execW, o.execWAt)
		}
		if len(o.must[0].missed) != 0 || len(o.badRets) != 0 || o.storeX != 0 {
			t.Errorf("seed %d: findings other than wx", seed)
		}
		if sumPercpu(m, "tracer_calls") == 0 || sumPercpu(m, "other_calls") == 0 || sumPercpu(m, "tracer_bad_count") != 0 {
			t.Errorf("seed %d: tracer %d other %d bad %d", seed, sumPercpu(m, "tracer_calls"), sumPercpu(m, "other_calls"), sumPercpu(m, "tracer_bad_count"))
		}
		checkCallerSums(t, fmt.Sprintf("seed %d", seed), m, []int{1, 2, 3}, 150)
		if seed == 1 {
			t.Logf("seed 1: page %#x %v -> %v by %v at seq %d; %d instructions executed from it while writable", p.page, p.old, p.new, p.svc, p.seq, o.execW)
		}
	}
}

// TestSeed001DynTrampRO: the page goes rw- -> r-- -> r-x, the ops switch
// is an alias store, nothing is ever rwx or executed from a writable page,
// over many seeds with the injections moved across the trampoline (by
// address: it has no symbol) and tracer_func.
func TestSeed001DynTrampRO(t *testing.T) {
	base := testkit.Load(t, "dyn-tramp-ro", nil)
	points := injectPoints(t, base, "tracer_func")
	img, err := emu.LoadImage(base.ID, base.ELF)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := img.Lookup("ftrace_tramp_template")
	end, _ := img.Lookup("ftrace_tramp_end")
	code := img.Bytes(tmpl.Addr, end.Addr-8-tmpl.Addr) // up to the ops word
	offs, err := slice.Starts(len(code), decodeLength(code))
	if err != nil || len(offs) == 0 {
		t.Fatalf("ftrace_tramp_template: %d instructions, %v", len(offs), err)
	}
	for _, off := range offs {
		points = append(points, fmt.Sprintf("%#x", uint64(moduleBase)+uint64(off)))
	}
	var fired int
	for i := 0; i < sweepSeeds; i++ {
		spec := testkit.Load(t, "dyn-tramp-ro", map[string]uint64{"calls": 100, "dwell": 300})
		testkit.MoveInjections(spec, base.Inject, points, i)
		o, m, res := observe(t, spec, uint64(i+1))
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		var seq []string
		for _, p := range o.perms {
			if p.page == moduleBase {
				seq = append(seq, fmt.Sprintf("%v:%v", p.svc, p.new))
			}
		}
		if got := strings.Join(seq, " "); got != "module_alloc:rw- set_memory_ro:r-- set_memory_x:r-x" {
			t.Errorf("%s: trampoline page went %s", label, got)
		}
		if o.aliasPoke == 0 || sumPercpu(m, "other_calls") == 0 || sumPercpu(m, "tracer_bad_count") != 0 {
			t.Errorf("%s: alias stores %d, other_calls %d, bad %d", label, o.aliasPoke, sumPercpu(m, "other_calls"), sumPercpu(m, "tracer_bad_count"))
		}
		checkCallerSums(t, label, m, []int{1, 2, 3}, 100)
		fired += firedRules(o, spec)
	}
	requireFired(t, fired)
}

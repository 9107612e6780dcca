package scenarios_test

// The rows of mail 004 (docs/background.md): int3 call emulation and the
// exception-frame trampoline, checked against the observer
// (observer_test.go).

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestSeed004Int3EmulateCall: every int3 at the site that stands for a
// call returns (IRETQ) to the call's target with RSP one word below the
// int3's and site+5 in that word, and the target's RET consumes exactly
// that word and lands on site+5; every pass calls func_a or func_b; all
// callers get traced_fn's value back. Injections move over the #BP entry,
// int3_hook and the targets' first instructions.
func TestSeed004Int3EmulateCall(t *testing.T) {
	base := testkit.Load(t, "int3-emulate-call", nil)
	if len(base.Inject) != 2 {
		t.Fatalf("want the timer and NMI injections, got %d", len(base.Inject))
	}
	points := injectPoints(t, base, "asm_exc_int3", "do_int3", "int3_hook", "func_a", "func_b")
	var emulated, rets uint64
	var fired int
	for i := 0; i < sweepSeeds; i++ {
		spec := testkit.Load(t, "int3-emulate-call", map[string]uint64{"patch_rounds": 10, "calls": 250})
		testkit.MoveInjections(spec, base.Inject, points, i)
		o, m, res := observe(t, spec, uint64(i+1), func(o *observer) {
			o.emuSites[o.addr("traced_fn")] = true
			o.emuTo[o.addr("func_a")] = true
			o.emuTo[o.addr("func_b")] = true
		})
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		if n := sumPercpu(m, "bad_frame_count"); n != 0 {
			t.Errorf("%s: func_a/func_b saw %d bad frames", label, n)
		}
		if o.emuRets != o.emuCalls {
			t.Errorf("%s: %d emulated calls, %d RETs consumed their return address", label, o.emuCalls, o.emuRets)
		}
		if n := sumPercpu(m, "emulated_calls"); n != o.emuCalls {
			t.Errorf("%s: emulated_calls %d, stream shows %d", label, n, o.emuCalls)
		}
		if w := o.must[0]; w.completed == 0 {
			t.Errorf("%s: no pass in the window", label)
		}
		checkCallerSums(t, label, m, []int{1, 2, 3}, 250)
		emulated += o.emuCalls
		rets += o.emuRets
		fired += firedRules(o, spec)
	}
	requireFired(t, fired)
	if emulated == 0 {
		t.Fatal("no int3 ever emulated a call")
	}
	t.Logf("%d emulated calls over %d seeds, each returned to site+5 through the pushed word (%d)", emulated, sweepSeeds, rets)
}

// TestSeed004Int3EmulateCallPlan: the scenario's own injection plan does
// what its description says: the timer raised at asm_exc_int3's IRETQ is
// taken on func_a/func_b with the emulated return address live, and the
// NMI lands in int3_hook() between the emulated push and the regs->ip store.
func TestSeed004Int3EmulateCallPlan(t *testing.T) {
	var atTarget uint64
	for seed := uint64(1); seed <= 10; seed++ {
		spec := testkit.Load(t, "int3-emulate-call", map[string]uint64{"patch_rounds": 10, "calls": 250})
		spec.Schedule.TimerRate, spec.Schedule.NMIRate = 0, 0
		o, _, res := observe(t, spec, seed, func(o *observer) {
			o.emuSites[o.addr("traced_fn")] = true
			o.emuTo[o.addr("func_a")] = true
			o.emuTo[o.addr("func_b")] = true
		})
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		for _, in := range spec.Inject {
			if !o.fired(in) {
				t.Errorf("seed %d: %s at %s#%d never fired", seed, in.Kind, in.At, in.Hit)
			}
		}
		atTarget += o.trapAtTarget
	}
	if atTarget < 10 {
		t.Errorf("the timer hit an emulated call's target %d times in 10 seeds", atTarget)
	}
}

// TestSeed004ExcTramp: with the pop, every RET returns to a call's return
// address, every pass enters tracer_func, tracer_func never sees a bad
// frame and every caller gets traced_fn's value back. Injections move over
// the trampoline, the caller stub and the handler.
func TestSeed004ExcTramp(t *testing.T) {
	base := testkit.Load(t, "exc-tramp", nil)
	points := injectPoints(t, base, "ftrace_regs_caller", "call_to_exception_trampoline", "ftrace_regs_handler")
	var fired int
	for i := 0; i < sweepSeeds; i++ {
		spec := testkit.Load(t, "exc-tramp", map[string]uint64{"calls": 120})
		testkit.MoveInjections(spec, base.Inject, points, i)
		o, m, res := observe(t, spec, uint64(i+1))
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		if n := sumPercpu(m, "tracer_bad_count"); n != 0 {
			t.Errorf("%s: tracer_func saw %d bad frames", label, n)
		}
		w := o.must[0]
		if w.completed == 0 || uint64(w.called) > sumPercpu(m, "tracer_calls") {
			t.Errorf("%s: %d passes, tracer_calls %d", label, w.completed, sumPercpu(m, "tracer_calls"))
		}
		checkCallerSums(t, label, m, []int{1, 2, 3}, 120)
		fired += firedRules(o, spec)
	}
	requireFired(t, fired)
}

// TestSeed004ExcTrampNopop: without the pop, every pass through the site
// after the install ends with traced_fn's RET going to tracer_func's entry,
// which no CALL produced; tracer_func then runs with garbage and returns
// the caller a garbage value. Nothing else is wrong: no missed call, no
// oops, no wx.
func TestSeed004ExcTrampNopop(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		spec := testkit.Load(t, "exc-tramp-nopop", map[string]uint64{"calls": 120})
		o, m, res := observe(t, spec, seed)
		if res.Stop != emu.StopDone {
			t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
		}
		tracer := o.addr("traced_fn")
		tf, _ := o.img.Lookup("traced_fn")
		target := o.addr("tracer_func")
		perCPU := map[uint64]int{}
		for _, r := range o.badRets {
			if r.from < tracer || r.from >= tf.Addr+tf.Size || r.to != target || r.cpu == 0 {
				t.Errorf("seed %d: unexpected bad RET seq %d cpu%d %s -> %s", seed, r.seq, r.cpu, o.describe(r.from), o.describe(r.to))
			}
			perCPU[r.cpu]++
		}
		w := o.must[0]
		bad := sumPercpu(m, "tracer_bad_count")
		if len(o.badRets) == 0 || uint64(len(o.badRets)) != bad || len(o.badRets) != w.calledAll || w.completed == 0 {
			t.Errorf("seed %d: %d bad RETs, tracer_bad_count %d, %d passes through the trampoline (%d after marker 1)",
				seed, len(o.badRets), bad, w.calledAll, w.completed)
		}
		if len(w.missed) != 0 || len(o.rwx) != 0 || o.execW != 0 || o.storeX != 0 || len(o.unguardedStale()) != 0 {
			t.Errorf("seed %d: findings other than return-slot: missed %d rwx %d execW %d storeX %d", seed, len(w.missed), len(o.rwx), o.execW, o.storeX)
		}
		for _, c := range []int{1, 2, 3} {
			got, _ := m.PercpuU64(c, "caller_sum")
			if got == callerSum(uint64(c), 120) {
				t.Errorf("seed %d: cpu%d's caller got every value back", seed, c)
			}
		}
		if seed == 1 {
			r := o.badRets[0]
			t.Logf("seed 1: %d bad RETs (per CPU %v), first seq %d cpu%d %s -> %s", len(o.badRets), perCPU, r.seq, r.cpu, o.describe(r.from), o.describe(r.to))
		}
	}
}

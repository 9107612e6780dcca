package scenarios_test

// The rows of mail 003 (docs/background.md): the int3 protocol (text_poke_bp) and cross-modified code,
// checked against the observer (observer_test.go).

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestSeed003NosyncStale: in both modes of text-poke-bp-nosync a caller CPU
// executes its old decode of traced_fn's site after an alias write changed
// bytes it ran (the tail, for mode 0) and before it serialized, with no
// int3 in what it ran. Mode 0 also shows the int3 sitting in memory while
// the CPU runs past it; mode 1 has no int3 at all. The stale model is
// pinned: under the default torn one, mode 1's plain text_poke is also
// fetched half-written and the run dies of it (analyze's
// TestTornFetchExecutesHalfWritten covers that).
func TestSeed003NosyncStale(t *testing.T) {
	for _, mode := range []uint64{0, 1} {
		t.Run(fmt.Sprintf("mode%d", mode), func(t *testing.T) {
			var total, unseenInt3 int
			for seed := uint64(1); seed <= 10; seed++ {
				spec := testkit.Load(t, "text-poke-bp-nosync", map[string]uint64{"mode": mode, "patch_rounds": 12, "calls": 300})
				spec.Quirks.Fetch = "stale"
				o, m, res := observe(t, spec, seed)
				site := o.addr("traced_fn")
				if res.Stop != emu.StopDone {
					t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
				}
				var found []staleInsn
				for _, s := range o.unguardedStale() {
					if s.rip != site || s.cpu == 0 {
						t.Errorf("seed %d: stale execution away from the site: %s", seed, s.String(o))
						continue
					}
					if s.lastWrite <= s.lastSer || (s.nextSer != 0 && s.nextSer < s.seq) {
						t.Errorf("seed %d: not stale by the stream's own account: %s", seed, s.String(o))
					}
					if mode == 0 && !s.tailStale {
						continue
					}
					found = append(found, s)
					if s.mem[0] == 0xcc {
						unseenInt3++
					}
				}
				if len(found) == 0 {
					t.Errorf("seed %d: no CPU ran a stale site", seed)
					continue
				}
				total += len(found)
				if mode == 1 && o.bp != 0 {
					t.Errorf("seed %d: mode 1 took %d int3s", seed, o.bp)
				}
				if w := o.must[0]; len(w.missed) > 0 {
					t.Errorf("seed %d: %d passes missed the handler between markers 2 and 4", seed, len(w.missed))
				}
				if seed == 1 {
					t.Logf("seed 1: %d stale executions at the site, first: %s", len(found), found[0].String(o))
					t.Logf("seed 1: handler_calls %v", percpuValues(m, "handler_calls"))
				}
			}
			if mode == 0 && unseenInt3 == 0 {
				t.Error("mode 0: no CPU ran past an int3 that was already in memory")
			}
			t.Logf("mode %d: %d stale executions over 10 seeds (%d past an int3 in memory)", mode, total, unseenInt3)
		})
	}
}

// TestSeed003SyncsPreventStale: the same machine model (stale fetch) with
// text-poke-bp's three syncs shows no unguarded stale execution (a CPU may
// run a stale int3, which only traps, or its old instruction while the only
// changed byte is the int3 that the first sync is about to make it see),
// and the nosync slice on a coherent machine shows none either: the finding
// needs both the missing sync and a CPU that keeps its decodes.
func TestSeed003SyncsPreventStale(t *testing.T) {
	var guarded int
	for seed := uint64(1); seed <= sweepSeeds; seed++ {
		spec := testkit.Load(t, "text-poke-bp", map[string]uint64{"patch_rounds": 6, "calls": 150})
		spec.Quirks.Fetch = "stale"
		o, m, res := observe(t, spec, seed)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("text-poke-bp, stale fetch, seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		if w := o.must[0]; w.completed == 0 || w.called != w.completed {
			t.Errorf("seed %d: %d/%d passes between markers 2 and 4 called handler", seed, w.called, w.completed)
		}
		checkCallerSums(t, fmt.Sprintf("text-poke-bp seed %d", seed), m, []int{1, 2, 3}, 150)
		guarded += len(o.stale)
	}
	t.Logf("text-poke-bp under stale fetch: %d stale int3 executions over %d seeds, no other stale bytes", guarded, sweepSeeds)
	for _, mode := range []uint64{0, 1} {
		for seed := uint64(1); seed <= 10; seed++ {
			spec := testkit.Load(t, "text-poke-bp-nosync", map[string]uint64{"mode": mode, "patch_rounds": 6, "calls": 150})
			spec.Quirks.Fetch = "coherent"
			o, _, _ := observe(t, spec, seed)
			if u := o.unguardedStale(); len(u) > 0 {
				t.Errorf("nosync mode %d, coherent, seed %d: %s", mode, seed, u[0].String(o))
			}
		}
	}
}

// TestSeed003TextPokeBPWindow: text-poke-bp's must_call window (markers 2
// to 4) holds: every pass in it enters handler, under the scenario's own
// fetch model, and there are passes outside it that skip (the int3 while
// the nop goes back), which the old until_marker = 3 wrongly included.
func TestSeed003TextPokeBPWindow(t *testing.T) {
	var skipped uint64
	for seed := uint64(1); seed <= sweepSeeds; seed++ {
		spec := testkit.Load(t, "text-poke-bp", map[string]uint64{"patch_rounds": 8, "calls": 200})
		o, m, res := observe(t, spec, seed)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		if w := o.must[0]; w.completed == 0 {
			t.Errorf("seed %d: no pass inside the window", seed)
		}
		checkCallerSums(t, fmt.Sprintf("seed %d", seed), m, []int{1, 2, 3}, 200)
		skipped += o.bp
	}
	if skipped == 0 {
		t.Error("no int3 was ever hit: the window test proves nothing")
	}
}

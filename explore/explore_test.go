package explore_test

import (
	"context"
	"flag"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay/rerun"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

var long = flag.Bool("long", false, "run the long tier: every catalog row, bigger bounds")

func load(t testing.TB, id string) *scenario.Spec {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		if strings.Contains(err.Error(), "file does not exist") {
			t.Skipf("scenario %s is not in the catalog (yet)", id)
		}
		t.Fatal(err)
	}
	return spec
}

// findingRows are the catalog's finding rows and what explore is held to:
// from a random start (strategy random, seed 1, no injection plan), on
// the small instance params, it must find the expected analyzer's
// finding within budget schedules, and the minimised log must be at most
// maxDecisions long. Rows marked long run only with -long (see the
// comment on each).
var findingRows = []struct {
	id           string
	params       map[string]uint64
	budget       int64
	maxDecisions int
	long         bool
}{
	{id: "text-poke-bp-nosync", params: map[string]uint64{"patch_rounds": 4, "calls": 200}, budget: 50, maxDecisions: 10},
	// (torn fetch: a quantum ends between two text_poke bytes, so each
	// multi-byte poke the patcher must get through is several decisions)
	{id: "ftrace-int3-skip", params: map[string]uint64{"rounds": 4}, budget: 50, maxDecisions: 40},
	{id: "exc-tramp-nopop", params: map[string]uint64{"calls": 100}, budget: 50, maxDecisions: 20},
	{id: "dyn-tramp-wx", params: map[string]uint64{"calls": 100, "dwell": 400}, budget: 50, maxDecisions: 6},
	// The bug needs a second task preempted inside the int3 window of a
	// batch update, late in a long run: found after tens to hundreds of
	// schedules, and the failing prefix stays long (hundreds of thousands
	// of steps), so minimisation cannot get it short.
	{id: "ftrace-sti-shadow-nmi", params: map[string]uint64{"rounds": 2}, budget: 1000, maxDecisions: 5000, long: true},
}

// TestExploreFindsFindingRows is the contract for finding rows,
// end to end: explore, minimise, write; the written trace shows the
// finding when analyzed from the file, and re-executes identically.
func TestExploreFindsFindingRows(t *testing.T) {
	for _, row := range findingRows {
		t.Run(row.id, func(t *testing.T) {
			if row.long && !*long {
				t.Skip("long tier (-long)")
			}
			spec := load(t, row.id)
			if spec.Expect.Clean() {
				t.Fatalf("%s is expected clean in the catalog; the table says it is a finding row", row.id)
			}
			dir := t.TempDir()
			start := time.Now()
			res, err := explore.Explore(context.Background(), spec, explore.Options{
				Strategy: explore.Random, Seed: 1, Budget: row.budget, Params: row.params,
				Analyzers: spec.Expect.Findings, OutDir: dir, ShrinkTime: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Violations) == 0 {
				t.Fatalf("%s: no %v finding within %d schedules", row.id, spec.Expect.Findings, row.budget)
			}
			v := res.Violations[0]
			t.Logf("%s: %s found at schedule %d after %v (%d schedules); minimised %d -> %d decisions in %d runs; total %v",
				row.id, v.Target, v.Schedule, v.Found.Round(time.Millisecond), v.SchedulesBefore+1,
				v.Shrink.DecisionsFrom, len(v.Minimized), v.Shrink.Runs, time.Since(start).Round(time.Millisecond))
			if !slices.Contains(spec.Expect.Findings, v.Target.Analyzer) {
				t.Fatalf("found %s, want one of %v", v.Target, spec.Expect.Findings)
			}
			if v.Minimized == nil {
				t.Fatal("not minimised")
			}
			if len(v.Minimized) > row.maxDecisions {
				t.Errorf("minimised log has %d decisions, bound %d", len(v.Minimized), row.maxDecisions)
			}
			if len(v.Minimized) > len(v.Decisions) {
				t.Errorf("minimised log (%d) longer than the original (%d)", len(v.Minimized), len(v.Decisions))
			}
			// The written trace shows the same finding from the file...
			ar, err := analyze.AnalyzeFile(v.Trace, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			if v.Target.Match(ar.Findings) == nil {
				t.Fatalf("%s does not show %s", v.Trace, v.Target)
			}
			// ...and re-executes identically from the trace alone.
			r, err := format.Open(v.Trace)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			run, err := rerun.FromMeta(r.Meta())
			if err != nil {
				t.Fatal(err)
			}
			if n, div, err := run.Verify(r.Events()); err != nil || div != nil {
				t.Fatalf("replay --verify: %d identical, %v, %v", n, div, err)
			}
			if len(run.Decisions) != len(v.Minimized) {
				t.Errorf("trace holds %d decisions, minimised log %d", len(run.Decisions), len(v.Minimized))
			}
			if run.Spec.Inject != nil {
				t.Errorf("trace's scenario keeps its injection plan")
			}
		})
	}
}

// cleanRows are the catalog's clean rows and the bound the bounded
// strategy must exhaust without a violation: round robin with the given
// quantum (and the scenario's clock tick), at most k deviations (context
// switches, NMIs, timer interrupts), on a small instance. With -long the
// rows that name a long bound use it instead, and the rows marked long
// (several seconds each) run too.
var cleanRows = []struct {
	id      string
	params  map[string]uint64
	quantum uint32
	k       int
	min     int64 // the search must have run at least this many schedules
	longQ   uint32
	longK   int
	long    bool
}{
	{id: "text-poke-bp", params: map[string]uint64{"patch_rounds": 1, "calls": 10, "dwell": 4}, quantum: 64, k: 1, min: 300, longQ: 512, longK: 2},
	{id: "dyn-tramp-ro", params: map[string]uint64{"calls": 20, "dwell": 100}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1},
	{id: "exc-tramp", params: map[string]uint64{"calls": 20}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1},
	{id: "ftrace-double-int3", params: map[string]uint64{"rounds": 1}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1, long: true},
	{id: "ftrace-emulate-percpu", params: map[string]uint64{"rounds": 1}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1},
	{id: "ftrace-sti-shadow", params: map[string]uint64{"rounds": 1}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1, long: true},
	{id: "int3-emulate-call", params: map[string]uint64{"patch_rounds": 1, "calls": 20, "dwell": 4}, quantum: 1024, k: 1, min: 40, longQ: 256, longK: 1, long: true},
}

func TestBoundedExhaustsCleanRows(t *testing.T) {
	for _, row := range cleanRows {
		t.Run(row.id, func(t *testing.T) {
			if row.long && !*long {
				t.Skip("long tier (-long)")
			}
			spec := load(t, row.id)
			if !spec.Expect.Clean() {
				t.Fatalf("%s is a finding row in the catalog; the table says clean", row.id)
			}
			k, q := row.k, row.quantum
			if *long && row.longK != 0 {
				k, q = row.longK, row.longQ
			}
			res, err := explore.Explore(context.Background(), spec, explore.Options{
				Strategy: explore.Bounded, Bound: k, Quantum: q, Params: row.params, NoShrink: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (k=%d, quantum %d, params %v): %s in %v", row.id, k, q, row.params, res.Summary(), res.Elapsed.Round(time.Millisecond))
			for _, v := range res.Violations {
				t.Errorf("violation %s in schedule %q: %s", v.Target, v.Desc, v.Finding.Message)
			}
			if !res.Exhausted || res.Stopped != "exhausted" {
				t.Fatalf("not exhausted: %s", res.Stopped)
			}
			if !strings.HasPrefix(res.Summary(), "exhausted: ") || !strings.HasSuffix(res.Summary(), "schedules, no violation") {
				t.Errorf("summary %q", res.Summary())
			}
			if res.Schedules < row.min {
				t.Errorf("exhausted after %d schedules: the bound covers too little (want >= %d)", res.Schedules, row.min)
			}
		})
	}
}

// TestBoundedCount checks the enumeration against its definition on a
// tiny instance: with k=1 the schedules are the default one plus one per
// alternative at each of the default run's choice points, and with k=2
// each of those again extends at its later choice points. The default
// run's choice points are counted independently, by replaying its log.
func TestBoundedCount(t *testing.T) {
	spec := load(t, "text-poke-bp")
	params := map[string]uint64{"patch_rounds": 1, "calls": 2, "dwell": 1}
	const q = 1024
	res1, err := explore.Explore(context.Background(), spec, explore.Options{Strategy: explore.Bounded, Bound: 1, Quantum: q, Tick: -1, Params: params, NoShrink: true, KeepHashes: true})
	if err != nil {
		t.Fatal(err)
	}
	// The default run, by hand: round robin over runnable CPUs.
	prep, err := explore.Prepare(spec, params, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := explore.NewMachine(prep)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingRR{q: q}
	if _, err := pm.Run(c, nil); err != nil {
		t.Fatal(err)
	}
	n := pm.CPUs()
	want := int64(1 + c.others + c.points*2*n) // switches + (nmi, timer) x cpus per choice point
	if res1.Schedules != want {
		t.Fatalf("k=1: %d schedules, want 1 + %d switches + %d choice points x %d injections = %d", res1.Schedules, c.others, c.points, 2*n, want)
	}
	// Every schedule is distinct.
	seen := map[uint64]bool{}
	for _, h := range res1.Hashes {
		if seen[h] {
			t.Fatalf("schedule hash %016x twice", h)
		}
		seen[h] = true
	}
	t.Logf("k=1: %d choice points, %d schedules", c.points, res1.Schedules)
}

// countingRR is the default round-robin schedule, counting choice points
// and the other runnable CPUs at each.
type countingRR struct {
	q              uint32
	next           int
	points, others int
}

func (c *countingRR) Next(m *emu.Machine) (emu.Decision, bool) {
	n := m.CPUs()
	for i := 0; i < n; i++ {
		cpu := (c.next + i) % n
		if m.Runnable(cpu) {
			c.points++
			for o := 0; o < n; o++ {
				if o != cpu && m.Runnable(o) {
					c.others++
				}
			}
			c.next = cpu + 1
			return emu.Decision{Kind: emu.DecStep, CPU: uint16(cpu), N: c.q}, true
		}
	}
	return emu.Decision{}, false
}

// TestShardsUnion: n shards cover exactly the unsharded schedule set.
func TestShardsUnion(t *testing.T) {
	spec := load(t, "text-poke-bp")
	params := map[string]uint64{"patch_rounds": 1, "calls": 6, "dwell": 2}
	for _, c := range []struct {
		name string
		opt  explore.Options
	}{
		{"random", explore.Options{Strategy: explore.Random, Budget: 30}},
		{"pct", explore.Options{Strategy: explore.PCT, Budget: 12}},
		{"bounded", explore.Options{Strategy: explore.Bounded, Bound: 1, Quantum: 256}},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := func(shard, shards int) *explore.Result {
				o := c.opt
				o.Params, o.NoShrink, o.KeepHashes, o.Seed = params, true, true, 9
				o.Shard, o.Shards = shard, shards
				res, err := explore.Explore(context.Background(), spec, o)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Violations) > 0 {
					t.Fatalf("clean scenario: %s", res.Summary())
				}
				return res
			}
			all := run(0, 1)
			want := map[uint64]int{}
			for _, h := range all.Hashes {
				want[h]++
			}
			const n = 3
			got := map[uint64]int{}
			var digest uint64
			var total int64
			for i := 0; i < n; i++ {
				r := run(i, n)
				for _, h := range r.Hashes {
					got[h]++
				}
				digest += r.Digest
				total += r.Schedules
			}
			if !maps.Equal(got, want) {
				t.Fatalf("union of %d shards: %d schedules (%d distinct), unsharded: %d (%d distinct)", n, total, len(got), all.Schedules, len(want))
			}
			if total != all.Schedules || digest != all.Digest {
				t.Fatalf("shards ran %d schedules with digest %x; unsharded %d, %x", total, digest, all.Schedules, all.Digest)
			}
			t.Logf("%s: %d schedules, %d distinct, split over %d shards", c.name, all.Schedules, len(want), n)
		})
	}
}

// TestWorkersDeterministic: the first violation and the schedules run do
// not depend on the number of workers.
func TestWorkersDeterministic(t *testing.T) {
	spec := load(t, "text-poke-bp-nosync")
	var first *explore.Result
	for _, w := range []int{1, 2, 3} {
		res, err := explore.Explore(context.Background(), spec, explore.Options{
			Budget: 40, Seed: 3, Workers: w, NoShrink: true, KeepHashes: true,
			Params: map[string]uint64{"patch_rounds": 2, "calls": 100},
		})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res
			if len(res.Violations) == 0 {
				t.Fatal("no violation to compare")
			}
			continue
		}
		if !slices.Equal(res.Hashes, first.Hashes) || res.Violations[0].Schedule != first.Violations[0].Schedule ||
			res.Violations[0].Target != first.Violations[0].Target {
			t.Fatalf("workers %d: %s %v; workers 1: %s %v", w, res.Summary(), res.Hashes, first.Summary(), first.Hashes)
		}
	}
}

// prepareBase is a scenario text with what Prepare must get right: a
// multi-line string that looks like tables, a [params] table with
// comments, and two [[inject]] tables between other tables.
const prepareBase = `id = "prep"
description = """
Not tables:
[[inject]]
[params]
max_insns = 1
"""
expect = "clean"
slice = "x.elf"
cpus = 2
max_insns = 1_000 # budget

[params]
rounds = 40   # how many
dwell = 0x40

[[inject]]
kind = "nmi"
cpu = 1
at = "f+3"

[[task]]
entry = "main"
cpus = "all"

[[inject]] # a second one
kind = "timer"
cpu = 0
at = "g"
hit = 2

[contract]
alias = true
`

func TestPrepare(t *testing.T) {
	spec, err := scenario.Parse("prep.toml", []byte(prepareBase))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		params     map[string]uint64
		maxInsns   uint64
		keepInject bool
		wantNote   []string
	}{
		{"drop plan", nil, 0, false, []string{"[[inject]] tables removed"}},
		{"params", map[string]uint64{"rounds": 2, "dwell": 5}, 0, true, []string{"params.rounds = 2 (was 40)", "params.dwell = 5 (was 0x40)"}},
		{"new param and budget", map[string]uint64{"zzz_new": 7}, 12345, false, []string{"params.zzz_new = 7 (added)", "max_insns = 12345 (was 1_000)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := explore.Prepare(spec, c.params, c.maxInsns, c.keepInject)
			if err != nil {
				t.Fatal(err)
			}
			if c.keepInject != (len(p.Inject) > 0) || c.keepInject && len(p.Inject) != 2 {
				t.Errorf("inject: %v", p.Inject)
			}
			want := maps.Clone(spec.Params)
			maps.Copy(want, c.params)
			if !maps.Equal(p.Params, want) {
				t.Errorf("params %v, want %v", p.Params, want)
			}
			if c.maxInsns != 0 && p.MaxInsns != c.maxInsns || c.maxInsns == 0 && p.MaxInsns != spec.MaxInsns {
				t.Errorf("max_insns %d", p.MaxInsns)
			}
			first, _, _ := strings.Cut(p.Text, "\n")
			for _, n := range c.wantNote {
				if !strings.Contains(first, n) {
					t.Errorf("first line %q lacks %q", first, n)
				}
			}
			if p.Description != spec.Description || len(p.Tasks) != 1 || !p.Contract.Alias {
				t.Errorf("the rest of the scenario changed:\n%s", p.Text)
			}
		})
	}
	if p, err := explore.Prepare(spec, nil, 0, true); err != nil || p != spec {
		t.Errorf("nothing to change: got a new spec (%v)", err)
	}
}

// TestShrinkKeepsFinding: every log Shrink returns reproduces the
// target, strictly replayed, and is no longer than what it was given.
func TestShrinkKeepsFinding(t *testing.T) {
	spec := load(t, "dyn-tramp-wx")
	res, err := explore.Explore(context.Background(), spec, explore.Options{Budget: 5, NoShrink: true, Params: map[string]uint64{"calls": 100, "dwell": 400}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatal("no violation")
	}
	v := res.Violations[0]
	pm, err := explore.NewMachine(res.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, runs := range []int{1, 10, 40, 0} {
		min, out, st, err := explore.Shrink(context.Background(), pm, v.Decisions, v.Target, runs, 2)
		if err != nil {
			t.Fatal(err)
		}
		if out == nil || len(min) > len(v.Decisions) {
			t.Fatalf("runs %d: %d decisions, outcome %v", runs, len(min), out)
		}
		o, err := pm.Replay(min, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v.Target.Match(o.Findings) == nil {
			t.Fatalf("runs %d: the minimised log does not reproduce %s", runs, v.Target)
		}
		if runs > 0 && st.Runs > runs+2 { // +2: parallel candidates of the last batch
			t.Errorf("runs %d: made %d runs", runs, st.Runs)
		}
		t.Logf("budget %d runs: %d -> %d decisions (%d runs, complete %v)", runs, len(v.Decisions), len(min), st.Runs, st.Complete)
	}
}

// TestProgress: snapshots arrive while exploring and a final "done" one
// counts every schedule.
func TestProgress(t *testing.T) {
	spec := load(t, "text-poke-bp")
	var mu sync.Mutex
	var snaps []explore.Progress
	res, err := explore.Explore(context.Background(), spec, explore.Options{
		Budget: 20, NoShrink: true, Params: map[string]uint64{"patch_rounds": 1, "calls": 20, "dwell": 2},
		ProgressEvery: time.Millisecond, Progress: func(p explore.Progress) {
			mu.Lock()
			snaps = append(snaps, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) < 2 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	last := snaps[len(snaps)-1]
	if last.Phase != "done" || last.Schedules != res.Schedules || last.Violations != 0 {
		t.Fatalf("last snapshot %+v, result %d schedules", last, res.Schedules)
	}
}

// TestScheduleHash: the hash is FNV-1a of the encoded log, whatever its
// length (it is computed in chunks).
func TestScheduleHash(t *testing.T) {
	var ds []emu.Decision
	r := emu.NewRand(1)
	for i := 0; i < 10000; i++ {
		ds = append(ds, emu.Decision{Kind: emu.DecStep, CPU: uint16(r.Intn(4)), N: uint32(1 + r.Intn(300))})
		if i%7 == 0 {
			ds = append(ds, emu.Decision{Kind: emu.DecIRQ, CPU: 1, Vector: emu.VecTimer}, emu.Decision{Kind: emu.DecNMI, CPU: 2})
		}
	}
	for _, n := range []int{0, 1, 4095, 4096, 4097, len(ds)} {
		h := fnv.New64a()
		h.Write(emu.EncodeDecisions(ds[:n]))
		if got := explore.ScheduleHash(ds[:n]); got != h.Sum64() {
			t.Fatalf("%d decisions: %016x, want %016x", n, got, h.Sum64())
		}
	}
}

// TestUnfiredInjectRules: with the scenario's injection plan kept, a rule
// that fires in no schedule is listed in Result.Unfired (explore warns: it
// tested nothing), and one that fires is not.
func TestUnfiredInjectRules(t *testing.T) {
	spec := load(t, "text-poke-bp")
	// Prepare re-reads the text (params): the rules go there. CPU 1 only
	// calls traced_fn.
	never := len(spec.Inject)
	spec.Text += "\n[[inject]]\nkind = \"nmi\"\ncpu = 1\nat = \"patcher_main\"\nhit = 1\n" +
		"\n[[inject]]\nkind = \"nmi\"\ncpu = 1\nat = \"traced_fn\"\nhit = 1\n"
	res, err := explore.Explore(context.Background(), spec, explore.Options{
		Budget: 3, NoShrink: true, KeepInject: true, Params: map[string]uint64{"patch_rounds": 1, "calls": 20, "dwell": 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Schedules == 0 || !slices.Equal(res.Unfired, []int{never}) {
		t.Errorf("%d schedules, unfired rules %v, want [%d]", res.Schedules, res.Unfired, never)
	}
}

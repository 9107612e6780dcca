package explore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/scenario"
)

// TestUnfinishedRunIsViolation: with a budget too small for the boot, every
// schedule ends on it; explore reports that as a progress violation (even
// with --only naming another analyzer), and writes the failing run.
func TestUnfinishedRunIsViolation(t *testing.T) {
	spec := load(t, "text-poke-bp")
	dir := t.TempDir()
	res, err := explore.Explore(context.Background(), spec, explore.Options{
		Strategy: explore.Random, Seed: 1, Budget: 2, MaxInsns: 600, Analyzers: []string{"missed-call"},
		OutDir: dir, ShrinkTime: 10 * time.Second, ShrinkRuns: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 {
		t.Fatal("a run that ended on its budget is no violation")
	}
	v := res.Violations[0]
	if v.Target.Analyzer != "progress" || !strings.Contains(v.Finding.Message, "did not finish") || v.Trace == "" {
		t.Fatalf("violation %s: %q, trace %q", v.Target, v.Finding.Message, v.Trace)
	}
	ar, err := analyze.AnalyzeFile(v.Trace, analyze.All())
	if err != nil {
		t.Fatal(err)
	}
	if v.Target.Match(ar.Findings) == nil {
		t.Fatalf("%s does not show %s", v.Trace, v.Target)
	}
}

// TestEmulatorErrorIsFinding: a schedule the emulator cannot run to its end
// is not an error of the exploration but a finding of the run, which
// minimisation keeps.
func TestEmulatorErrorIsFinding(t *testing.T) {
	spec := load(t, "text-poke-bp")
	prepared, err := explore.Prepare(spec, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := explore.NewMachine(prepared)
	if err != nil {
		t.Fatal(err)
	}
	log := []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}, {Kind: emu.DecStep, CPU: 1, N: 30}, {Kind: emu.DecStep, CPU: 99, N: 1}}
	out, err := pm.Replay(log, []string{"cmc"})
	if err != nil {
		t.Fatalf("an emulator error ended the exploration: %v", err)
	}
	if out.Result.Stop != emu.StopError || len(out.Findings) == 0 {
		t.Fatalf("stop %v, findings %d", out.Result.Stop, len(out.Findings))
	}
	f := out.Findings[0]
	if f.Analyzer != "progress" || !strings.Contains(f.Message, "no CPU 99") {
		t.Fatalf("finding %s: %q", f.Analyzer, f.Message)
	}
	target := explore.TargetOf(f)
	min, mo, _, err := explore.Shrink(context.Background(), pm, log, target, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if mo == nil || target.Match(mo.Findings) == nil || len(min) > len(log) {
		t.Fatalf("minimised to %v", min)
	}
}

// TestHungRunIsWritten: a schedule after which no CPU can run (the callers
// halt for good, no timer) is a progress violation, and its run, replayed
// from its log into a trace, still shows the hang (the replay ended
// decisions-exhausted there, with no finding, and explore failed with
// "does not show progress when analyzed from the file").
func TestHungRunIsWritten(t *testing.T) {
	base := load(t, "text-poke-bp")
	text := strings.Replace(base.Text, `entry = "caller_main"`, `entry = "pt_start+7"`, 1) // hlt; jmp back
	text = strings.Replace(text, "timer_rate = 0.02", "timer_rate = 0.0", 1)
	spec, err := scenario.Parse("hung/scenario.toml", []byte(text))
	if err != nil || text == base.Text {
		t.Fatalf("%v (text edited: %v)", err, text != base.Text)
	}
	spec.ELF = base.ELF
	res, err := explore.Explore(context.Background(), spec, explore.Options{
		Strategy: explore.Random, Seed: 1, Budget: 1, NoInject: true, NoShrink: true,
		OutDir: t.TempDir(), Params: map[string]uint64{"patch_rounds": 1, "calls": 10, "dwell": 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) == 0 || res.Violations[0].Target.Analyzer != "progress" || res.Violations[0].Trace == "" {
		t.Fatalf("violations %+v", res.Violations)
	}
	ar, err := analyze.AnalyzeFile(res.Violations[0].Trace, analyze.All())
	if err != nil {
		t.Fatal(err)
	}
	if ar.Outcome != "hung" {
		t.Errorf("written run's outcome %q, want hung", ar.Outcome)
	}
}

// TestStarvedRunTurnsFair: a schedule that starves a CPU until the
// instruction budget is not a livelock when the run finishes once the
// schedule turns fair. text-poke-bp's random schedule 6 (seed 1: cpu
// weights [32 32 2 32]) keeps cpu0 waiting for the IPI acks of the
// starved cpu2 until the budget, and was reported as a progress violation.
// With the fair tail it finishes: no violation. With a 1M-instruction
// budget the schedule alone would not finish even in twice that; round
// robin from 1M finishes it (about 1.46M): so the doubled budget is not
// what makes it clean.
func TestStarvedRunTurnsFair(t *testing.T) {
	spec := load(t, "text-poke-bp")
	for _, c := range []struct {
		maxInsns uint64
		note     string
	}{
		{0, "max_insns = 10000000 (was 5_000_000)"},
		{1_000_000, "max_insns = 2000000 (was 5_000_000)"},
	} {
		t.Run(fmt.Sprint(c.maxInsns), func(t *testing.T) {
			res, err := explore.Explore(context.Background(), spec, explore.Options{
				Strategy: explore.Random, Seed: 1, Budget: 7, Shard: 6, Shards: 7, Workers: 1, NoShrink: true, MaxInsns: c.maxInsns,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range res.Violations {
				t.Errorf("schedule %d (%s): %s: %s", v.Schedule, v.Desc, v.Target, v.Finding.Message)
			}
			if res.Schedules != 1 {
				t.Errorf("%d schedules, want schedule 6 alone", res.Schedules)
			}
			if !strings.Contains(res.Spec.Text, c.note) {
				t.Errorf("the scenario as explored does not say %q:\n%s", c.note, res.Spec.Text[:min(300, len(res.Spec.Text))])
			}
		})
	}
}

package explore

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestFairTailKeepsLivelock: a genuine livelock is still a progress
// violation when the schedule turns fair. ftrace-nmi-nonest's seed 3 (the
// catalog's seeded random schedule, injection plan kept) ends with a CPU
// spinning on an IRETQ that returns to itself after a second NMI overwrote
// its frame; no schedule gets it out. Run the way explore runs it, the
// budgeted prefix hands over to round robin, which spins until the doubled
// budget: the progress finding stands, after the tail.
func TestFairTailKeepsLivelock(t *testing.T) {
	if testing.Short() {
		t.Skip("4M instructions")
	}
	spec, err := scenario.Load(scenarios.FS, "ftrace-nmi-nonest")
	if err != nil {
		t.Fatal(err)
	}
	prepared, err := Prepare(spec, nil, fairFactor*spec.MaxInsns, true)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := NewMachine(prepared)
	if err != nil {
		t.Fatal(err)
	}
	pm.fairAt = spec.MaxInsns
	_, sched, err := emu.ConfigFor(prepared, emu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := pm.Run(emu.NewRandomSource(3, sched), []string{"progress"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	progress := false
	for _, f := range out.Findings {
		msgs = append(msgs, f.Analyzer+": "+f.Message)
		progress = progress || f.Analyzer == "progress" && strings.Contains(f.Message, "instruction budget") && strings.Contains(f.Message, "(loop: iretq)")
	}
	if out.FairFrom < 0 || out.Result.Insns < fairFactor*spec.MaxInsns || !progress {
		t.Fatalf("fair tail from decision %d, %d instructions, stop %v; findings:\n%s", out.FairFrom, out.Result.Insns, out.Result.Stop, strings.Join(msgs, "\n"))
	}
}

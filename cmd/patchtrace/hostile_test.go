package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
)

// TestHostileStrings: a trace whose symbol names, outcome detail, tool
// version and quirks carry
// a terminal escape and a newline (a forged report line) has them printed
// escaped by inspect, events and analyze, never raw.
func TestHostileStrings(t *testing.T) {
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	md.ToolVersion = "v1\x1b[2J\nFORGED tool"
	md.Quirks["fetch\x1b[31m"] = "x\nFORGED quirk"
	const evilSym = "start_cpu\x1b[2J\nFORGED: no findings"
	renamed := false
	for i := range md.Symbols {
		if md.Symbols[i].Name == "start_cpu" {
			md.Symbols[i].Name, renamed = evilSym, true
		}
	}
	if !renamed {
		t.Fatal("no start_cpu symbol to rename")
	}
	path := filepath.Join(t.TempDir(), "hostile.arrow")
	f, err := format.CreateFile(path, md, false)
	if err != nil {
		t.Fatal(err)
	}
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 1, MaxInsns: 500, Sink: record.NewRecorder(f, img)})
	if err != nil {
		t.Fatal(err)
	}
	res := m.Run(src)
	f.SetFinal(format.Final{Decisions: emu.EncodeDecisions(res.Decisions), DecisionsFormat: emu.DecisionsFormat, DecisionCount: len(res.Decisions),
		Outcome: format.OutcomeUnsupported, OutcomeDetail: "cpu1: stop\x1b]0;pwned\x07\nverdict: clean"})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"inspect", path, "--symbols"},
		{"events", path, "--to", "400"},
		{"analyze", path},
	} {
		_, out, errs := runCLI(t, args...)
		all := out + errs
		if strings.ContainsAny(all, "\x1b\x07") || strings.Contains(all, "\nFORGED") || strings.Contains(all, "\nverdict: clean") {
			t.Errorf("%s prints the trace's strings raw:\n%s", args[0], all)
		}
	}
	_, out, _ := runCLI(t, "events", path, "--to", "400")
	if !strings.Contains(out, `"start_cpu\x1b[2J\nFORGED: no findings"`) {
		t.Errorf("events does not name the symbol escaped:\n%s", out)
	}
	_, out, _ = runCLI(t, "analyze", path)
	if !strings.Contains(out, `\x1b]0;pwned\a\nverdict: clean`) {
		t.Errorf("analyze does not quote the outcome's detail escaped:\n%s", out)
	}
}

// TestInspectSeqGaps: a trace whose rows were filtered (here its first
// event left out, through the format's own writer, checksums valid) is
// not "complete" to inspect: it names the events missing, as analyze
// judges it incomplete (exit 2).
func TestInspectSeqGaps(t *testing.T) {
	dir := t.TempDir()
	full, cut := filepath.Join(dir, "full.arrow"), filepath.Join(dir, "cut.arrow")
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec.Params["patch_rounds"], spec.Params["calls"] = 1, 4
	if _, err := record.Run(spec, full, record.Options{Options: emu.Options{Seed: 1}}); err != nil {
		t.Fatal(err)
	}
	testkit.RewriteTrace(t, full, cut, nil, func(row *format.Row) bool { return row.Seq != 0 })
	code, out, errs := runCLI(t, "inspect", cut)
	if code != exitOK || !strings.Contains(out, "INCOMPLETE: its sequence numbers skip 1 events") || strings.Contains(out, ", complete;") {
		t.Errorf("inspect: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "inspect", full, "--json")
	if code != exitOK || !strings.Contains(out, `"missing_events": 0`) || !strings.Contains(out, `"truncated": false`) {
		t.Errorf("inspect --json of the whole trace: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "analyze", cut); code != exitError || !strings.Contains(out+errs, "skip 1 events") {
		t.Errorf("analyze: exit %d, want %d\n%s%s", code, exitError, out, errs)
	}
}

// TestRecordedClaimForged: a trace recorded with --no-loads whose
// metadata was rewritten (through the format's own writer, checksums
// valid) to say it records a load row for every data read is not
// "complete" to inspect, and analyze judges it incomplete (exit 2)
// naming the loads missing: lifetime would have judged reads that are
// not there. The untouched trace inspects complete.
func TestRecordedClaimForged(t *testing.T) {
	dir := t.TempDir()
	orig, forged := filepath.Join(dir, "no-loads.arrow"), filepath.Join(dir, "forged.arrow")
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec.Params["patch_rounds"], spec.Params["calls"] = 1, 4
	if _, err := record.Run(spec, orig, record.Options{Options: emu.Options{Seed: 1, NoLoads: true}}); err != nil {
		t.Fatal(err)
	}
	testkit.RewriteTrace(t, orig, forged, func(md *format.Meta) { md.Loads = true }, nil)
	const want = "RETs that completed have no load row"
	code, out, errs := runCLI(t, "inspect", forged)
	if code != exitOK || !strings.Contains(out, "INCOMPLETE: the trace contradicts its metadata") || !strings.Contains(out, want) || strings.Contains(out, ", complete;") {
		t.Errorf("inspect: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "inspect", orig, "--json")
	if code != exitOK || strings.Contains(out, `"contradiction"`) || !strings.Contains(out, `"loads": false`) {
		t.Errorf("inspect --json of the recorded trace: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "analyze", forged); code != exitError || !strings.Contains(out+errs, want) {
		t.Errorf("analyze: exit %d, want %d\n%s%s", code, exitError, out, errs)
	}
}

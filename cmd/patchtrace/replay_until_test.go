package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayUntilFromTrace: replay --until reads the state from the trace
// alone: it works on a cut file, which has no decision log to re-execute,
// and gives the same registers as on the whole file.
func TestReplayUntilFromTrace(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace, "--batch-rows", "4096"); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	full, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.arrow")
	os.WriteFile(cut, full[:len(full)/2], 0o644)
	if code, _, errs := runCLI(t, "replay", cut, "--verify"); code != exitError || !strings.Contains(errs, "decision log") {
		t.Fatalf("--verify on a cut file: exit %d %q: the test assumes a cut file cannot be re-executed", code, errs)
	}
	var states [2]struct {
		FromTrace bool `json:"from_trace"`
		Events    uint64
		CPUs      []struct {
			Regs  map[string]any `json:"regs"`
			Where string         `json:"where"`
			Task  uint32         `json:"task"`
		} `json:"cpus"`
	}
	for i, f := range []string{trace, cut} {
		code, out, errs := runCLI(t, "replay", f, "--until", "20000", "--json")
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", f, code, errs)
		}
		if err := json.Unmarshal([]byte(out), &states[i]); err != nil {
			t.Fatal(err)
		}
	}
	a, b := states[0], states[1]
	if !a.FromTrace || a.Events != 20001 || len(a.CPUs) != 4 {
		t.Fatalf("state %+v", a)
	}
	for i := range a.CPUs {
		ja, _ := json.Marshal(a.CPUs[i])
		jb, _ := json.Marshal(b.CPUs[i])
		if string(ja) != string(jb) {
			t.Errorf("cpu%d: whole file %s, cut file %s", i, ja, jb)
		}
	}
	code, out, _ := runCLI(t, "replay", trace, "--until", "20000")
	if code != exitOK || !strings.Contains(out, "reconstructed from the trace") || !strings.Contains(out, "cpu3  task") {
		t.Errorf("text: exit %d:\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "replay", cut, "--until", "900000000"); code != exitError || !strings.Contains(errs, "last readable event") {
		t.Errorf("--until past the cut: exit %d %q", code, errs)
	}
}

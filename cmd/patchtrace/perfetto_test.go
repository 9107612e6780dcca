package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPerfettoExport: export --perfetto of a finding trace, decoded by
// Perfetto's own generated module (tests/perfetto_check.py, the `perfetto`
// package in the venv test.sh makes): a track per CPU with a child track
// per task, balanced slices with functions nested in traps (and traps in
// traps), instants for text_poke writes, and one flow per finding, one of
// them across CPUs. PATCHTRACE_PYTHON names the interpreter; without it
// (or without the perfetto package) the test is skipped, except under
// CI=true where it fails.
func TestPerfettoExport(t *testing.T) {
	py := venvPython(t, "perfetto.protos.perfetto.trace.perfetto_trace_pb2")
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: %d %s", code, errs)
	}
	pf := filepath.Join(dir, "t.pftrace")
	code, out, errs := runCLI(t, "export", trace, "--perfetto", pf)
	if code != exitOK || !strings.Contains(out, "2 findings as flows") {
		t.Fatalf("export: %d %q %q", code, out, errs)
	}
	b, err := exec.Command(py, "../../tests/perfetto_check.py", pf).Output()
	if err != nil {
		t.Fatalf("perfetto_check.py: %v\n%s", err, b)
	}
	var sum struct {
		CPUTracks  []string `json:"cpu_tracks"`
		TaskTracks []string `json:"task_tracks"`
		ParentsOK  bool     `json:"task_parents_ok"`
		Slices     map[string]int
		Nested     map[string]int
		Instants   map[string]int
		Flows      map[string]struct{ Steps, Ends, Tracks int }
		SliceNames []string `json:"slice_names"`
		Errors     []string
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	t.Logf("%s", b)
	if strings.Join(sum.CPUTracks, ",") != "cpu0,cpu1,cpu2" || len(sum.TaskTracks) < 3 || !sum.ParentsOK {
		t.Errorf("tracks: cpus %q, tasks %q, parents ok %v", sum.CPUTracks, sum.TaskTracks, sum.ParentsOK)
	}
	if sum.Slices["function"] == 0 || sum.Slices["trap"] == 0 || sum.Nested["trap>function"] == 0 || sum.Nested["trap>trap"] == 0 {
		t.Errorf("slices %v, nesting %v", sum.Slices, sum.Nested)
	}
	names := strings.Join(sum.SliceNames, "|")
	if !strings.Contains("|"+names+"|", "|lp_fn2|") || !strings.Contains(names, "#BP (int3) at lp_fn") || !strings.Contains(names, "NMI") {
		t.Errorf("slice names (interned) %q: want lp_fn2, #BP (int3) at lp_fn*, NMI", sum.SliceNames)
	}
	if sum.Instants["poke"] == 0 || sum.Instants["finding"] == 0 {
		t.Errorf("instants %v", sum.Instants)
	}
	cross := 0
	for id, f := range sum.Flows {
		if f.Ends != 1 || f.Steps < 1 {
			t.Errorf("flow %s: %+v", id, f)
		}
		if f.Tracks > 1 {
			cross++
		}
	}
	if len(sum.Flows) != 2 || cross == 0 {
		t.Errorf("flows %+v: want one per finding, one across CPUs", sum.Flows)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("errors: %q", sum.Errors)
	}
	if code, _, errs := runCLI(t, "export", trace, "--perfetto", pf); code != exitError || !strings.Contains(errs, "exists") {
		t.Errorf("export over an existing file: %d %q", code, errs)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

// TestInteropPython records a trace with the CLI, exports it, and has
// pyarrow and DuckDB (tests/interop.py, in the venv test.sh makes) check
// the row counts against `inspect --json` and an aggregate against the Go
// reader. PATCHTRACE_PYTHON names the interpreter; without it the test is
// skipped, except under CI=true where it fails.
func TestInteropPython(t *testing.T) {
	py := os.Getenv("PATCHTRACE_PYTHON")
	if py == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PATCHTRACE_PYTHON is not set: run the tests through ./test.sh")
		}
		t.Skip("PATCHTRACE_PYTHON not set (./test.sh sets it to the venv's python)")
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	pq := filepath.Join(dir, "t.parquet")
	var out, errb bytes.Buffer
	if code := run([]string{"record", "text-poke-bp", "--seed", "4", "-o", trace, "--batch-rows", "8192"}, nil, &out, &errb); code != 0 {
		t.Fatalf("record: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"inspect", trace, "--json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errb.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"export", trace, "--parquet", pq}, nil, &out, &errb); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errb.String())
	}
	// The Go reader's answers to the aggregate queries.
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	insns, bps := map[string]int{}, map[string]int{}
	alias := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		cpu := fmt.Sprintf("cpu%d", row.CPU)
		switch {
		case row.Kind.String() == "insn":
			insns[cpu]++
		case row.Kind.String() == "trap" && row.Vector == 3:
			bps[cpu]++
		case row.Kind.String() == "write" && row.Alias:
			alias++
		}
	}
	r.Close()
	if alias == 0 || len(bps) == 0 {
		t.Fatalf("the trace has no alias writes (%d) or no #BP (%v): the checks would be vacuous", alias, bps)
	}
	rep["go_answers"] = map[string]any{"insns_by_cpu": insns, "int3_by_cpu": bps, "alias_writes": alias}
	js, _ := json.Marshal(rep)
	inspect := filepath.Join(dir, "inspect.json")
	if err := os.WriteFile(inspect, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("..", "..", "tests", "interop.py"), trace, pq, inspect)
	res, err := cmd.CombinedOutput()
	t.Logf("%s", res)
	if err != nil {
		t.Fatalf("interop.py: %v", err)
	}
}

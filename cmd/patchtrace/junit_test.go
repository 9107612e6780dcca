package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
)

// TestJUnitParser: analyze --format junit read by junitparser
// (tests/junit_check.py, in the venv test.sh makes): per trace a suite
// with the "run" case and one per analyzer (analyze.IDs), each with a time, the
// missed-call case failed, the counts consistent. PATCHTRACE_PYTHON names
// the interpreter; without it (or junitparser) the test is skipped,
// except under CI=true where it fails.
func TestJUnitParser(t *testing.T) {
	py := venvPython(t, "junitparser")
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: %d %s", code, errs)
	}
	xml := filepath.Join(dir, "r.xml")
	if code, _, errs := runCLI(t, "analyze", trace, "--format", "junit", "-o", xml); code != exitFinding {
		t.Fatalf("analyze: %d %s", code, errs)
	}
	b, err := exec.Command(py, "../../tests/junit_check.py", xml).Output()
	if err != nil {
		t.Fatalf("junit_check.py: %v\n%s", err, b)
	}
	var suites []struct {
		Name                    string
		Tests, Failures, Errors int
		Time                    float64
		Cases                   []struct {
			Name           string
			Time           float64
			Failure, Error bool
		}
	}
	if err := json.Unmarshal(b, &suites); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(suites) != 1 {
		t.Fatalf("%d suites: %s", len(suites), b)
	}
	s := suites[0]
	if s.Tests != len(s.Cases) || s.Tests != len(analyze.IDs())+1 || s.Failures != 1 || s.Errors != 0 || s.Time <= 0 {
		t.Errorf("suite %s: tests %d (cases %d), failures %d, errors %d, time %g", s.Name, s.Tests, len(s.Cases), s.Failures, s.Errors, s.Time)
	}
	for _, c := range s.Cases {
		if c.Time <= 0 && c.Name == "run" {
			t.Errorf("case %s: time %g", c.Name, c.Time)
		}
		if c.Failure != (c.Name == "missed-call") || c.Error {
			t.Errorf("case %s: failure %v error %v", c.Name, c.Failure, c.Error)
		}
	}
}

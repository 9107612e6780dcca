package main

import (
	"os"
	"os/exec"
	"testing"
)

// venvPython returns the interpreter PATCHTRACE_PYTHON names, after
// checking that it can import module (empty: no check). Without it the
// test is skipped, except under CI=true where it fails: test.sh makes the
// venv and sets the variable.
func venvPython(t *testing.T, module string) string {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(why + ": run the tests through ./test.sh")
		}
		t.Skip(why + " (./test.sh installs it)")
	}
	py := os.Getenv("PATCHTRACE_PYTHON")
	if py == "" {
		skip("PATCHTRACE_PYTHON not set")
	}
	if module != "" {
		if err := exec.Command(py, "-c", "import "+module).Run(); err != nil {
			skip(module + " is not installed in " + py)
		}
	}
	return py
}

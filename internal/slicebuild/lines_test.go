package slicebuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLineTable: an address is named file:line from a DWARF line table,
// and a slice without one gets "" (symbol+offset is used instead).
func TestLineTable(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cc not found: CI must be able to build slices")
		}
		t.Skip("cc not found: skipping (install gcc)")
	}
	dir := t.TempDir()
	src := "int f(void)\n{\n\treturn 1;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "x.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-g", "-O0"}, "x.c:2"},
		{[]string{"-O0"}, ""},
	} {
		obj := filepath.Join(dir, "x.o")
		cmd := exec.Command("cc", append(tc.flags, "-c", "x.c", "-o", obj)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cc: %v\n%s", err, out)
		}
		raw, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		got := newLineTable(raw).lookup(0)
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasSuffix(got, "/"+tc.want) {
			t.Errorf("cc %v: lookup(0) = %q, want .../%q", tc.flags, got, tc.want)
		}
	}
}

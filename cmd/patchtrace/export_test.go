package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/parquet/file"
)

// TestExportParquetIncomplete: export --parquet of a truncated trace says
// so and exits 2 with nothing written, unless --allow-truncated asks for
// the complete batches; a trace with a damaged batch fails naming the
// batch, with nothing written either (no output, no temporary file).
func TestExportParquetIncomplete(t *testing.T) {
	dir := t.TempDir()
	cut := truncatedTrace(t, dir)
	out := filepath.Join(dir, "cut.parquet")
	code, stdout, errs := runCLI(t, "export", cut, "--parquet", out, "-q")
	if code != exitError || !strings.Contains(errs, "truncated after") || !strings.Contains(errs, "--allow-truncated") || stdout != "" {
		t.Errorf("export of a truncated trace: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	noOutput(t, dir, "cut.parquet")

	code, stdout, errs = runCLI(t, "export", cut, "--parquet", out, "-q", "--allow-truncated")
	if code != exitOK || !strings.Contains(errs, "warning") || !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("export --allow-truncated: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	pf, err := file.OpenParquetFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := pf.NumRows(); n == 0 || n%4096 != 0 || !strings.Contains(stdout, ": "+strconv.FormatInt(n, 10)+" events") {
		t.Errorf("the export of the complete batches has %d rows (stdout %q)", n, stdout)
	}
	pf.Close()

	// A byte changed inside a batch: the checksum names the batch.
	full := filepath.Join(dir, "full.arrow")
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xFF
	bad := filepath.Join(dir, "bad.arrow")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "export", bad, "--parquet", filepath.Join(dir, "bad.parquet"), "-q")
	if code != exitError || !strings.Contains(errs, "batch ") || !strings.Contains(errs, "damaged") {
		t.Errorf("export of a damaged trace: exit %d, stderr %q", code, errs)
	}
	noOutput(t, dir, "bad.parquet")
}

// noOutput fails if dir holds name or a temporary file for it.
func noOutput(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name) {
			t.Errorf("%s left behind", e.Name())
		}
	}
}

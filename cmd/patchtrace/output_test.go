package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

// TestOutputsReplaceOnlyRegularFiles: the reports, pages and JSON written
// with --force renamed over symlinks, device nodes and FIFOs; only a
// regular file is replaced.
func TestOutputsReplaceOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo} {
		before, _ := os.Lstat(p)
		if err := writeFileAtomic(p, []byte("{}")); !errors.Is(err, format.ErrNotRegular) {
			t.Errorf("writeFileAtomic(%s) = %v, want ErrNotRegular", p, err)
		}
		if after, err := os.Lstat(p); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s replaced: %v %v", p, after, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target changed: %q", b)
	}
	reg := filepath.Join(dir, "reg.json")
	os.WriteFile(reg, []byte("old"), 0o644)
	if err := writeFileAtomic(reg, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(reg); string(b) != "new" {
		t.Fatalf("regular file not replaced: %q", b)
	}
}

// TestOutputsNeverReplaceTheInput: -o (and export's and inspect's output
// flags) naming the trace being read, by the same path or another
// spelling of it, is refused even with --force, and the trace survives
// (analyze -o run.arrow --force run.arrow replaced the trace with its
// text report).
func TestOutputsNeverReplaceTheInput(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "--max-insns", "2000", "-o", trace); code != exitFinding {
		t.Fatalf("record: %d %s", code, errs)
	}
	want, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, ".", "t.arrow") // the same file, spelled otherwise
	for _, args := range [][]string{
		{"analyze", trace, "-o", trace, "--force"},
		{"analyze", trace, "-o", other, "--force", "--format", "json"},
		{"report", trace, "-o", other, "--force"},
		{"export", trace, "--parquet", other, "--force"},
		{"export", trace, "--perfetto", trace, "--force"},
		{"inspect", trace, "--extract-elf", other, "--force"},
	} {
		code, _, errs := runCLI(t, args...)
		if code != exitError || !strings.Contains(errs, "is the input") {
			t.Errorf("%v: exit %d %q, want exit %d saying the output is the input", args, code, errs, exitError)
		}
		if got, err := os.ReadFile(trace); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v replaced the trace (%d bytes, was %d): %v", args, len(got), len(want), err)
		}
	}
	if code, _, errs := runCLI(t, "export", trace, "--parquet", filepath.Join(dir, "x"), "--perfetto", filepath.Join(dir, "x")); code != exitUsage {
		t.Errorf("export --parquet and --perfetto to one file: exit %d %q", code, errs)
	}
	// record's inputs are the scenario's file and its slice ELF (a
	// trace written over the ELF it was recorded from, --force).
	scen := filepath.Join(dir, "mine")
	if code, _, errs := runCLI(t, "new", scen, "--from", "text-poke-bp"); code != exitOK {
		t.Fatal(errs)
	}
	for _, args := range [][]string{
		{"record", scen, "-o", filepath.Join(scen, "text-poke-bp.elf"), "--force"},
		{"record", filepath.Join(scen, "scenario.toml"), "-o", filepath.Join(scen, ".", "scenario.toml"), "--force"},
	} {
		files := map[string][]byte{}
		for _, f := range []string{"scenario.toml", "text-poke-bp.elf"} {
			files[f], _ = os.ReadFile(filepath.Join(scen, f))
		}
		code, _, errs := runCLI(t, append(args, "--max-insns", "2000")...)
		if code != exitError || !strings.Contains(errs, "is the input") {
			t.Errorf("%v: exit %d %q, want exit %d saying the output is the input", args, code, errs, exitError)
		}
		for f, want := range files {
			if got, _ := os.ReadFile(filepath.Join(scen, f)); !bytes.Equal(got, want) {
				t.Errorf("%v replaced %s", args, f)
			}
		}
	}
}

// errWriter fails every write with err.
type errWriter struct{ err error }

func (f errWriter) Write([]byte) (int, error) { return 0, f.err }

// TestStdoutWriteErrorIsAnError: a report printed to stdout that could not
// be written (a full disk) is lost: the command exits 2 saying so, not 0 or
// 1 by its verdict (analyze --format sarif > full/run.sarif exited by the
// verdict with the SARIF lost; check --format json exited 0). A closed
// pipe (| head) is the reader's choice and changes nothing.
func TestStdoutWriteErrorIsAnError(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "--max-insns", "2000", "-o", trace); code != exitFinding {
		t.Fatalf("record: %d %s", code, errs)
	}
	for _, args := range [][]string{
		{"version"},
		{"scenarios"},
		{"analyze", trace, "--format", "sarif"},
		{"analyze", trace, "--only", "progress", "--format", "json"},
	} {
		var errb bytes.Buffer
		code := run(args, nil, errWriter{syscall.ENOSPC}, &errb)
		if code != exitError || !strings.Contains(errb.String(), "no space left") {
			t.Errorf("%v to a full disk: exit %d %q, want %d naming the write error", args, code, errb.String(), exitError)
		}
		errb.Reset()
		if code := run(args, nil, errWriter{syscall.EPIPE}, &errb); code == exitError {
			t.Errorf("%v to a closed pipe: exit %d %q", args, code, errb.String())
		}
	}
}

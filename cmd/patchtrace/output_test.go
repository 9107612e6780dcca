package main

import (
	"errors"
	"os"
	"path/filepath"
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

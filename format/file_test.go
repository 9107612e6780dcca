package format

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestForceReplacesOnlyRegularFiles: --force (CreateFile with force)
// renamed over symlinks, device nodes and FIFOs; it must replace only a
// regular file and leave anything else as it was.
func TestForceReplacesOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := map[string]func(p string) error{
		"symlink":   func(p string) error { return os.Symlink(target, p) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
	}
	for name, make := range mk {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".arrow")
			if err := make(p); err != nil {
				t.Skip(err)
			}
			before, _ := os.Lstat(p)
			f, err := CreateFile(p, fixtureMeta(), true)
			if err == nil {
				err = f.Close()
			}
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), p) {
				t.Fatalf("CreateFile over a %s with force: %v, want ErrNotRegular naming the path", name, err)
			}
			after, err := os.Lstat(p)
			if err != nil || after.Mode() != before.Mode() {
				t.Fatalf("the %s was replaced: %v %v", name, after, err)
			}
			if b, _ := os.ReadFile(target); string(b) != "keep" {
				t.Fatalf("the symlink's target was changed: %q", b)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, name+".arrow.*.partial")); len(m) > 0 {
				t.Fatalf("left %v", m)
			}
		})
	}
	t.Run("regular file", func(t *testing.T) {
		p := filepath.Join(dir, "regular.arrow")
		os.WriteFile(p, []byte("old"), 0o600)
		f, err := CreateFile(p, fixtureMeta(), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("trace mode %v, want 0644 (%v)", st.Mode(), err)
		}
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	})
}

// TestOpenRefusesNonRegular: reading a FIFO blocked forever, and a symlink
// to /dev/zero read as an empty file; both are refused as not regular.
func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.arrow")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	// Hold a write end open, so that a blocking open would not hang the
	// test before the fix (it then read the FIFO as an empty file).
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	zero := filepath.Join(dir, "zero.arrow")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, zero, dir} {
		r, err := Open(p)
		if r != nil || !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s) = %v, %v; want ErrNotRegular naming it", p, r, err)
		}
	}
}

// TestEmptyPartial: a run killed before its header reached the disk leaves
// a 0-byte .partial; it reads as truncated with 0 events, not "not a
// trace".
func TestEmptyPartial(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.arrow.123.partial")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(p)
	if !errors.Is(err, ErrTruncated) || errors.Is(err, ErrNotTrace) || !strings.Contains(err.Error(), "truncated after 0 events") {
		t.Fatalf("got %v, want truncated after 0 events", err)
	}
}

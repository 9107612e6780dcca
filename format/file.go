package format

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a Writer to a file that appears under its name only when Close
// succeeds: it is written to NAME.*.partial in the same directory and
// renamed. A killed run leaves the .partial file, which Open reads up to
// its last complete batch.
type File struct {
	*Writer
	f     *os.File
	path  string
	force bool
}

// CreateFile starts a trace at path. An existing file is never replaced
// unless force is set (the error wraps fs.ErrExist).
//
// With force, only a regular file is replaced: a symlink, a device node,
// a FIFO, a socket or a directory at path is refused (the error wraps
// ErrNotRegular), checked when the file is created and again before the
// rename. The trace is created with mode 0644, like the other outputs.
func CreateFile(path string, meta Meta, force bool, opts ...Option) (*File, error) {
	if err := checkReplace(path, force); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("format: %w", err)
	}
	w, err := NewWriter(f, meta, opts...)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{Writer: w, f: f, path: path, force: force}, nil
}

// TempName returns the name the file is written under until Close.
func (f *File) TempName() string { return f.f.Name() }

// Close finishes the trace and renames it into place. On any error the
// temporary file is removed.
func (f *File) Close() error {
	if f.f == nil {
		return errors.New("format: file already closed")
	}
	err := f.Writer.Close()
	if err == nil {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	tmp := f.f.Name()
	f.f = nil
	if err == nil {
		err = f.rename(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ErrNotRegular: a path that must be a regular file (to be read as a
// trace, or replaced by --force) is a symlink, device node, FIFO, socket
// or directory.
var ErrNotRegular = errors.New("not a regular file")

// CheckOutput checks that an output file may be written at path: nothing
// is there, or force is set and it is a regular file (the error wraps
// fs.ErrExist or ErrNotRegular). Commands writing other outputs with
// --force use it as CreateFile does.
func CheckOutput(path string, force bool) error { return checkReplace(path, force) }

// checkReplace checks that path may be written: it does not exist, or
// force is set and it is a regular file.
func checkReplace(path string, force bool) error {
	st, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if !force {
		return fmt.Errorf("format: %s: %w (use --force to replace it)", path, fs.ErrExist)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("format: %s is %s: %w, refusing to replace it", path, fileKind(st.Mode()), ErrNotRegular)
	}
	return nil
}

// fileKind names a file type for errors.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

func (f *File) rename(tmp string) error {
	if f.force {
		if err := checkReplace(f.path, true); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return fmt.Errorf("format: %w", err)
		}
		return nil
	}
	// Link fails if path exists, so a file created meanwhile is kept.
	if err := os.Link(tmp, f.path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("format: %s: %w (use --force to replace it)", f.path, fs.ErrExist)
		}
		if _, serr := os.Lstat(f.path); serr == nil {
			return fmt.Errorf("format: %s: %w (use --force to replace it)", f.path, fs.ErrExist)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return fmt.Errorf("format: %w", err)
		}
		return nil
	}
	return os.Remove(tmp)
}

// Abort stops writing and removes the temporary file.
func (f *File) Abort() error {
	if f.f == nil {
		return nil
	}
	f.Writer.abort()
	f.f.Close()
	err := os.Remove(f.f.Name())
	f.f = nil
	return err
}

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
func CreateFile(path string, meta Meta, force bool, opts ...Option) (*File, error) {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("format: %s: %w (use --force to replace it)", path, fs.ErrExist)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.partial")
	if err != nil {
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

func (f *File) rename(tmp string) error {
	if f.force {
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

package format

import (
	"errors"
	"fmt"
)

// Sentinel errors, for the conditions callers test with errors.Is.
var (
	// ErrNotTrace: the input is not a patchtrace trace (empty, not Arrow,
	// or an Arrow file without patchtrace metadata).
	ErrNotTrace = errors.New("not a patchtrace trace")
	// ErrNewerVersion: the trace was written by a newer format version
	// than this package reads.
	ErrNewerVersion = errors.New("trace format is newer than this reader")
	// ErrTruncated: the file was cut short (a killed run); every complete
	// batch before the cut is still readable. Reader.Truncated reports it
	// on an otherwise usable file; it is returned as an error only when
	// nothing at all can be read.
	ErrTruncated = errors.New("trace truncated")
	// ErrCorrupt: the file is damaged, not merely cut short: a checksum
	// does not match, a complete file's footer is unreadable, or a batch
	// holds values the format does not allow. The error names the batch
	// (and row) when it is about one.
	ErrCorrupt = errors.New("trace corrupt")
)

// Error is a positional format error: what went wrong, and where.
// Batch and Row are -1 when the error is not about one batch or row.
type Error struct {
	File  string // path, or "" for a reader without one
	Batch int
	Row   int
	Msg   string
	Err   error // the cause (may be a sentinel), or nil
}

func (e *Error) Error() string {
	s := "format: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Batch >= 0 {
		s += fmt.Sprintf("batch %d: ", e.Batch)
	}
	if e.Row >= 0 {
		s += fmt.Sprintf("row %d: ", e.Row)
	}
	s += e.Msg
	if e.Err != nil {
		if e.Msg != "" {
			s += ": "
		}
		s += e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, &Error{}) match any positional format error.
func (e *Error) Is(target error) bool {
	_, ok := target.(*Error)
	return ok
}

func fileErr(file, msg string, err error) *Error {
	return &Error{File: file, Batch: -1, Row: -1, Msg: msg, Err: err}
}

func batchErr(file string, batch int, msg string, err error) *Error {
	return &Error{File: file, Batch: batch, Row: -1, Msg: msg, Err: err}
}

// corruption wraps the detail of a corrupt file so that errors.Is finds
// both the detail and ErrCorrupt, and prints only the detail.
type corruption struct{ err error }

func (c corruption) Error() string   { return c.err.Error() }
func (c corruption) Unwrap() []error { return []error{c.err, ErrCorrupt} }

// corruptErr is an error about a corrupt file (batch -1) or batch.
func corruptErr(file string, batch int, err error) *Error {
	if e, ok := err.(*Error); ok && errors.Is(e, ErrCorrupt) {
		return e
	}
	return &Error{File: file, Batch: batch, Row: -1, Msg: "corrupt", Err: corruption{err}}
}

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

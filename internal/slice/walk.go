package slice

import (
	"errors"
	"fmt"
)

// Length measures the instruction at offset off of the code being walked:
// its length in bytes, or an error when the bytes there do not decode. The
// caller supplies it (x86asm.Decode, or a guard-aware decode over two
// copies of the code), so this package needs no decoder.
type Length func(off int) (int, error)

// WalkError is a walk that stopped short of the end of the code.
type WalkError struct {
	Off int // the offset that did not decode
	Err error
}

func (e *WalkError) Error() string { return fmt.Sprintf("offset %#x: %v", e.Off, e.Err) }

func (e *WalkError) Unwrap() error { return e.Err }

// errEmpty is a Length that measured nothing: the walk could not advance.
var errEmpty = errors.New("decodes to a zero-length instruction")

// Walk visits the instructions of size bytes of code, decoded one after
// another from offset 0 (linear sweep: the code is a function's body, which
// gcc lays out without data in between). It calls yield with each
// instruction's start offset and length and stops when yield returns
// false, after the instruction reaching the end of the code, or at the
// first offset length fails at, which it returns as a *WalkError.
func Walk(size int, length Length, yield func(off, n int) bool) error {
	for off := 0; off < size; {
		n, err := length(off)
		if err == nil && n <= 0 {
			err = errEmpty
		}
		if err != nil {
			return &WalkError{Off: off, Err: err}
		}
		if !yield(off, n) {
			return nil
		}
		off += n
	}
	return nil
}

// Starts returns the start offset of every instruction of size bytes of
// code (Walk), and Walk's error if it stopped short.
func Starts(size int, length Length) ([]int, error) {
	var out []int
	err := Walk(size, length, func(off, _ int) bool {
		out = append(out, off)
		return true
	})
	return out, err
}

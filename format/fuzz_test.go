package format

import (
	"bytes"
	"testing"
)

// FuzzReader: no input makes the reader panic, and NewReader returns a
// reader exactly when it returns no error.
func FuzzReader(f *testing.F) {
	trace := writeTrace(f, fixtureRows(), WithBatchRows(8))
	f.Add(trace)
	f.Add(cutBeforeFooter(f, trace))
	f.Add(trace[:len(trace)/2])
	f.Add(writeTrace(f, nil))
	f.Add(plainArrowFile(f, nil))
	f.Add([]byte("ARROW1\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if (r == nil) == (err == nil) {
			t.Fatalf("NewReader = %v, %v", r, err)
		}
		if r == nil {
			return
		}
		defer r.Close()
		_ = r.Meta()
		for i := 0; i < r.NumBatches(); i++ {
			if _, err := r.BatchInfo(i); err != nil {
				break
			}
		}
		n := 0
		for row, err := range r.Events() {
			if (row == nil) == (err == nil) {
				t.Fatalf("Events yielded %v, %v", row, err)
			}
			n++
		}
		if _, err := r.Seek(5); err != nil {
			return
		}
	})
}

package format

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestBatchOrderTruncated: a file with no footer (no index to check when
// it is opened) whose batches 2 and 3 are swapped is corrupt, and the
// error names both batches, whichever way they are read: in order
// (Events, Scan, Batch) or batch 3 before batch 2.
func TestBatchOrderTruncated(t *testing.T) {
	full := writeTrace(t, loopRows(16), WithBatchRows(4))
	ends := batchEnds(t, full)
	data := cutBeforeFooter(t, full)
	if len(ends) != 4 || ends[3] != len(data) {
		t.Fatalf("%d batches ending at %v, footer at %d", len(ends), ends, len(data))
	}
	var swapped []byte
	swapped = append(swapped, data[:ends[1]]...)        // header, batches 0 and 1: seq 0..7
	swapped = append(swapped, data[ends[2]:ends[3]]...) // batch 3: seq 12..15
	swapped = append(swapped, data[ends[1]:ends[2]]...) // batch 2: seq 8..11
	open := func() *Reader {
		r, err := NewReader(bytes.NewReader(swapped), int64(len(swapped)))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Truncated() || r.NumBatches() != 4 {
			t.Fatalf("truncated %v, %d batches", r.Truncated(), r.NumBatches())
		}
		return r
	}
	const want = "batch 3: corrupt: its first seq 8 is not after seq 15, the last of batch 2"
	check := func(how string, err error) {
		t.Helper()
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", how, err, want)
		}
	}
	var err error
	n := 0
	for _, err = range open().Events() {
		if err != nil {
			break
		}
		n++
	}
	check("Events", err)
	if n != 12 {
		t.Errorf("Events gave %d rows before the error, want the 12 of batches 0..2", n)
	}
	for _, err = range open().Scan(Projection{Columns: []int{}}) {
		if err != nil {
			break
		}
	}
	check("Scan of the common columns", err)
	for _, order := range [][]int{{1, 2, 3}, {3, 2}} {
		r := open()
		for _, i := range order {
			var b *Batch
			if b, err = r.Batch(i); err != nil {
				break
			}
			b.Release()
		}
		check(fmt.Sprintf("Batch %v", order), err)
	}
}

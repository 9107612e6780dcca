package format

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
)

// TestFillNulls: a filled column's null slots hold the previous row's
// value as stored (zero before the first value), its valid slots their own
// values, and readers still see nulls there.
func TestFillNulls(t *testing.T) {
	vals := []byte{0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}
	valid := []byte{0b0000_1010, 0b10} // rows 1, 3 and 9
	fillNulls(vals, 4, valid)
	want := []uint32{0, 8, 8, 4, 4, 4, 4, 4, 4, 2}
	for r, w := range want {
		if got := binary.LittleEndian.Uint32(vals[4*r:]); got != w {
			t.Errorf("row %d: %d, want %d", r, got, w)
		}
	}

	// Through the writer: the size column of the fixture (stores and
	// loads of sizes 1-8 among rows that have none).
	if !fillColumns[ColSize] {
		t.Skip("size is not filled")
	}
	rows := fixtureRows()
	data := writeTrace(t, rows, WithBatchRows(1000))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.Batch(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	col := b.Record().Column(ColSize).(*array.Uint32)
	raw := col.Uint32Values() // the stored values, also under nulls
	last, filled := uint32(0), 0
	for i := range b.Len() {
		if rows[i].Stored(ColSize) != col.IsValid(i) {
			t.Fatalf("row %d (%s): size valid %v", i, rows[i].Kind, col.IsValid(i))
		}
		if col.IsValid(i) {
			last = rows[i].Size
			if raw[i] != last {
				t.Errorf("row %d: size %d, want %d", i, raw[i], last)
			}
			continue
		}
		if raw[i] != last {
			t.Errorf("row %d (null): holds %d, want the previous row's %d", i, raw[i], last)
		}
		if last != 0 {
			filled++
		}
	}
	if filled == 0 {
		t.Error("no null slot after a value: the fixture does not test the fill")
	}
}

package format

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
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

	// fillNulls32 (4-byte rows) against a row-by-row fill, on random
	// values and validity.
	for _, n := range []int{0, 1, 7, 8, 9, 64, 1000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		vals := make([]byte, 4*n)
		valid := make([]byte, (n+7)/8)
		for i := range vals {
			vals[i] = byte(rng.Uint32())
		}
		for i := range valid {
			valid[i] = byte(rng.Uint32() & rng.Uint32()) // a quarter of the rows valid
		}
		want := append([]byte(nil), vals...)
		for r := 1; r < n; r++ {
			if valid[r/8]&(1<<(r%8)) == 0 {
				copy(want[4*r:4*r+4], want[4*r-4:4*r])
			}
		}
		fillNulls(vals, 4, valid)
		if !bytes.Equal(vals, want) {
			t.Errorf("%d rows: fillNulls differs from the row-by-row fill", n)
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

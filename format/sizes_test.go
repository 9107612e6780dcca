package format

import (
	"bytes"
	"testing"
)

// TestColumnSizes: each column's non-null count is the rows that store it,
// its raw bytes are its values buffers' length, and the stored bytes add up
// to less than the file.
func TestColumnSizes(t *testing.T) {
	rows := fixtureRows()
	data := writeTrace(t, rows, WithBatchRows(4))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sizes, err := r.ColumnSizes()
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != NumColumns {
		t.Fatalf("%d columns, want %d", len(sizes), NumColumns)
	}
	var total int64
	for c, s := range sizes {
		want := int64(0)
		for i := range rows {
			if rows[i].Stored(c) {
				want++
			}
		}
		if s.Name != Columns[c].Name || s.NonNull != want {
			t.Errorf("column %d: %s with %d non-null, want %s with %d", c, s.Name, s.NonNull, Columns[c].Name, want)
		}
		if sp := bufSpecs(Columns[c].Type); len(sp) == 2 && sp[1].width > 0 && s.Raw != int64(sp[1].width*len(rows)) {
			t.Errorf("column %s: %d raw bytes, want %d", s.Name, s.Raw, sp[1].width*len(rows))
		}
		if s.Values <= 0 || s.Stored() < s.Values {
			t.Errorf("column %s: %d stored bytes, %d of values", s.Name, s.Stored(), s.Values)
		}
		total += s.Stored()
	}
	if total <= 0 || total >= int64(len(data)) {
		t.Errorf("columns store %d bytes of a %d-byte file", total, len(data))
	}
}

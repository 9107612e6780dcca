package format

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// version1File rewrites a trace as format version 1 wrote it: rflags
// uint64, format_version 1, written by arrow/go's ipc.FileWriter with zstd.
func version1File(t *testing.T, v2 []byte) []byte {
	t.Helper()
	r, err := NewReader(bytes.NewReader(v2), int64(len(v2)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Schema().Metadata()
	keys, vals := append([]string(nil), md.Keys()...), append([]string(nil), md.Values()...)
	vals[md.FindKey(KeyFormatVersion)] = "1"
	fs := r.Schema().Fields()
	fs[ColRFlags].Type = arrow.PrimitiveTypes.Uint64
	meta := arrow.NewMetadata(keys, vals)
	schema := arrow.NewSchema(fs, &meta)
	var buf seekBuf
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithZstd())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < r.NumBatches(); i++ {
		b, err := r.Batch(i)
		if err != nil {
			t.Fatal(err)
		}
		rec := b.Record()
		cols := make([]arrow.Array, NumColumns)
		for c := range cols {
			cols[c] = rec.Column(c)
		}
		fl := rec.Column(ColRFlags).(*array.Uint32)
		ub := array.NewUint64Builder(memory.DefaultAllocator)
		for j := 0; j < fl.Len(); j++ {
			if fl.IsNull(j) {
				ub.AppendNull()
			} else {
				ub.Append(uint64(fl.Value(j)))
			}
		}
		cols[ColRFlags] = ub.NewArray()
		out := array.NewRecord(schema, cols, rec.NumRows())
		if err := w.Write(out); err != nil {
			t.Fatal(err)
		}
		out.Release()
		cols[ColRFlags].Release()
		ub.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadsVersion1 reads a version 1 file (rflags uint64) like a current
// one, and exports it to Parquet in the current schema.
func TestReadsVersion1(t *testing.T) {
	rows := fixtureRows()
	v2 := writeTrace(t, rows, WithBatchRows(5))
	v1 := version1File(t, v2)
	r, got := readAll(t, v1)
	defer r.Close()
	if r.Meta().Version != 1 {
		t.Fatalf("version %d, want 1", r.Meta().Version)
	}
	_, want := readAll(t, v2)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
	var pq bytes.Buffer
	if err := ExportParquet(r, &pq); err != nil {
		t.Fatal(err)
	}
}

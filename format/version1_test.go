package format

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// version1File rewrites a trace as format version 1 wrote it: rflags
// uint64, format_version 1, no outcome keys, written by arrow/go's
// ipc.FileWriter with zstd.
func version1File(t *testing.T, cur []byte) []byte { return olderFile(t, cur, 1) }

// olderFile rewrites a trace as format version v (1 or 2) wrote it: the
// keys added later dropped, rflags uint64 in version 1.
func olderFile(t *testing.T, cur []byte, v int) []byte { t.Helper(); return rewriteFile(t, cur, v, v) }

// rewriteFile rewrites a trace as format version v with the keys of
// versions after keys dropped, rflags uint64 when v is 1.
func rewriteFile(t *testing.T, cur []byte, v, keys int) []byte {
	t.Helper()
	r, err := NewReader(bytes.NewReader(cur), int64(len(cur)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Schema().Metadata()
	var ks, vals []string
	for i, k := range md.Keys() {
		since := 0
		for _, mk := range MetaKeys {
			if mk.Key == k {
				since = mk.Since
			}
		}
		if since > keys {
			continue
		}
		val := md.Values()[i]
		if k == KeyFormatVersion {
			val = strconv.Itoa(v)
		}
		ks, vals = append(ks, k), append(vals, val)
	}
	fs := r.Schema().Fields()
	if v == 1 {
		fs[ColRFlags].Type = arrow.PrimitiveTypes.Uint64
	}
	meta := arrow.NewMetadata(ks, vals)
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
		if v > 1 {
			out := array.NewRecord(schema, cols, rec.NumRows())
			if err := w.Write(out); err != nil {
				t.Fatal(err)
			}
			out.Release()
			b.Release()
			continue
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

// TestReadsVersion2 reads a version 2 file (no outcome keys): its rows and
// metadata are a current file's, with the outcome not recorded.
func TestReadsVersion2(t *testing.T) {
	rows := fixtureRows()
	cur := writeTrace(t, rows, WithBatchRows(5))
	v2 := olderFile(t, cur, 2)
	r, got := readAll(t, v2)
	defer r.Close()
	m := r.Meta()
	if m.Version != 2 || m.Status != StatusComplete {
		t.Fatalf("version %d status %q, want 2 complete", m.Version, m.Status)
	}
	if m.Outcome != "" || m.OutcomeDetail != "" {
		t.Errorf("outcome %q %q in a version 2 file, want none", m.Outcome, m.OutcomeDetail)
	}
	compareRows(t, got, rows)
	// The same file claiming version 3 lacks keys version 3 requires.
	if _, err := NewReader(bytes.NewReader(rewriteFile(t, cur, 3, 2)), int64(len(rewriteFile(t, cur, 3, 2)))); err == nil {
		t.Errorf("a version 3 file without %s read without error", KeyOutcome)
	}
}

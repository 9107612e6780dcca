package format

import (
	"bytes"
	"os"
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
	ncols := NumColumns
	if v < 4 {
		// No register columns, and no load kind in the kind dictionary.
		ncols = ColRegRAX
		fs = fs[:ncols]
	}
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
		cols := make([]arrow.Array, ncols)
		for c := range cols {
			cols[c] = rec.Column(c)
		}
		if v < 4 {
			kinds := cols[ColKind].(*array.Dictionary)
			sb := array.NewStringBuilder(memory.DefaultAllocator)
			for k := 0; k < int(KindLoad)-1; k++ {
				sb.Append(kinds.Dictionary().(*array.String).Value(k))
			}
			d := sb.NewArray()
			cols[ColKind] = array.NewDictionaryArray(fs[ColKind].Type, kinds.Indices(), d)
			defer cols[ColKind].Release()
			d.Release()
			sb.Release()
		}
		if v < 5 {
			// The services before vfree and module_memfree.
			svc := cols[ColService].(*array.Dictionary)
			sb := array.NewStringBuilder(memory.DefaultAllocator)
			for k := 0; k < numServicesIn(v); k++ {
				sb.Append(svc.Dictionary().(*array.String).Value(k))
			}
			d := sb.NewArray()
			cols[ColService] = array.NewDictionaryArray(fs[ColService].Type, svc.Indices(), d)
			defer cols[ColService].Release()
			d.Release()
			sb.Release()
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

// v3Rows returns rows as a file before version 4 holds them: no load
// rows, no register deltas.
func v3Rows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Kind == KindLoad {
			continue
		}
		r.RegMask, r.Regs = 0, [NumRegs]uint64{}
		out = append(out, r)
	}
	return out
}

// TestReadsVersion3 reads testdata/v3.arrow, the fixture rows as the
// format version 3 writer wrote them (no load kind, no register columns,
// no patchtrace.recorded): its rows are the current fixture's without
// loads and register deltas, and its metadata says neither was recorded.
func TestReadsVersion3(t *testing.T) {
	v3, err := os.ReadFile("testdata/v3.arrow")
	if err != nil {
		t.Fatal(err)
	}
	r, got := readAll(t, v3)
	defer r.Close()
	m := r.Meta()
	if m.Version != 3 || m.Status != StatusComplete || !r.Verified() {
		t.Fatalf("version %d status %q verified %v, want a verified complete version 3 file", m.Version, m.Status, r.Verified())
	}
	if m.Loads || m.Regs {
		t.Errorf("a version 3 file says loads %v regs %v, want neither recorded", m.Loads, m.Regs)
	}
	if r.Schema().NumFields() != ColRegRAX {
		t.Errorf("version 3 schema has %d columns, want %d", r.Schema().NumFields(), ColRegRAX)
	}
	compareRows(t, got, v3Rows(fixtureRows()))
	// The reader's own decoding (Scan) reads it alike, projected or not.
	for _, p := range []Projection{AllColumns, {Kinds: []Kind{KindInsn, KindTrap}, Columns: []int{ColRegRSP, ColLen}}} {
		var scanned []Row
		for row, err := range r.Scan(p) {
			if err != nil {
				t.Fatal(err)
			}
			scanned = append(scanned, *row)
		}
		if len(scanned) != len(got) {
			t.Fatalf("Scan(%+v): %d rows, want %d", p, len(scanned), len(got))
		}
		if p.Kinds == nil {
			compareRows(t, scanned, got)
		}
	}
	var pq bytes.Buffer
	if err := ExportParquet(r, &pq); err != nil {
		t.Fatal(err)
	}
	pgot, _ := readParquet(t, pq.Bytes(), r)
	compareRows(t, pgot, got)
	// The current file of the same rows records both.
	rc, cgot := readAll(t, writeTrace(t, fixtureRows()))
	defer rc.Close()
	if !rc.Meta().Loads || !rc.Meta().Regs || rc.Meta().Version != FormatVersion {
		t.Errorf("current file: version %d loads %v regs %v, want both", rc.Meta().Version, rc.Meta().Loads, rc.Meta().Regs)
	}
	compareRows(t, cgot, fixtureRows())
}

// TestReadsVersion1 reads a version 1 file (rflags uint64) like a current
// one, and exports it to Parquet in the current schema.
func TestReadsVersion1(t *testing.T) {
	rows := v3Rows(fixtureRows())
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
	rows := v3Rows(fixtureRows())
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

package format

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/klauspost/compress/zstd"
	"github.com/patchtrace/patchtrace/internal/memstat"
)

func TestExportParquet(t *testing.T) {
	mem := checkedAlloc(t)
	rows := fixtureRows()
	data := writeTrace(t, rows, WithBatchRows(7))
	for _, truncated := range []bool{false, true} {
		d := data
		if truncated {
			d = cutBeforeFooter(t, data)
		}
		r, err := NewReader(bytes.NewReader(d), int64(len(d)), WithReadAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		var pq bytes.Buffer
		if err := ExportParquet(r, &pq); err != nil {
			t.Fatal(err)
		}
		got, md := readParquet(t, pq.Bytes(), r)
		r.Close()
		compareRows(t, got, rows)
		status := StatusComplete
		if truncated {
			status = StatusWriting
		}
		for _, k := range MetaKeys {
			v, ok := md[k.Key]
			if !ok {
				t.Errorf("parquet metadata lacks %s", k.Key)
			}
			if k.Key == KeyStatus && v != status {
				t.Errorf("parquet %s = %q, want %q", k.Key, v, status)
			}
		}
	}
}

// TestExportParquetLargeBatches exports batches much larger than pqarrow's
// write batch (1024 rows) with nulls in the dictionary columns, in more
// than one row group: pqarrow v15 writes a nullable dictionary array
// wrongly past its first 1024 rows, so those columns go as strings.
func TestExportParquetLargeBatches(t *testing.T) {
	defer func(n int) { parquetRowGroupRows = n }(parquetRowGroupRows)
	parquetRowGroupRows = 5000
	var rows []Row
	for k := range 24 {
		for _, r := range fixtureRows() {
			if r.Seq != math.MaxUint64 {
				r.Seq += uint64(len(rows))
			}
			rows = append(rows, r)
		}
		for _, r := range loopRows(500 + k) {
			r.Seq += uint64(len(rows))
			rows = append(rows, r)
		}
	}
	rows = append(rows, loopRows(70000)...)
	for i := range rows {
		rows[i].Seq = uint64(i)
	}
	data := writeTrace(t, rows, WithBatchRows(1<<16)) // two batches, each more than a row group
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pq bytes.Buffer
	if err := ExportParquet(r, &pq); err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(pq.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if n := pf.NumRowGroups(); n < 2 {
		t.Errorf("%d row groups, want several", n)
	}
	pf.Close()
	got, _ := readParquet(t, pq.Bytes(), r)
	compareRows(t, got, rows)
}

// TestExportParquetAllocationLinear exports rows whose columns alternate
// between null and set in short runs (as a recorded trace's do) and bounds
// what the export allocates per row. arrow/go v15's Parquet writer, which
// the export used before it wrote its pages itself, reallocated a page's
// whole definition-level buffer at every RLE literal run with version 1
// pages (apache/arrow issue 41541): 80 KB a row here. The rows span two
// batches in one row group, so the levels of both batches go in one page.
func TestExportParquetAllocationLinear(t *testing.T) {
	rows := mixedRows(1 << 17)
	data := writeTrace(t, rows)
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pq bytes.Buffer
	alloc := memstat.Allocated(func() {
		err = ExportParquet(r, &pq)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Measured: ~1 KB a row (decoding the batches, the zstd encoders'
	// tables); ~4.2 KB with pqarrow and growAllocator, ~80 KB without.
	if per := alloc / uint64(len(rows)); per > 4000 {
		t.Errorf("export allocated %d bytes a row (%d MB for %d rows), want < 4000", per, alloc>>20, len(rows))
	}
	got, _ := readParquet(t, pq.Bytes(), r)
	compareRows(t, got, rows)
}

// readParquet reads a Parquet export back with pqarrow and decodes its rows
// with the reader's row decoding (the Arrow schema is restored from the
// file, dictionaries included).
func readParquet(t *testing.T, data []byte, r *Reader) ([]Row, map[string]string) {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	md := map[string]string{}
	kv := pf.MetaData().KeyValueMetadata()
	for i, k := range kv.Keys() {
		md[k] = kv.Values()[i]
	}
	// The v15 delta decoder leaks buffers, so pqarrow reads with the Go
	// allocator; the conversion below uses the checked one.
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var rows []Row
	for rr.Next() {
		b := &Batch{rec: ourDictionaries(t, rr.Record(), r)}
		if err := r.bind(b); err != nil {
			t.Fatal(err)
		}
		var row Row
		for i := 0; i < b.Len(); i++ {
			b.Row(i, &row)
			rows = append(rows, row)
		}
		b.Release()
	}
	if rr.Err() != nil && rr.Err() != io.EOF {
		t.Fatalf("read parquet after %d rows: %v", len(rows), rr.Err())
	}
	return rows, md
}

// ourDictionaries converts a record read from Parquet (dictionary columns
// are exported as strings) to the trace
// schema, mapping each string to its index in the trace's dictionary.
func ourDictionaries(t *testing.T, rec arrow.Record, r *Reader) arrow.Record {
	t.Helper()
	if rec.NumCols() != int64(len(Columns)) {
		t.Fatalf("parquet has %d columns", rec.NumCols())
	}
	cols := make([]arrow.Array, len(Columns))
	for i, c := range Columns {
		f := rec.Schema().Field(i)
		if f.Name != c.Name {
			t.Fatalf("parquet column %d is %s, want %s", i, f.Name, c.Name)
		}
		if i == ColBytes {
			// Exported as the len bytes; pad back to 15.
			src := rec.Column(i).(*array.Binary)
			fb := array.NewFixedSizeBinaryBuilder(r.mem, c.Type.(*arrow.FixedSizeBinaryType))
			for j := 0; j < src.Len(); j++ {
				if src.IsNull(j) {
					fb.AppendNull()
					continue
				}
				var v [15]byte
				copy(v[:], src.Value(j))
				fb.Append(v[:])
			}
			cols[i] = fb.NewArray()
			fb.Release()
			continue
		}
		dt, ok := c.Type.(*arrow.DictionaryType)
		if !ok {
			if !arrow.TypeEqual(f.Type, c.Type) || f.Nullable == c.Common {
				t.Fatalf("parquet column %s is %s, want %s", c.Name, f.Type, c.Type)
			}
			cols[i] = rec.Column(i)
			cols[i].Retain()
			continue
		}
		src, ok := rec.Column(i).(*array.String)
		if !ok {
			t.Fatalf("parquet column %s is %s, want utf8", c.Name, f.Type)
		}
		names := r.names[i]
		ib := array.NewBuilder(r.mem, dt.IndexType)
		for j := 0; j < src.Len(); j++ {
			if src.IsNull(j) {
				ib.AppendNull()
				continue
			}
			name := src.Value(j)
			k := slices.Index(names, name)
			if k < 0 {
				t.Fatalf("parquet column %s row %d: %q is not in the dictionary", c.Name, j, name)
			}
			switch b := ib.(type) {
			case *array.Int8Builder:
				b.Append(int8(k))
			case *array.Int16Builder:
				b.Append(int16(k))
			}
		}
		idx := ib.NewArray()
		ib.Release()
		dict := array.MakeFromData(stringData(r.mem, names))
		dict.Data().Release()
		cols[i] = array.NewDictionaryArray(dt, idx, dict)
		idx.Release()
		dict.Release()
	}
	out := array.NewRecord(Schema(), cols, rec.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return out
}

// TestInteropFiles writes a sample trace, its Parquet export and the Go
// reader's counts to $PATCHTRACE_INTEROP_DIR, for testdata/interop_check.py
// (skipped when the variable is unset).
func TestInteropFiles(t *testing.T) {
	dir := os.Getenv("PATCHTRACE_INTEROP_DIR")
	if dir == "" {
		t.Skip("PATCHTRACE_INTEROP_DIR not set")
	}
	rows := loopRows(150000)
	for _, r := range fixtureRows() {
		if r.Seq != math.MaxUint64 {
			r.Seq += 150000
		}
		rows = append(rows, r)
	}
	data := writeTrace(t, rows)
	arrowPath := filepath.Join(dir, "trace.arrow")
	if err := os.WriteFile(arrowPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(arrowPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pq bytes.Buffer
	if err := ExportParquet(r, &pq); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "trace.parquet"), pq.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	exp := map[string]any{}
	kinds, cpus := map[string]int{}, map[string]int{}
	var n int
	var maxSeq uint64
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		n++
		kinds[row.Kind.String()]++
		cpus[strconv.Itoa(int(row.CPU))]++
		maxSeq = max(maxSeq, row.Seq)
	}
	md := map[string]string{}
	sm := r.Schema().Metadata()
	for _, k := range []string{KeyFormatVersion, KeyScenario, KeyStatus, KeyEvents, KeySeed, KeyELF} {
		md[k] = sm.Values()[sm.FindKey(k)]
	}
	exp["rows"], exp["kinds"], exp["cpus"], exp["max_seq"], exp["metadata"] = n, kinds, cpus, maxSeq, md
	js, _ := json.MarshalIndent(exp, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expected.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExportMetadataOnce: the export stored the trace metadata twice (as
// Parquet key/value metadata and again inside the serialized Arrow schema,
// base64): 20 MB of symbols cost 283 MB. It is stored once.
func TestExportMetadataOnce(t *testing.T) {
	m := fixtureMeta()
	m.ScenarioText = strings.Repeat("x", 4<<20)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m)
	if err != nil {
		t.Fatal(err)
	}
	rows := fixtureRows()
	for i := range rows {
		if err := w.Append(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ExportParquet(r, &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 5<<20 {
		t.Fatalf("export of a trace with 4 MiB of metadata is %d bytes: the metadata is stored more than once", out.Len())
	}
	_, md := readParquet(t, out.Bytes(), r)
	if len(md[KeyScenarioText]) != 4<<20 {
		t.Fatalf("scenario text of %d bytes in the export", len(md[KeyScenarioText]))
	}
}

// TestExportParquetDeltaChoice exports row groups whose rip column packs
// small as differences (DELTA_BINARY_PACKED), does not (PLAIN), packs
// small but compresses better as values (PLAIN), or changes its nature
// after the first pqDeltaSample values either way, with an
// INT32 column (task) of differences, and checks each chunk's encoding in
// the footer and every value read back.
func TestExportParquetDeltaChoice(t *testing.T) {
	defer func(n int) { parquetRowGroupRows = n }(parquetRowGroupRows)
	const group = 8 * pqDeltaSample
	parquetRowGroupRows = group
	rng := rand.New(rand.NewPCG(5, 6))
	rows := loopRows(5 * group)
	for i := range rows {
		g, j := i/group, i%group
		random := g == 0 || g == 2 && j < pqDeltaSample || g == 3 && j >= pqDeltaSample
		switch {
		case random:
			rows[i].RIP = rng.Uint64()
		case g == 1 || g == 3:
			rows[i].RIP = 0xffffffff81000000 + uint64(3*j)
		case g == 4:
			// Differences that pack small (14 bits) but repeat
			// less plainly than the values (period 3).
			rows[i].RIP = 0xffffffff81000000 + 0x1000*uint64(j%3)
		default:
			rows[i].RIP = 0xffffffff81000000
		}
		// INT32 differences, the values crossing 2^31.
		rows[i].Task = 0x7fff0000 + uint32(5*i)
	}
	data := writeTrace(t, rows, WithBatchRows(group))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var pq bytes.Buffer
	if err := ExportParquet(r, &pq); err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(pq.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := []parquet.Encoding{parquet.Encodings.Plain, parquet.Encodings.DeltaBinaryPacked, parquet.Encodings.Plain, parquet.Encodings.Plain, parquet.Encodings.Plain}
	if n := pf.NumRowGroups(); n != len(want) {
		t.Fatalf("%d row groups, want %d", n, len(want))
	}
	for g, enc := range want {
		for _, col := range []struct {
			c   int
			enc parquet.Encoding
		}{{ColRIP, enc}, {ColTask, parquet.Encodings.DeltaBinaryPacked}, {ColSeq, parquet.Encodings.DeltaBinaryPacked}} {
			cc, err := pf.MetaData().RowGroup(g).ColumnChunk(col.c)
			if err != nil {
				t.Fatal(err)
			}
			es := cc.EncodingStats()
			if got := cc.Encodings(); len(got) == 0 || got[0] != col.enc || len(es) != 1 || es[0].Encoding != col.enc {
				t.Errorf("row group %d, %s: encodings %v (pages %v), want %v", g, Columns[col.c].Name, got, es, col.enc)
			}
		}
	}
	pf.Close()
	got, _ := readParquet(t, pq.Bytes(), r)
	compareRows(t, got, rows)
}

// TestExportParquetLevelChoice compresses a probe row group's pages of
// values of several shapes and checks the column's zstd level against
// the rule (the fastest level when its page is at most pqLevelSlack % of
// the export level's), with each outcome seen, and that a later group's
// page goes at the level chosen.
func TestExportParquetLevelChoice(t *testing.T) {
	e, err := newPageEncoder()
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	rng := rand.New(rand.NewPCG(9, 10))
	pool := make([]uint64, 50000)
	for i := range pool {
		pool[i] = rng.Uint64()
	}
	// Random values: no level compresses them (the fastest's page is
	// within 0.01 %). Values drawn from a pool of 400 KB: the better
	// level's larger tables find their repeats (27 % smaller).
	shapes := []struct {
		name string
		f    func() uint64
	}{
		{"random", rng.Uint64},
		{"pool", func() uint64 { return pool[rng.IntN(len(pool))] }},
	}
	seen := map[bool]bool{}
	for _, sh := range shapes {
		name := sh.name
		var data []byte
		for range 1 << 16 {
			data = binary.LittleEndian.AppendUint64(data, sh.f())
		}
		fast, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
		best, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(parquetZstdLevel), zstd.WithEncoderCRC(false))
		want := len(fast.EncodeAll(data, nil))*100 <= len(best.EncodeAll(data, nil))*pqLevelSlack
		pc := &pqColumn{kind: pqInt64, width: 8, required: true}
		var pages []string
		for _, group := range []int{0, 1} {
			ch := &pqChunk{vals: append(make([]byte, pqHeadroom()), data...), rows: len(data) / 8}
			e.finish(pc, ch, group)
			if pc.fast != want {
				t.Errorf("%s, group %d: fastest level %v, want %v", name, group, pc.fast, want)
			}
			pages = append(pages, string(ch.page))
		}
		if pages[0] != pages[1] {
			t.Errorf("%s: the group after the probe was compressed at another level", name)
		}
		seen[want] = true
	}
	if !seen[true] || !seen[false] {
		t.Errorf("the shapes chose only fastest=%v", seen)
	}
}

package format

import (
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// ParquetRowGroupRows is the number of rows per Parquet row group of an
// export: trace batches are buffered into row groups of this size (the
// unit a reader such as DuckDB reads in parallel), whatever the trace's
// batch size. Larger groups mean fewer pages, and arrow/go v15 builds a
// zstd encoder per page; one buffered group is what the export holds in
// memory (see RATIONALE.md).
const ParquetRowGroupRows = 1 << 18

// parquetRowGroupRows is ParquetRowGroupRows (tests lower it).
var parquetRowGroupRows = ParquetRowGroupRows

// parquetPageBytes is the data page size of an export. arrow/go v15 builds
// a new zstd encoder for every page it compresses, so small pages cost more
// in encoder setup than in compression (see RATIONALE.md).
const parquetPageBytes = 4 << 20

// ExportParquet writes every readable row of r to w as a zstd-compressed
// Parquet file: the same rows and columns, in row groups of
// ParquetRowGroupRows rows, with the trace's schema metadata as Parquet
// key-value metadata (once: the Arrow schema is not stored). Batches stream
// from the reader (checksums and shape checked as for any read, one batch
// decoded ahead of the writer) into pqarrow's buffered row groups, column by
// column: dictionary columns (kind, op, percpu_var, cause, service) are
// written as their indices into the trace's dictionaries, which become the
// Parquet dictionary pages (every Parquet reader sees VARCHAR/utf8); the
// bytes column holds only the len bytes (binary), and seq is
// delta-encoded. Memory is bounded by one row group, whatever the trace's
// length.
func ExportParquet(r *Reader, w io.Writer) error { return ExportParquetProgress(r, w, nil) }

// ExportParquetProgress is ExportParquet calling done (when not nil) with
// the row count of each batch once the writer has taken it, so a caller
// can show progress against r.NumEvents().
func ExportParquetProgress(r *Reader, w io.Writer, done func(rows int)) error {
	md := r.schema.Metadata()
	schema := parquetWriteSchema(md)
	popts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		// The v15 delta encoder does not free all its buffers: keep
		// them off the caller's (possibly checked) allocator.
		parquet.WithAllocator(memory.DefaultAllocator),
		// Row groups are started here (below), at batch boundaries,
		// so pqarrow never slices a batch.
		parquet.WithMaxRowGroupLength(MaxBatchRows),
		parquet.WithDataPageSize(parquetPageBytes),
		// Version 1 data pages: polars cannot read v15's version 2 pages
		// (a row group's column decodes short). Version 1 levels cost
		// time quadratic in a page's rows in v15 unless the default
		// allocator grows geometrically (growAllocator).
		parquet.WithDataPageVersion(parquet.DataPageV1),
		parquet.WithCreatedBy(fmt.Sprintf("patchtrace format v%d", FormatVersion)),
		parquet.WithDictionaryFor("seq", false),
		parquet.WithEncodingFor("seq", parquet.Encodings.DeltaBinaryPacked),
		// Min/max statistics only for the columns every row has (seq,
		// kind, cpu, task, depth, rip: what queries prune row groups
		// by). On a nullable column v15 computes them run by run of
		// non-null values, ~7 ns a value on a real trace's short runs:
		// 15-30% of the export's CPU (see RATIONALE.md).
		parquet.WithStats(false),
	}
	for _, c := range Columns {
		if c.Common {
			popts = append(popts, parquet.WithStatsFor(c.Name, true))
		}
		switch c.Type.ID() {
		case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
			// Numbers go PLAIN: zstd finds their repeats as well as a
			// dictionary does (the file is smaller), without hashing
			// every value.
			popts = append(popts, parquet.WithDictionaryFor(c.Name, false))
		}
	}
	props := parquet.NewWriterProperties(popts...)
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(memory.DefaultAllocator)))
	if err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	dicts := exportDicts(r)
	defer func() {
		for _, d := range dicts {
			if d != nil {
				d.Release()
			}
		}
	}()
	// One goroutine reads and checks batches ahead of the writer; it is
	// the only user of r while the export runs.
	type item struct {
		b   *Batch
		err error
	}
	ch := make(chan item, 1)
	stop := make(chan struct{})
	go func() {
		defer close(ch)
		for i := 0; i < r.NumBatches(); i++ {
			b, err := r.Batch(i)
			select {
			case ch <- item{b, err}:
			case <-stop:
				if b != nil {
					b.Release()
				}
				return
			}
			if err != nil {
				return
			}
		}
	}()
	fail := func(err error) error {
		close(stop)
		for it := range ch {
			if it.b != nil {
				it.b.Release()
			}
		}
		fw.Close()
		return err
	}
	groupRows := 0
	for it := range ch {
		if it.err != nil {
			return fail(it.err)
		}
		b := it.b
		if b.Len() > 0 {
			if groupRows > 0 && groupRows+b.Len() > parquetRowGroupRows {
				fw.NewBufferedRowGroup()
				groupRows = 0
			}
			groupRows += b.Len()
			err = safely(func() error {
				rec := exportRecord(b, schema, dicts)
				defer rec.Release()
				return fw.WriteBuffered(rec)
			})
		}
		i, n := b.Index(), b.Len()
		b.Release()
		if err != nil {
			return fail(fmt.Errorf("format: parquet: batch %d: %w", i, err))
		}
		if done != nil {
			done(n)
		}
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	return nil
}

// ParquetSchema is the schema of a Parquet export as readers see it: the
// trace schema with dictionary columns as utf8, bytes as binary, and the
// given metadata.
func ParquetSchema(md arrow.Metadata) *arrow.Schema {
	fs := baseSchema.Fields()
	for i, f := range fs {
		if _, ok := f.Type.(*arrow.DictionaryType); ok {
			fs[i].Type = arrow.BinaryTypes.String
		}
	}
	fs[ColBytes].Type = arrow.BinaryTypes.Binary
	return arrow.NewSchema(fs, &md)
}

// parquetWriteSchema is the schema handed to pqarrow: the trace schema
// with bytes as binary and the nullable dictionary columns as utf8 (see
// exportRecord). Kind stays a dictionary column: Parquet UTF8,
// dictionary-encoded from the array's own dictionary.
func parquetWriteSchema(md arrow.Metadata) *arrow.Schema {
	fs := baseSchema.Fields()
	for i, c := range Columns {
		if _, ok := c.Type.(*arrow.DictionaryType); ok && !c.Common {
			fs[i].Type = arrow.BinaryTypes.String
		}
	}
	fs[ColBytes].Type = arrow.BinaryTypes.Binary
	return arrow.NewSchema(fs, &md)
}

// exportDicts returns the dictionary of each dictionary column: the
// reader's (first batch's) names, which every row of the trace is decoded
// with, so the export shows what the reader shows.
func exportDicts(r *Reader) [NumColumns]arrow.Array {
	var dicts [NumColumns]arrow.Array
	for i, c := range Columns {
		if _, ok := c.Type.(*arrow.DictionaryType); !ok {
			continue
		}
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		sb.AppendValues(r.names[i], nil)
		dicts[i] = sb.NewArray()
		sb.Release()
	}
	return dicts
}

// exportRecord returns b's record as the export writes it: dictionary
// columns keep their indices with the reader's dictionary, bytes is cut to
// len bytes and a version 1 rflags becomes uint32. Only bytes and a
// version 1 rflags are rebuilt, buffer to buffer.
func exportRecord(b *Batch, schema *arrow.Schema, dicts [NumColumns]arrow.Array) arrow.Record {
	mem := memory.DefaultAllocator
	cols := make([]arrow.Array, NumColumns)
	for i, c := range Columns {
		switch {
		case i >= int(b.rec.NumCols()):
			// A column an older version's file does not have: null.
			cols[i] = array.MakeArrayOfNull(mem, c.Type, b.n)
		case i == ColBytes:
			cols[i] = exportBytes(b)
		case i == ColRFlags && b.rflags64:
			// A version 1 file: export as the current format's uint32.
			ub := array.NewUint32Builder(mem)
			ub.Reserve(b.n)
			cv := &b.cols[i]
			for j := 0; j < b.n; j++ {
				if cv.ok(j) {
					ub.Append(uint32(le64(cv.vals, j)))
				} else {
					ub.AppendNull()
				}
			}
			cols[i] = ub.NewArray()
			ub.Release()
		case dicts[i] != nil && !c.Common:
			// pqarrow v15 writes a nullable dictionary array wrongly
			// past its first write batch (1024 rows):
			// columnWriter.maybeReplaceValidity reslices the indices
			// of the sliced array as int32 from the wrong end. These
			// columns go as strings (Parquet dictionary-encodes them).
			cols[i] = exportStrings(b, i)
		case dicts[i] != nil:
			idx := b.rec.Column(i).(*array.Dictionary).Indices()
			cols[i] = array.NewDictionaryArray(c.Type, idx, dicts[i])
		default:
			cols[i] = b.rec.Column(i)
			cols[i].Retain()
		}
	}
	rec := array.NewRecord(schema, cols, int64(b.n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

// exportStrings builds dictionary column i as strings, buffer to buffer.
func exportStrings(b *Batch, i int) arrow.Array {
	names := (*b.names)[i]
	cv := &b.cols[i]
	wide := Columns[i].Type.(*arrow.DictionaryType).IndexType.(arrow.FixedWidthDataType).BitWidth() == 16
	n := b.n
	offs := make([]int32, n+1)
	data := make([]byte, 0, 8*n)
	for j := 0; j < n; j++ {
		offs[j] = int32(len(data))
		if !cv.ok(j) {
			continue
		}
		k := int(int8(cv.vals[j]))
		if wide {
			k = int(int16(le16(cv.vals, j)))
		}
		data = append(data, names[k]...)
	}
	offs[n] = int32(len(data))
	nulls := b.rec.Column(i).NullN()
	var valid *memory.Buffer
	if nulls > 0 && cv.valid != nil {
		valid = memory.NewBufferBytes(append([]byte(nil), cv.valid[:(n+7)/8]...))
	} else {
		nulls = 0
	}
	ob := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(offs))), 4*len(offs))
	d := array.NewData(arrow.BinaryTypes.String, n,
		[]*memory.Buffer{valid, memory.NewBufferBytes(ob), memory.NewBufferBytes(data)}, nil, nulls, 0)
	defer d.Release()
	return array.NewStringData(d)
}

// exportBytes builds the binary bytes column (each row's first len bytes,
// at most 15) directly as offsets and data buffers.
func exportBytes(b *Batch) arrow.Array {
	cv, lens := &b.cols[ColBytes], &b.cols[ColLen]
	n := b.n
	offs := make([]int32, n+1)
	data := make([]byte, 0, 15*n)
	nulls := 0
	for j := 0; j < n; j++ {
		offs[j] = int32(len(data))
		if !cv.ok(j) {
			nulls++
			continue
		}
		k := 15
		if lens.ok(j) {
			k = min(k, int(lens.vals[j]))
		}
		data = append(data, cv.vals[15*j:15*j+k]...)
	}
	offs[n] = int32(len(data))
	var valid *memory.Buffer
	if nulls > 0 {
		vb := make([]byte, (n+7)/8)
		for j := 0; j < n; j++ {
			if cv.ok(j) {
				vb[j>>3] |= 1 << (j & 7)
			}
		}
		valid = memory.NewBufferBytes(vb)
	}
	ob := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(offs))), 4*len(offs))
	d := array.NewData(arrow.BinaryTypes.Binary, n,
		[]*memory.Buffer{valid, memory.NewBufferBytes(ob), memory.NewBufferBytes(data)}, nil, nulls, 0)
	defer d.Release()
	return array.NewBinaryData(d)
}

package format

import (
	"fmt"
	"io"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// ExportParquet writes every readable row of r to w as a zstd-compressed
// Parquet file: the same rows and columns, one row group per batch, with
// the trace's schema metadata as Parquet key-value metadata. Dictionary
// columns (kind, op, percpu_var, cause, service) are written as plain
// strings, which Parquet dictionary-encodes itself: every Parquet reader
// then sees VARCHAR/utf8. The bytes column holds only the len bytes
// (binary), and seq is delta-encoded.
func ExportParquet(r *Reader, w io.Writer) error {
	schema := ParquetSchema(r.schema.Metadata())
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		// The v15 delta encoder does not free all its buffers: keep
		// them off the caller's (possibly checked) allocator.
		parquet.WithAllocator(memory.DefaultAllocator),
		parquet.WithMaxRowGroupLength(MaxBatchRows),
		parquet.WithCreatedBy(fmt.Sprintf("patchtrace format v%d", FormatVersion)),
		parquet.WithDictionaryFor("seq", false),
		parquet.WithEncodingFor("seq", parquet.Encodings.DeltaBinaryPacked),
	)
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	for i := 0; i < r.NumBatches(); i++ {
		b, err := r.Batch(i)
		if err != nil {
			fw.Close()
			return err
		}
		if b.Len() > 0 {
			err = safely(func() error {
				rec := plainRecord(r, b, schema)
				defer rec.Release()
				return fw.Write(rec)
			})
		}
		b.Release()
		if err != nil {
			fw.Close()
			return fmt.Errorf("format: parquet: batch %d: %w", i, err)
		}
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	return nil
}

// ParquetSchema is the schema of a Parquet export: the trace schema with
// dictionary columns as utf8, bytes as binary, and the given metadata.
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

// plainRecord returns b's record with dictionary columns as strings.
func plainRecord(r *Reader, b *Batch, schema *arrow.Schema) arrow.Record {
	cols := make([]arrow.Array, NumColumns)
	for i, c := range Columns {
		if i == ColBytes {
			bb := array.NewBinaryBuilder(r.mem, arrow.BinaryTypes.Binary)
			bb.Reserve(b.n)
			cv, lens := &b.cols[ColBytes], &b.cols[ColLen]
			for j := 0; j < b.n; j++ {
				if !cv.ok(j) {
					bb.AppendNull()
					continue
				}
				n := 15
				if lens.ok(j) {
					n = min(n, int(lens.vals[j]))
				}
				bb.Append(cv.vals[15*j : 15*j+n])
			}
			cols[i] = bb.NewArray()
			bb.Release()
			continue
		}
		if i == ColRFlags && b.rflags64 {
			// A version 1 file: export as the current format's uint32.
			ub := array.NewUint32Builder(r.mem)
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
			continue
		}
		dt, ok := c.Type.(*arrow.DictionaryType)
		if !ok {
			cols[i] = b.rec.Column(i)
			cols[i].Retain()
			continue
		}
		w := dt.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
		names := r.names[i]
		cv := &b.cols[i]
		sb := array.NewStringBuilder(r.mem)
		sb.Reserve(b.n)
		for j := 0; j < b.n; j++ {
			if !cv.ok(j) {
				sb.AppendNull()
				continue
			}
			if w == 1 {
				sb.Append(names[cv.vals[j]])
			} else {
				sb.Append(names[le16(cv.vals, j)])
			}
		}
		cols[i] = sb.NewArray()
		sb.Release()
	}
	rec := array.NewRecord(schema, cols, int64(b.n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

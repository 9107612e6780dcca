package format

import (
	"fmt"
	"io"

	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// ExportParquet writes every readable row of r to w as a zstd-compressed
// Parquet file: the same columns (dictionary columns stay dictionary-encoded
// strings), one row group per batch, and the trace's schema metadata as
// Parquet key-value metadata (plus the Arrow schema under ARROW:schema).
func ExportParquet(r *Reader, w io.Writer) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithAllocator(r.mem),
		parquet.WithMaxRowGroupLength(MaxBatchRows),
		parquet.WithCreatedBy("patchtrace format v"+fmt.Sprint(FormatVersion)),
	)
	fw, err := pqarrow.NewFileWriter(r.schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
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
			err = safely(func() error { return fw.Write(b.Record()) })
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

// Package format is the patchtrace trace file: the event table's schema,
// declared once in [Columns] (with the [Kinds] table, the enums and
// [MetaKeys]), an Arrow IPC file writer and reader with zstd-compressed
// record batches, and the Parquet export.
//
// A trace is one Arrow IPC file. Each row is one event of the emulated
// machine, ordered by the global sequence number `seq`; the columns a kind
// does not use are null. Record batches cover contiguous sequence ranges,
// and the footer's batch index lets a reader seek by sequence number.
// Schema-level metadata makes the file self-contained: the scenario, the
// kernel slice ELF, the symbol table, quirks, seed, decision log and a
// completeness mark. docs/trace-format.md (generated from the tables here)
// describes every column, kind, enum and key, with DuckDB queries.
//
// Writing: [NewWriter] or [CreateFile], [Writer.Append] per event (no
// allocation), [Writer.SetFinal], Close. Reading: [Open] or [NewReader],
// then [Reader.Events], [Reader.EventsFrom] or [Reader.Batch]. A file cut
// short by a killed run is read up to its last complete batch and reports
// [Reader.Truncated]. [ExportParquet] writes the same rows as Parquet.
//
// A [Row] says which columns it stores by the column table alone:
// [Row.Stored] per column, [Row.StoredRow] for the row a reader would give
// back, [Row.Field] to print a column (a re-execution compares rows so).
//
// This package imports nothing else of patchtrace. RATIONALE.md explains
// the design choices (footer metadata, encodings, crash tolerance).
//
// Generated files (columns_gen.go, testdata/schema.golden,
// testdata/duckdb_queries.sql, ../docs/trace-format.md) are refreshed by
//
//go:generate go test -run TestGenerated -update
package format

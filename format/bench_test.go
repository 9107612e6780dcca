package format

import (
	"bytes"
	"io"
	"testing"

	"github.com/patchtrace/patchtrace/internal/memstat"
)

// byteCounter counts bytes and drops them.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkWrite appends tight-loop instruction rows (the repetitive case)
// and writes them compressed, in the background (default) or serially.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"background", nil}, {"serial", []Option{WithSerial()}}} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 1 << 20
			rows := loopRows(10 * 1024) // cycled; a 1Mi-row slice would be GC-scanned
			var total, size int64
			b.ReportAllocs()
			for b.Loop() {
				cw := &byteCounter{}
				w, err := NewWriter(cw, fixtureMeta(), bc.opts...)
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					r := &rows[i%len(rows)]
					r.Seq = uint64(i)
					if err := w.Append(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				total += n
				size += cw.n
			}
			// rows/s: rows appended, encoded, compressed and written per second.
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
			// B/row: file bytes per row (metadata included).
			b.ReportMetric(float64(size)/float64(total), "B/row")
		})
	}
}

// BenchmarkAppend measures Append alone: no batch fills.
func BenchmarkAppend(b *testing.B) {
	rows := loopRows(4096)
	b.ReportAllocs()
	var w *Writer
	seq := uint64(0)
	for b.Loop() {
		if w == nil || seq%MaxBatchRows == MaxBatchRows-1 {
			b.StopTimer()
			if w != nil {
				w.abort()
			}
			var err error
			if w, err = NewWriter(io.Discard, fixtureMeta(), WithBatchRows(MaxBatchRows)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		r := &rows[seq%4096]
		r.Seq = seq
		seq++
		if err := w.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	w.abort()
}

// BenchmarkRead decodes every row of a 1Mi-row tight-loop trace.
func BenchmarkRead(b *testing.B) {
	const n = 1 << 20
	data := writeTrace(b, loopRows(n))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var total int64
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range r.Events() {
			if err != nil {
				b.Fatal(err)
			}
			total++
		}
		r.Close()
	}
	// rows/s: rows decoded into Row values per second.
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCopyStored is the per-row cost of a re-execution's comparison
// (replay --verify turns every re-executed row into its stored form).
func BenchmarkCopyStored(b *testing.B) {
	rows := fixtureRows()
	var dst Row
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rows[i%len(rows)].CopyStored(&dst)
	}
}

// BenchmarkExportParquet exports 1 Mi rows to Parquet: the tight-loop
// fixture (instructions only: the per-kind columns are all null) and the
// mixed one (instructions with their loads, stores and register deltas:
// short runs of nulls in most columns, as in a recorded trace).
func BenchmarkExportParquet(b *testing.B) {
	const n = 1 << 20
	for _, shape := range []struct {
		name string
		rows func(int) []Row
	}{{"loop", loopRows}, {"mixed", mixedRows}} {
		b.Run(shape.name, func(b *testing.B) {
			data := writeTrace(b, shape.rows(n))
			b.ReportAllocs()
			var total int64
			var peak uint64
			var cw byteCounter
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				cw.n = 0
				peak = max(peak, memstat.PeakHeap(func() {
					if err = ExportParquet(r, &cw); err != nil {
						b.Fatal(err)
					}
				}))
				r.Close()
				total += n
			}
			// events/s: rows read, converted and written as Parquet per second.
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
			// bytes/event: the Parquet file's size per row.
			b.ReportMetric(float64(cw.n)/n, "bytes/event")
			// peak-heap-MB: the largest live heap during one export.
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

// BenchmarkScan compares the row decoders on a 1Mi-row tight-loop trace:
// the Arrow library's (Batch), the reader's own with every column
// (Events), and with only the common columns and the store kinds'
// (Scan with a projection).
func BenchmarkScan(b *testing.B) {
	const n = 1 << 20
	data := writeTrace(b, loopRows(n))
	for _, mode := range []string{"arrow", "all", "projected"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			var total int64
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				rows := r.Events()
				switch mode {
				case "arrow":
					rows = r.eventsArrow(0)
				case "projected":
					rows = r.Scan(Projection{Columns: []int{ColAddr, ColSize, ColNew}, Kinds: []Kind{KindWrite}})
				}
				for _, err := range rows {
					if err != nil {
						b.Fatal(err)
					}
					total++
				}
				r.Close()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

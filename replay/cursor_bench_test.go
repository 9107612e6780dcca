package replay_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// benchTrace is the trace the cursor benchmarks read: the file
// PATCHTRACE_BENCH_TRACE names (a 25M-event one: patchtrace record
// bench-fentry), else a bench-fentry run of 100,000 iterations (~2.9M
// events) recorded here.
func benchTrace(b *testing.B) string {
	if p := os.Getenv("PATCHTRACE_BENCH_TRACE"); p != "" {
		return p
	}
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		b.Fatal(err)
	}
	spec, err = explore.Prepare(spec, map[string]uint64{"bench_iters": 100_000}, 0, true)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "bench.arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}}); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkCursor measures a Cursor on a bench-fentry trace: "cold" seeks
// to the last event from a new cursor (what `replay --until` pays: every
// event is read once), "index" takes every snapshot, "warm" seeks to
// events spread over the trace once indexed (what a debugger pays per
// move). Metrics: events/s for the reads from the start, ms per seek.
func BenchmarkCursor(b *testing.B) {
	path := benchTrace(b)
	r, err := format.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	n := r.NumEvents()
	tmpl, err := replay.NewTemplate(r.Meta())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			c, err := replay.NewCursor(r, tmpl)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Seek(n - 1); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	c, err := replay.NewCursor(r, tmpl)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			c.Rewind()
			c.Index(nil)
		}
		ns, every, bytes := c.Snapshots()
		b.ReportMetric(float64(ns), "snapshots")
		b.ReportMetric(float64(every), "batches/snapshot")
		b.ReportMetric(float64(bytes)/(1<<20), "snapshot-MiB")
	})
	b.Run("warm", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			i = (i + 7919) % 97
			if err := c.Seek(n - 1 - i*(n/97)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/seek")
	})
	b.Run("prev", func(b *testing.B) {
		// Reverse stepping: one event back at a time (a debugger's
		// reverse-stepi), from the last event.
		if err := c.Seek(n - 1); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if ok, err := c.Prev(); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
	})
}

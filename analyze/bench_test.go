package analyze_test

import (
	"flag"
	"github.com/patchtrace/patchtrace/internal/memstat"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

var long = flag.Bool("long", false, "run the 100M-event memory measurement")

// recordFentry writes a bench-fentry trace of about 25*iters/1e6 million
// events and returns its path and event count.
func recordFentry(tb testing.TB, dir string, iters uint64) (string, uint64) {
	tb.Helper()
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		tb.Fatal(err)
	}
	spec.Params["bench_iters"] = iters
	path := filepath.Join(dir, "fentry.arrow")
	res, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}})
	if err != nil {
		tb.Fatal(err)
	}
	return path, res.Events
}

// BenchmarkAnalyzeFentry replays a 12.5M-event trace through every analyzer.
func BenchmarkAnalyzeFentry(b *testing.B) {
	path, events := recordFentry(b, b.TempDir(), 500_000)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		res, err := analyze.AnalyzeFile(path, analyze.All())
		if err != nil || res.Events != events {
			b.Fatalf("%v: %d events, want %d", err, res.Events, events)
		}
	}
	// Trace events replayed and analyzed per second, all analyzers on.
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestAnalyzeMemoryBounded analyzes a ~100M-event trace (with -long; a
// 10M-event one otherwise) and reports the peak heap; memory must not grow
// with the trace, so the 10M and 100M figures should be alike.
func TestAnalyzeMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("records a large trace")
	}
	iters := uint64(400_000) // ~10M events
	if *long {
		iters = 4_000_000 // ~100M events
	}
	path, events := recordFentry(t, t.TempDir(), iters)
	var res *analyze.Result
	var err error
	peak := memstat.PeakHeap(func() { res, err = analyze.AnalyzeFile(path, analyze.All()) })
	if err != nil || res.Events != events {
		t.Fatalf("%v: %d events of %d", err, res.Events, events)
	}
	t.Logf("analyzed %d events with peak heap %.1f MiB", events, float64(peak)/(1<<20))
	if peak > 512<<20 {
		t.Errorf("peak heap %d MiB for %d events: memory is growing with the trace", peak>>20, events)
	}
}

package record

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/scenario"
)

var long = flag.Bool("long", false, "record 100M instructions in the memory benchmark and test")

// Figures reported by the record benchmarks:
//
//   - Minstr/s: guest instructions retired per second of wall time, with
//     every event recorded, encoded, compressed and written to a file
//     (the file is renamed into place and synced before the clock stops).
//   - B/insn: bytes of the finished .arrow file (header, metadata, batches,
//     footer) divided by the number of instruction events (insn rows). This
//     is the "bytes on disk per instruction event": the write, trap
//     and other rows an instruction causes are paid for by the instructions.
//   - B/event: the same bytes divided by all rows of every kind.
//   - events/insn: rows per instruction, so that one can go from one to the
//     other.
//   - cpu-ns/insn: CPU time of the whole process (user + system, every
//     goroutine: emulation, encoding, compression, GC) per instruction. It
//     shows the cost when other processes share the machine and the
//     wall-clock rate does not.

// fentrySpec is bench-fentry with iters loop iterations: 2 + 20.5*iters
// instructions and 5*iters memory writes on one CPU.
func fentrySpec(tb testing.TB, iters uint64) *scenario.Spec {
	s := load(tb, "bench-fentry")
	s.Params = map[string]uint64{"bench_iters": iters}
	s.MaxInsns = 21*iters + 1000 // the workload, not the default budget (100M is the -long size)
	return s
}

// textPokeSpec is text-poke-bp scaled to about 12M instructions on 4 CPUs.
func textPokeSpec(tb testing.TB) *scenario.Spec {
	s := load(tb, "text-poke-bp")
	s.Params = map[string]uint64{"patch_rounds": 1800, "calls": 42000, "dwell": 64}
	s.MaxInsns = 0
	return s
}

// recordOnce records spec to a fresh file in dir and returns the result and
// the file's size.
func recordOnce(tb testing.TB, spec *scenario.Spec, dir string, seed uint64) (*Result, int64) {
	tb.Helper()
	path := filepath.Join(dir, "bench.arrow")
	res, err := Run(spec, path, Options{Options: emu.Options{Seed: seed}, Force: true})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return res, st.Size()
}

func benchRecord(b *testing.B, spec *scenario.Spec) {
	dir := b.TempDir()
	b.ReportAllocs()
	var insns, events, size, rows uint64
	cpu0 := cpuTime()
	for b.Loop() {
		res, sz := recordOnce(b, spec, dir, 1)
		insns += res.Insns
		events += res.Events
		rows += res.Kinds[format.KindInsn] // native service calls retire as service rows
		size += uint64(sz)
	}
	cpu := cpuTime() - cpu0
	// Minstr/s: guest instructions per second, everything recorded to disk.
	b.ReportMetric(float64(insns)/b.Elapsed().Seconds()/1e6, "Minstr/s")
	// B/insn: file bytes per instruction event (insn row).
	b.ReportMetric(float64(size)/float64(rows), "B/insn")
	// B/event: file bytes per event (row) of any kind.
	b.ReportMetric(float64(size)/float64(events), "B/event")
	// events/insn: rows per instruction event.
	b.ReportMetric(float64(events)/float64(rows), "events/insn")
	// cpu-ns/insn: process CPU time per guest instruction.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(insns), "cpu-ns/insn")
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordFentry records the fentry-hook loop (bench-fentry,
// 500k iterations: 10.25M instructions, 12.75M events) to a file: the
// figure to set beside the same loop traced with memory hooks under Unicorn.
func BenchmarkRecordFentry(b *testing.B) {
	benchRecord(b, fentrySpec(b, 500_000))
}

// BenchmarkRecordTextPokeBP records text-poke-bp scaled to ~12M
// instructions on 4 interleaved CPUs.
func BenchmarkRecordTextPokeBP(b *testing.B) {
	benchRecord(b, textPokeSpec(b))
}

// heapPeaks are the largest heap figures seen while a function ran.
type heapPeaks struct {
	objects uint64 // heap objects, live or not yet collected
	live    uint64 // heap live after the last GC (what the GC found reachable)
}

// peakHeap samples the heap every millisecond while fn runs and returns
// the largest values seen.
func peakHeap(fn func()) heapPeaks {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var peak heapPeaks
	var mu sync.Mutex
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			mu.Lock()
			peak.objects = max(peak.objects, sample[0].Value.Uint64())
			peak.live = max(peak.live, sample[1].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	return peak
}

// BenchmarkRecordMemory records bench-fentry at 10M and (with -long) 100M
// instructions and reports the peak heap: recording streams, so the two
// peaks must be alike.
func BenchmarkRecordMemory(b *testing.B) {
	for _, c := range []struct {
		name  string
		iters uint64
	}{{"insns=10M", 487_805}, {"insns=100M", 4_878_049}} {
		b.Run(c.name, func(b *testing.B) {
			if c.iters > 1_000_000 && !*long {
				b.Skip("needs -long")
			}
			spec := fentrySpec(b, c.iters)
			dir := b.TempDir()
			recordOnce(b, fentrySpec(b, 10_000), dir, 1) // warm up, as in TestRecordMemoryBounded
			b.ReportAllocs()
			var peak heapPeaks
			var insns uint64
			for b.Loop() {
				p := peakHeap(func() {
					res, _ := recordOnce(b, spec, dir, 1)
					insns += res.Insns
				})
				peak.objects = max(peak.objects, p.objects)
				peak.live = max(peak.live, p.live)
			}
			// peak-heap-MiB: the largest heap (objects, live or garbage) seen
			// while recording one run.
			b.ReportMetric(float64(peak.objects)/(1<<20), "peak-heap-MiB")
			// peak-live-MiB: the largest live heap a GC found while recording
			// one run (what recording holds on to).
			b.ReportMetric(float64(peak.live)/(1<<20), "peak-live-MiB")
			// Minstr/s: as in BenchmarkRecordFentry.
			b.ReportMetric(float64(insns)/b.Elapsed().Seconds()/1e6, "Minstr/s")
		})
	}
}

// TestRecordMemoryBounded records 10M and (with -long) 100M instructions of
// bench-fentry and checks that the peak heap does not grow with the trace.
func TestRecordMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("records a large trace")
	}
	sizes := []uint64{487_805}
	if *long {
		sizes = append(sizes, 4_878_049)
	}
	// A first recording in a process allocates the writer's batches and
	// encoders; later ones reuse them (format pools them). Warm up so that
	// both measurements are of a later recording.
	recordOnce(t, fentrySpec(t, 10_000), t.TempDir(), 1)
	var peaks []uint64
	for _, iters := range sizes {
		var res *Result
		peak := peakHeap(func() { res, _ = recordOnce(t, fentrySpec(t, iters), t.TempDir(), 1) })
		t.Logf("%d instructions, %d events: peak heap %.1f MiB, peak live heap %.1f MiB",
			res.Insns, res.Events, float64(peak.objects)/(1<<20), float64(peak.live)/(1<<20))
		peaks = append(peaks, peak.live)
		if peak.objects > 256<<20 {
			t.Errorf("peak heap %d MiB for %d instructions", peak.objects>>20, res.Insns)
		}
	}
	// Ten times the trace must not be anywhere near ten times the memory;
	// the margin absorbs where the GC happened to sample the live heap.
	if len(peaks) == 2 && peaks[1] > peaks[0]+peaks[0]/4+(8<<20) {
		t.Errorf("peak live heap grew from %d MiB (10M instructions) to %d MiB (100M)", peaks[0]>>20, peaks[1]>>20)
	}
}

// Package memstat measures the peak live heap of a piece of work, for the
// memory figures the benchmarks and `patchtrace bench` report.
package memstat

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// PeakHeap runs fn and returns the largest live-heap size (bytes of heap
// objects, /memory/classes/heap/objects:bytes) sampled every 5 ms while it
// ran, after two GCs before it started (the first only moves sync.Pool
// contents, such as a trace reader's decode buffers left by earlier work in
// the process, to the pools' victim caches; the second frees them).
func PeakHeap(fn func()) uint64 {
	runtime.GC()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	var mu sync.Mutex
	read := func() {
		metrics.Read(sample)
		mu.Lock()
		peak = max(peak, sample[0].Value.Uint64())
		mu.Unlock()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	}()
	fn()
	read()
	close(done)
	wg.Wait()
	return peak
}

// Allocated runs fn and returns the bytes it allocated on the heap
// (/gc/heap/allocs:bytes; counted a span at a time, so approximate to a few
// KiB). Unlike PeakHeap it forces no GC, so a fuzz target can call it for
// every input to check that a small input cannot make fn allocate a lot.
func Allocated(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	fn()
	metrics.Read(sample)
	return sample[0].Value.Uint64() - before
}

// Within runs fn and reports whether it allocated at most limit bytes,
// with the count. Allocations by other goroutines in the process (a fuzz
// worker's own) count too, so when the first count is over the limit fn
// runs again and the smaller count decides: fn must be repeatable.
func Within(limit uint64, fn func()) (uint64, bool) {
	n := Allocated(fn)
	if n > limit {
		n = min(n, Allocated(fn))
	}
	return n, n <= limit
}

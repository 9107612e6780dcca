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
// ran, after a GC before it started.
func PeakHeap(fn func()) uint64 {
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

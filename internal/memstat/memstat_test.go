package memstat

import "testing"

func TestPeakHeapSeesAnAllocation(t *testing.T) {
	var keep []byte
	peak := PeakHeap(func() {
		keep = make([]byte, 64<<20)
		for i := range keep {
			keep[i] = byte(i)
		}
	})
	if peak < 64<<20 {
		t.Fatalf("peak %d MiB, want at least the 64 MiB held", peak>>20)
	}
	_ = keep
}

func TestAllocated(t *testing.T) {
	var keep []byte
	n := Allocated(func() { keep = make([]byte, 8<<20) })
	if n < 8<<20 || n > 9<<20 {
		t.Errorf("allocating 8 MiB counted %d bytes", n)
	}
	_ = keep
}

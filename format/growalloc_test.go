package format

import (
	"testing"
	"unsafe"
)

// TestGrowAllocator checks what arrow asks of an allocator: aligned,
// zeroed bytes, contents kept on growth, and bytes exposed again after a
// shrink zeroed; and that growth is geometric (a run of small growths
// copies O(log n) times).
func TestGrowAllocator(t *testing.T) {
	var a growAllocator
	b := a.Allocate(100)
	if len(b) != 100 || uintptr(unsafe.Pointer(&b[0]))%64 != 0 {
		t.Fatalf("Allocate(100): len %d, address %p", len(b), &b[0])
	}
	for i := range b {
		b[i] = byte(i + 1)
	}
	copies := 0
	for size := 164; size <= 1<<16; size += 64 {
		nb := a.Reallocate(size, b)
		if &nb[0] != &b[0] {
			copies++
		}
		if uintptr(unsafe.Pointer(&nb[0]))%64 != 0 || len(nb) != size {
			t.Fatalf("Reallocate(%d): len %d, address %p", size, len(nb), &nb[0])
		}
		for i := 0; i < 100; i++ {
			if nb[i] != byte(i+1) {
				t.Fatalf("Reallocate(%d) lost byte %d", size, i)
			}
		}
		for i := 100; i < size; i++ {
			if nb[i] != 0 {
				t.Fatalf("Reallocate(%d): byte %d is %d, want 0", size, i, nb[i])
			}
		}
		b = nb
	}
	if copies > 12 {
		t.Errorf("%d copies growing to 64 KiB by 64 bytes, want O(log n)", copies)
	}
	// Shrink, dirty the tail through the old slice, grow back: zeros.
	big := b
	b = a.Reallocate(200, b)
	big[300] = 7
	b = a.Reallocate(400, b)
	if b[300] != 0 {
		t.Errorf("grown back within capacity: byte 300 is %d, want 0", b[300])
	}
}

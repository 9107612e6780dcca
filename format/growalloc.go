package format

import (
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// growAllocator is arrow's Go allocator (64-byte aligned, zeroed, garbage
// collected) except that Reallocate grows geometrically: a buffer grown
// past its capacity gets twice the capacity it had, and a later growth
// within that capacity reslices in place (the bytes it exposes zeroed, as
// a fresh allocation's would be).
//
// It is installed as memory.DefaultAllocator (init below) because of a
// quadratic cost in arrow/go v15's Parquet writer (apache/arrow issue
// 41541, fixed in v17 by pull request 41638): with version 1 data pages
// the definition-level buffer of a column is offset by 4 bytes, and the
// RLE encoder reserves room at every literal run through
// PooledBufferWriter.Reserve, which asks its buffer for its length plus
// that offset, so every literal run reallocated and copied the page's
// whole level buffer, 64 bytes longer each time. Those buffers come from
// a pool that allocates with memory.DefaultAllocator, not with the writer
// properties' allocator, so the default is the only place to fix it from
// outside. With this allocator the same requests reslice: a run costs
// O(1) instead of O(the page's levels), which made the export of a trace
// with nullable per-kind columns (every real trace) spend 60-70 % of its
// CPU in memmove and memclr (RATIONALE.md, Parquet export). The export
// now writes its pages itself; the allocator stays for the pqarrow
// writers that remain (explore's findings.parquet).
type growAllocator struct{}

// Allocate returns size zeroed bytes aligned to 64 bytes.
func (growAllocator) Allocate(size int) []byte { return alignedBytes(size, size) }

// Reallocate returns b resized to size, in place when its capacity allows.
func (growAllocator) Reallocate(size int, b []byte) []byte {
	if size <= len(b) {
		return b[:size]
	}
	if size <= cap(b) {
		nb := b[:size]
		clear(nb[len(b):])
		return nb
	}
	nb := alignedBytes(size, max(size, 2*cap(b)))
	copy(nb, b)
	return nb
}

// Free does nothing: the garbage collector frees.
func (growAllocator) Free([]byte) {}

// alignedBytes returns a zeroed slice of length size and capacity capacity
// whose first byte is 64-byte aligned (what arrow requires of buffers).
func alignedBytes(size, capacity int) []byte {
	const align = 64
	buf := make([]byte, capacity+align)
	shift := 0
	if a := uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & (align - 1); a != 0 {
		shift = int(align - a)
	}
	return buf[shift : shift+size : shift+capacity]
}

func init() {
	memory.DefaultAllocator = growAllocator{}
}

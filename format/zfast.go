package format

import (
	"encoding/binary"
	"sync"
)

// This file decodes, without the zstd library, the frames whose blocks are
// all raw or RLE: the frames the writer makes for the buffers of a column
// null in every row of a batch (zeroFrame: RLE blocks of zeros). The
// library fills an RLE block one byte at a time and then copies it into
// its history; on a bench-fentry trace that was a quarter of the CPU time
// of an analysis. A frame of zeros is not written at all: its buffer is a
// view of a shared zero page. Anything else, and any frame this code is
// not sure the library decodes to the same bytes without error (a
// dictionary, a checksum, a size mismatch, bytes after the frame, a block
// larger than the window), is left to the library, so a damaged frame
// fails as it did.

// zeroView is a shared read-only buffer of zeros, the bytes of the
// all-zero frames it is long enough for.
var zeroView = sync.OnceValue(func() []byte { return make([]byte, zeroViewLen) })

// zeroViewLen covers a 15-byte column of 128 Ki rows (the writer's
// batches are smaller).
const zeroViewLen = 15 << 17

// simpleFrame parses src as one zstd frame of raw and RLE blocks only. It
// returns the decoded size and whether every decoded byte is zero; ok is
// false when the frame is anything else (left to the library).
func simpleFrame(src []byte) (size int, zero, ok bool) {
	blocks, ok := simpleFrameBlocks(src)
	if !ok {
		return 0, false, false
	}
	zero = true
	walkBlocks(src[blocks:], func(typ int, n int, data []byte) {
		size += n
		if !zero {
			return
		}
		switch typ {
		case blockRLE:
			zero = data[0] == 0
		case blockRaw:
			for _, c := range data {
				if c != 0 {
					zero = false
					break
				}
			}
		}
	})
	return size, zero, true
}

// simpleFrameBlocks checks src's frame header and blocks (see
// simpleFrame) and returns the offset of its first block.
func simpleFrameBlocks(src []byte) (int, bool) {
	if len(src) < 6 || binary.LittleEndian.Uint32(src) != zstdMagic {
		return 0, false
	}
	fhd := src[4]
	single := fhd&(1<<5) != 0
	if fhd&(1<<3) != 0 || fhd&(1<<2) != 0 || fhd&3 != 0 {
		return 0, false // reserved bit, checksum, dictionary
	}
	p := 5
	var window uint64
	if !single {
		wd := src[p]
		p++
		base := uint64(1) << (10 + wd>>3)
		window = base + base/8*uint64(wd&7)
	}
	fcsSize := 0
	switch v := fhd >> 6; {
	case v > 0:
		fcsSize = 1 << v
	case single:
		fcsSize = 1
	}
	if fcsSize == 0 || p+fcsSize > len(src) {
		return 0, false // no content size: left to the library
	}
	var fcs uint64
	switch fcsSize {
	case 1:
		fcs = uint64(src[p])
	case 2:
		fcs = uint64(binary.LittleEndian.Uint16(src[p:])) + 256
	case 4:
		fcs = uint64(binary.LittleEndian.Uint32(src[p:]))
	case 8:
		fcs = binary.LittleEndian.Uint64(src[p:])
	}
	p += fcsSize
	if single {
		window = max(fcs, 1<<10)
	}
	if window < 1<<10 || window > maxAlloc || fcs > maxAlloc || fcs == 0 {
		return 0, false
	}
	// The blocks: raw or RLE, each at most min(window, 128 KiB), ending
	// with the last block exactly at the end of src, adding up to fcs.
	total := uint64(0)
	q := p
	for {
		if q+3 > len(src) {
			return 0, false
		}
		h := uint32(src[q]) | uint32(src[q+1])<<8 | uint32(src[q+2])<<16
		q += 3
		last, typ, n := h&1 != 0, int(h>>1&3), int(h>>3)
		if n == 0 || n > zstdMaxBlock || uint64(n) > window {
			return 0, false
		}
		switch typ {
		case blockRaw:
			q += n
		case blockRLE:
			q++
		default:
			return 0, false
		}
		if q > len(src) {
			return 0, false
		}
		total += uint64(n)
		if last {
			break
		}
	}
	if q != len(src) || total != fcs {
		return 0, false
	}
	return p, true
}

// walkBlocks calls f for each block of a frame checked by
// simpleFrameBlocks, from its first block: its type, decoded size and
// data (the RLE byte, or the raw bytes).
func walkBlocks(src []byte, f func(typ, n int, data []byte)) {
	q := 0
	for {
		h := uint32(src[q]) | uint32(src[q+1])<<8 | uint32(src[q+2])<<16
		q += 3
		last, typ, n := h&1 != 0, int(h>>1&3), int(h>>3)
		if typ == blockRaw {
			f(typ, n, src[q:q+n])
			q += n
		} else {
			f(typ, n, src[q:q+1])
			q++
		}
		if last {
			return
		}
	}
}

// decodeSimple appends the decoded bytes of a frame simpleFrame accepted
// to dst, which has room for them.
func decodeSimple(dst, src []byte) []byte {
	p, _ := simpleFrameBlocks(src)
	walkBlocks(src[p:], func(typ, n int, data []byte) {
		if typ == blockRaw {
			dst = append(dst, data...)
			return
		}
		start := len(dst)
		dst = dst[:start+n]
		fill(dst[start:], data[0])
	})
	return dst
}

// fill sets every byte of b to v.
func fill(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	if v == 0 {
		clear(b)
		return
	}
	b[0] = v
	for k := 1; k < len(b); k *= 2 {
		copy(b[k:], b[:k])
	}
}

// isZeroView reports whether the compressed buffer frame, of stated
// length u, is decoded as a view of zeroView (not into a batch's arena).
func isZeroView(frame []byte, u int) bool {
	if u > zeroViewLen {
		return false
	}
	size, zero, ok := simpleFrame(frame)
	return ok && zero && size >= u
}

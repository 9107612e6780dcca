package format

import (
	"encoding/binary"
	"math/bits"
)

// This file writes two kinds of zstd frames (RFC 8878) directly, for
// buffers whose content is known in closed form, where a general-purpose
// encoder would spend time finding what we already know:
//
//   - zeroFrame: n zero bytes (the buffers of a column that is null in
//     every row of a batch), as RLE blocks;
//   - counterFrame: the little-endian u64 values first, first+1, ...,
//     first+n-1 (the seq column of a batch with no gap), at about 0.05
//     bytes per value, where zstd's own match finders need 1 byte per value:
//     each value equals the one 256 rows back except in byte 1, so each row
//     is one sequence "1 literal (byte 1), match 7 at the repeat offset
//     2048", and within a run of 256 rows the literal is the same byte, so a
//     block of such sequences has an RLE literal and RLE-coded sequence
//     symbols with no extra bits: a dozen bytes for 256 rows.
//
// Only block types whose encoding is trivial are used: raw, RLE, and
// compressed blocks whose literals are raw or RLE and whose three sequence
// symbol streams are all in RLE mode (so every sequence in a block has the
// same literal-length, match-length and offset codes; only the extra bits
// can differ, and blocks with more than one sequence have none). Tests
// decode every shape with klauspost/compress and, in the interop check,
// with the reference library through pyarrow.

const (
	zstdMagic    = 0xFD2FB528
	zstdMaxBlock = 128 << 10
	zstdWinLog   = 17 // 128 KiB window: holds a whole block and offset 2048
)

// zstdHeader appends a frame header: no single-segment, window 2^17, the
// content size in 4 bytes (or 8 when it does not fit).
func zstdHeader(dst []byte, size int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	if uint64(size) <= 0xFFFFFFFF {
		dst = append(dst, 2<<6, (zstdWinLog-10)<<3)
		return binary.LittleEndian.AppendUint32(dst, uint32(size))
	}
	dst = append(dst, 3<<6, (zstdWinLog-10)<<3)
	return binary.LittleEndian.AppendUint64(dst, uint64(size))
}

func blockHeader(dst []byte, last bool, typ, size int) []byte {
	h := uint32(size)<<3 | uint32(typ)<<1
	if last {
		h |= 1
	}
	return append(dst, byte(h), byte(h>>8), byte(h>>16))
}

const (
	blockRaw        = 0
	blockRLE        = 1
	blockCompressed = 2
)

// zeroFrame appends a zstd frame that decodes to n zero bytes.
func zeroFrame(dst []byte, n int) []byte {
	dst = zstdHeader(dst, n)
	if n == 0 {
		return blockHeader(dst, true, blockRaw, 0)
	}
	for n > 0 {
		k := min(n, zstdMaxBlock)
		n -= k
		dst = blockHeader(dst, n == 0, blockRLE, k)
		dst = append(dst, 0)
	}
	return dst
}

// zseq is one zstd sequence: ll literals, then a match of ml bytes at
// offset off.
type zseq struct {
	ll, ml, off int
}

// Literal-length and match-length codes (RFC 8878 3.1.1.3.2.1.1).
var (
	llBase = [36]uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
		8192, 16384, 32768, 65536}
	llBits = [36]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	mlBase = [53]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
		19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
		35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
		4099, 8195, 16387, 32771, 65539}
	mlBits = [53]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

// llCode and mlCode are the literal-length and match-length codes: the
// last code whose base is at most the length. Short lengths read a table
// built from the bases; long ones (each code from 25 (LL) or 43 (ML) on
// covers a power of two) are the length's top bit, as in zstd's
// ZSTD_LLcode and ZSTD_MLcode.
func llCode(ll int) int {
	if ll < 16 {
		return ll
	}
	if ll < len(llCodes) {
		return int(llCodes[ll])
	}
	return min(bits.Len(uint(ll))-1+19, len(llBase)-1)
}

func mlCode(ml int) int {
	if ml < 35 {
		return ml - 3
	}
	if ml < len(mlCodes) {
		return int(mlCodes[ml])
	}
	return min(bits.Len(uint(ml-3))-1+36, len(mlBase)-1)
}

// llCodes and mlCodes are the codes of short lengths, by search of the
// bases (lengths whose code the top bit does not give).
var llCodes, mlCodes = func() (ll [64]uint8, ml [131]uint8) {
	for n := range ll {
		ll[n] = uint8(codeSearch(llBase[:], n))
	}
	for n := range ml {
		ml[n] = uint8(codeSearch(mlBase[:], n))
	}
	return
}()

// codeSearch returns the last code whose base is at most n (0 when n is
// below every base).
func codeSearch(base []uint32, n int) int {
	c := 0
	for c+1 < len(base) && base[c+1] <= uint32(n) {
		c++
	}
	return c
}

// zcoded is a sequence with its offset value resolved against the repeat
// offsets.
type zcoded struct {
	ll, ml int
	ov     uint32 // Offset_Value: 1-3 repeat, else offset+3
}

func (s zcoded) codes() (ll, ml, of int) {
	return llCode(s.ll), mlCode(s.ml), bits.Len32(s.ov) - 1
}

// noExtra reports whether s's codes carry no extra bits.
func (s zcoded) noExtra() bool {
	ll, ml, of := s.codes()
	return llBits[ll] == 0 && mlBits[ml] == 0 && of == 0
}

// blockWriter appends blocks for the bytes of a counter (they are
// computed, never materialized).
type blockWriter struct {
	dst   []byte
	first uint64 // the counter's first value
	n     int    // bytes
	pos   int    // bytes consumed
	rep   [3]int
}

// at returns byte i of the counter's little-endian values.
func (w *blockWriter) at(i int) byte { return byte((w.first + uint64(i>>3)) >> (8 * (i & 7))) }

// resolve gives s's Offset_Value and updates the repeat offsets
// (RFC 8878 3.1.2.5).
func (w *blockWriter) resolve(ll, ml, off int) zcoded {
	r := &w.rep
	c := zcoded{ll: ll, ml: ml}
	switch {
	case ll > 0 && off == r[0]:
		c.ov = 1
	case ll > 0 && off == r[1]:
		c.ov = 2
		r[0], r[1] = r[1], r[0]
	case ll > 0 && off == r[2]:
		c.ov = 3
		r[0], r[1], r[2] = r[2], r[0], r[1]
	case ll == 0 && off == r[1]:
		c.ov = 1
		r[0], r[1] = r[1], r[0]
	case ll == 0 && off == r[2]:
		c.ov = 2
		r[0], r[1], r[2] = r[2], r[0], r[1]
	default:
		c.ov = uint32(off) + 3
		r[0], r[1], r[2] = off, r[0], r[1]
	}
	return c
}

// raw appends raw blocks of the next n bytes.
func (w *blockWriter) raw(n int, last bool) {
	for {
		k := min(n, zstdMaxBlock)
		n -= k
		w.dst = blockHeader(w.dst, last && n == 0, blockRaw, k)
		for i := w.pos; i < w.pos+k; i++ {
			w.dst = append(w.dst, w.at(i))
		}
		w.pos += k
		if n == 0 {
			return
		}
	}
}

// literalsHeader appends a raw (typ 0) or RLE (typ 1) literals section
// header for n literals.
func literalsHeader(dst []byte, typ, n int) []byte {
	switch {
	case n < 32:
		return append(dst, byte(n<<3|typ))
	case n < 4096:
		h := n<<4 | 1<<2 | typ
		return append(dst, byte(h), byte(h>>8))
	default:
		h := n<<4 | 3<<2 | typ
		return append(dst, byte(h), byte(h>>8), byte(h>>16))
	}
}

// block appends one compressed block of count copies of s (no extra bits
// when count > 1). rle says the literals are all the byte at w.pos.
func (w *blockWriter) block(s zcoded, count int, rle bool) {
	start := len(w.dst)
	w.dst = append(w.dst, 0, 0, 0) // block header, set below
	nlit := s.ll * count
	if rle && nlit > 0 {
		w.dst = literalsHeader(w.dst, 1, nlit)
		w.dst = append(w.dst, w.at(w.pos))
	} else {
		w.dst = literalsHeader(w.dst, 0, nlit)
		p := w.pos
		for range count {
			for i := p; i < p+s.ll; i++ {
				w.dst = append(w.dst, w.at(i))
			}
			p += s.ll + s.ml
		}
	}
	switch n := count; {
	case n < 128:
		w.dst = append(w.dst, byte(n))
	case n < 0x7F00:
		w.dst = append(w.dst, byte(n>>8+128), byte(n))
	default:
		m := n - 0x7F00
		w.dst = append(w.dst, 255, byte(m), byte(m>>8))
	}
	ll, ml, of := s.codes()
	w.dst = append(w.dst, 1<<6|1<<4|1<<2, byte(ll), byte(of), byte(ml))
	// Bitstream: the extra bits of a single sequence (LL, ML, then OF, so
	// that a decoder reads OF first), then the end mark.
	var acc uint64
	var nb uint
	if count == 1 {
		acc |= uint64(uint32(s.ll)-llBase[ll]) << nb
		nb += uint(llBits[ll])
		acc |= uint64(uint32(s.ml)-mlBase[ml]) << nb
		nb += uint(mlBits[ml])
		acc |= uint64(s.ov-1<<of) << nb
		nb += uint(of)
	}
	acc |= 1 << nb
	nb++
	for nb > 0 {
		w.dst = append(w.dst, byte(acc))
		acc >>= 8
		nb -= min(nb, 8)
	}
	copy(w.dst[start:], blockHeader(nil, false, blockCompressed, len(w.dst)-start-3))
	w.pos += count * (s.ll + s.ml)
}

// zrun is count consecutive zstd sequences of ll literals then a match
// of ml bytes at offset off. constLit says the run's literals are known
// to be one byte value.
type zrun struct {
	ll, ml, off, count int
	constLit           bool
}

// encode appends blocks for runs (covering data from w.pos on), then the
// rest of the data as raw blocks, the last one closing the frame.
func (w *blockWriter) encode(runs []zrun) {
	for _, r := range runs {
		for left := r.count; left > 0; {
			// Resolve one sequence; when the next would resolve the same
			// way (same code, same repeat offsets after), take them all.
			before := w.rep
			c := w.resolve(r.ll, r.ml, r.off)
			k := 1
			if c.noExtra() && before == w.rep {
				k = left
			}
			left -= k
			w.emit(c, k, r.constLit)
		}
	}
	w.raw(w.n-w.pos, true)
}

// emit appends blocks for count copies of c: blocks of at most 128 KiB,
// split where an RLE literal changes value.
func (w *blockWriter) emit(c zcoded, count int, constLit bool) {
	step := c.ll + c.ml
	for count > 0 {
		k := min(count, zstdMaxBlock/step)
		rle := constLit
		if !rle && c.ll == 1 && k > 1 {
			// Literals all one byte value? Take the run of those.
			first := w.at(w.pos)
			j := 1
			for j < k && w.at(w.pos+j*step) == first {
				j++
			}
			if j > 1 {
				k, rle = j, true
			} else {
				// Varying: take them up to the next pair of equal ones.
				for j < k && w.at(w.pos+j*step) != w.at(w.pos+(j-1)*step) {
					j++
				}
				k = j
			}
		}
		w.block(c, k, rle)
		count -= k
	}
}

// counterFrame appends a zstd frame that decodes to the n little-endian
// u64 values first, first+1, ..., first+n-1.
func counterFrame(dst []byte, first uint64, n int) []byte {
	var c counterEncoder
	return c.frame(dst, first, n)
}

// counterEncoder keeps counterFrame's scratch space between calls.
type counterEncoder struct {
	runs []zrun
}

func (c *counterEncoder) frame(dst []byte, first uint64, n int) []byte {
	dst = zstdHeader(dst, 8*n)
	w := blockWriter{dst: dst, first: first, n: 8 * n, rep: [3]int{1, 4, 8}}
	c.runs = counterRuns(c.runs[:0], first, n)
	w.encode(c.runs)
	return w.dst
}

// counterRuns describes n counter values as zstd sequences: each row is
// matched against the row 256 back (offset 2048) or else the previous row
// (offset 8), whichever leaves fewer literal bytes. In steady state (a row
// 256 back exists and byte 1 did not wrap) a row is one sequence: its
// byte 1 as the literal, then 7 bytes matched at 2048 (bytes 2-7 and the
// next row's byte 0); rows of one 256-value group share that literal. The
// sequence completed in row r carries row r-1's literal.
func counterRuns(runs []zrun, first uint64, n int) []zrun {
	add := func(ll, ml, off, count int, constLit bool) {
		if k := len(runs) - 1; k >= 0 && runs[k].ll == ll && runs[k].ml == ml && runs[k].off == off && runs[k].constLit == constLit && !constLit {
			runs[k].count += count
			return
		}
		runs = append(runs, zrun{ll, ml, off, count, constLit})
	}
	lit := 0           // pending literals
	mlen, moff := 0, 0 // pending match
	flush := func() {
		if mlen == 0 {
			return
		}
		if mlen < 3 {
			lit += mlen
		} else {
			add(lit, mlen, moff, 1, false)
			lit = 0
		}
		mlen = 0
	}
	for r := 0; r < n; {
		v := first + uint64(r)
		if r >= 256 && v>>8&0xff != 0 && v&0xff != 0 && lit == 1 && mlen == 6 && moff == 2048 {
			// Rows r-1 .. r+k-1 are one group: the literals (byte 1 of the
			// rows before) are one value.
			k := 256 - int(v&0xff)
			if (v+uint64(k))>>8&0xff != 0 {
				k++ // the next group's first row completes a sequence with this group's literal
			}
			k = min(n-r, k)
			runs = append(runs, zrun{1, 7, 2048, k, true})
			r += k
			continue
		}
		off := 0
		if r >= 256 && diffBytes(v, v-256) <= diffBytes(v, v-1) {
			off = 2048
		} else if r >= 1 {
			off = 8
		}
		var prev uint64
		if off > 0 {
			prev = v - uint64(off/8)
		}
		for k := 0; k < 8; k++ {
			if off > 0 && byte(v>>(8*k)) == byte(prev>>(8*k)) {
				if mlen > 0 && moff != off {
					flush()
				}
				moff = off
				mlen++
				continue
			}
			flush()
			lit++
		}
		r++
	}
	flush()
	return runs
}

// diffBytes counts the bytes in which a and b differ.
func diffBytes(a, b uint64) int {
	x := a ^ b
	n := 0
	for ; x != 0; x >>= 8 {
		if x&0xff != 0 {
			n++
		}
	}
	return n
}

package format

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// This file encodes the pages of a Parquet export from a batch's column
// buffers: definition levels from the validity bitmap, PLAIN values
// gathered from the value buffer, dictionary indices and delta-encoded seq
// bit-packed, and the Thrift compact page headers. The encodings are the
// Parquet format's (https://github.com/apache/parquet-format/blob/master/Encodings.md):
// nothing here is specific to one reader.

// Parquet enum values (parquet.thrift).
const (
	pqPageData = 0
	pqPageDict = 2

	pqEncPlain    = 0
	pqEncRLE      = 3
	pqEncDelta    = 5 // DELTA_BINARY_PACKED
	pqEncRLEDict  = 8 // RLE_DICTIONARY
	pqThriftI32   = 5
	pqThriftBoolT = 1
	pqThriftBoolF = 2
	pqThriftStrct = 12
)

// appendLevelRuns appends the definition levels of n rows (1 = set, 0 =
// null) in the RLE/bit-packed hybrid at bit width 1. A run of 16 or more
// equal rows (two or more all-0 or all-1 bitmap bytes) is an RLE run; the
// rest is copied from the bitmap as bit-packed groups (bit width 1 packs 8
// levels a byte, least significant bit first: the Arrow validity layout),
// the last one padded to 8 levels. valid nil means every row is set. Runs
// of pages whose row counts are multiples of 8 can be concatenated.
func appendLevelRuns(dst, valid []byte, n int) []byte {
	if valid == nil {
		return appendRLERun(dst, n, 1)
	}
	full := n / 8
	lit := 0 // first bitmap byte not yet emitted
	for i := 0; i < full; {
		b := valid[i]
		if b != 0 && b != 0xFF {
			i++
			// Skip 8 bytes at a time while none is 0x00 or 0xFF.
			for i+8 <= full && !hasZeroByte(binary.LittleEndian.Uint64(valid[i:])) && !hasZeroByte(^binary.LittleEndian.Uint64(valid[i:])) {
				i += 8
			}
			continue
		}
		j := i + 1
		word := uint64(0)
		if b == 0xFF {
			word = ^uint64(0)
		}
		for j+8 <= full && binary.LittleEndian.Uint64(valid[j:]) == word {
			j += 8
		}
		for j < full && valid[j] == b {
			j++
		}
		if j-i < 2 {
			i = j
			continue
		}
		dst = appendBitPacked(dst, valid[lit:i], 0, 0)
		dst = appendRLERun(dst, 8*(j-i), int(b&1))
		i, lit = j, j
	}
	tailBits := n % 8
	var tail byte
	if tailBits != 0 {
		tail = valid[full] & (1<<tailBits - 1)
	}
	return appendBitPacked(dst, valid[lit:full], tail, tailBits)
}

// hasZeroByte reports whether one of x's bytes is zero.
func hasZeroByte(x uint64) bool {
	return (x-0x0101010101010101)&^x&0x8080808080808080 != 0
}

// appendBitPacked appends lit (whole bitmap bytes) followed, when
// tailBits > 0, by tail (the bitmap's last, partial byte, masked to
// tailBits bits) as one bit-packed run at bit width 1.
func appendBitPacked(dst, lit []byte, tail byte, tailBits int) []byte {
	groups := len(lit)
	if tailBits > 0 {
		groups++
	}
	if groups == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(groups)<<1|1)
	dst = append(dst, lit...)
	if tailBits > 0 {
		dst = append(dst, tail)
	}
	return dst
}

// appendRLERun appends an RLE run of n copies of v (bit width 1: one byte).
func appendRLERun(dst []byte, n, v int) []byte {
	if n == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(n)<<1)
	return append(dst, byte(v))
}

// gatherFixed appends the w-byte values of the set rows: runs of set
// bitmap bytes are copied at once, mixed bytes value by value.
func gatherFixed(dst, vals, valid []byte, n, w int) []byte {
	if valid == nil {
		return append(dst, vals[:w*n]...)
	}
	full := n / 8
	for i := 0; i < full; {
		v := valid[i]
		switch v {
		case 0:
			i++
			// Skip 8 null bytes (64 rows) at a time.
			for i+8 <= full && binary.LittleEndian.Uint64(valid[i:]) == 0 {
				i += 8
			}
			continue
		case 0xFF:
			j := i + 1
			for j < full && valid[j] == 0xFF {
				j++
			}
			dst = append(dst, vals[8*w*i:8*w*j]...)
			i = j
			continue
		}
		dst = gatherByte(dst, vals[8*w*i:8*w*(i+1)], v, w)
		i++
	}
	if r := n % 8; r != 0 {
		dst = gatherByte(dst, vals[8*w*full:], valid[full]&(1<<r-1), w)
	}
	return dst
}

// gatherByte appends the w-byte values of vals (8 rows') whose bits are
// set in v, each copied as a word, not through memmove.
func gatherByte(dst, vals []byte, v byte, w int) []byte {
	at := len(dst)
	dst = slices.Grow(dst, w*bits.OnesCount8(v))
	dst = dst[:at+w*bits.OnesCount8(v)]
	for ; v != 0; v &= v - 1 {
		k := w * bits.TrailingZeros8(v)
		switch w {
		case 8:
			binary.LittleEndian.PutUint64(dst[at:], binary.LittleEndian.Uint64(vals[k:]))
		case 2:
			binary.LittleEndian.PutUint16(dst[at:], binary.LittleEndian.Uint16(vals[k:]))
		case 1:
			dst[at] = vals[k]
		default:
			copy(dst[at:at+w], vals[k:])
		}
		at += w
	}
	return dst
}

// gather32 appends the values of the set rows, each w bytes wide (1, 2, 4
// or 8: a version 1 rflags keeps its low half), as 4-byte INT32 values.
func gather32(dst, vals, valid []byte, n, w int) []byte {
	if valid == nil && w == 4 {
		return append(dst, vals[:4*n]...)
	}
	count := n
	if valid != nil {
		count = setBits(valid, n)
	}
	at := len(dst)
	dst = slices.Grow(dst, 4*count)[:at+4*count]
	out := dst[at:]
	k := 0
	put := func(j int) {
		var v uint32
		switch w {
		case 1:
			v = uint32(vals[j])
		case 2:
			v = uint32(binary.LittleEndian.Uint16(vals[2*j:]))
		case 4:
			v = binary.LittleEndian.Uint32(vals[4*j:])
		default:
			v = uint32(binary.LittleEndian.Uint64(vals[8*j:]))
		}
		binary.LittleEndian.PutUint32(out[k:], v)
		k += 4
	}
	if valid == nil {
		// Every row (cpu, depth): a loop per width.
		switch w {
		case 1:
			for j, b := range vals[:n] {
				binary.LittleEndian.PutUint32(out[4*j:], uint32(b))
			}
		case 2:
			for j := range n {
				binary.LittleEndian.PutUint32(out[4*j:], uint32(binary.LittleEndian.Uint16(vals[2*j:])))
			}
		default:
			for j := 0; j < n; j++ {
				put(j)
			}
		}
		return dst
	}
	for i := 0; i < (n+7)/8; i++ {
		v := valid[i]
		if v == 0 {
			// Skip 8 null bytes (64 rows) at a time.
			for i+9 <= n/8 && binary.LittleEndian.Uint64(valid[i+1:]) == 0 {
				i += 8
			}
			continue
		}
		if r := n - 8*i; r < 8 {
			v &= 1<<r - 1
		}
		for ; v != 0; v &= v - 1 {
			put(8*i + bits.TrailingZeros8(v))
		}
	}
	return dst
}

// setBits counts the set bits of the first n bits of bitmap.
func setBits(bitmap []byte, n int) int {
	c := 0
	i := 0
	for ; i+8 <= n/8; i += 8 {
		c += bits.OnesCount64(binary.LittleEndian.Uint64(bitmap[i:]))
	}
	for ; i < n/8; i++ {
		c += bits.OnesCount8(bitmap[i])
	}
	if r := n % 8; r != 0 {
		c += bits.OnesCount8(bitmap[n/8] & (1<<r - 1))
	}
	return c
}

// gatherBools appends the set rows' bits of the value bitmap vals, one
// byte (0 or 1) each; packBools packs them at the page's end.
func gatherBools(dst, vals, valid []byte, n int) []byte {
	eachSet(valid, n, func(j int) { dst = append(dst, vals[j>>3]>>(j&7)&1) })
	return dst
}

// eachSet calls f with each row of the first n whose bit is set in valid
// (every row when valid is nil), in order, skipping 64 null rows at a
// time.
func eachSet(valid []byte, n int, f func(j int)) {
	if valid == nil {
		for j := range n {
			f(j)
		}
		return
	}
	words := n / 64
	for w := range words {
		for x := binary.LittleEndian.Uint64(valid[8*w:]); x != 0; x &= x - 1 {
			f(64*w + bits.TrailingZeros64(x))
		}
	}
	for j := 64 * words; j < n; j++ {
		if valid[j>>3]&(1<<(j&7)) != 0 {
			f(j)
		}
	}
}

// packBools appends bools (one 0 or 1 byte each) as PLAIN booleans: 8 a
// byte, least significant bit first.
func packBools(dst, bools []byte) []byte {
	for i := 0; i < len(bools); i += 8 {
		var acc byte
		for k, v := range bools[i:min(i+8, len(bools))] {
			acc |= v << k
		}
		dst = append(dst, acc)
	}
	return dst
}

// gatherInsnBytes appends the bytes column of the set rows as PLAIN
// byte arrays: each row's first len bytes (at most 15; all 15 when len
// is null).
func gatherInsnBytes(dst []byte, cv, lens *colView, n int) []byte {
	for j := 0; j < n; j++ {
		if !cv.ok(j) {
			continue
		}
		k := 15
		if lens.ok(j) && lens.vals != nil {
			k = min(k, int(lens.vals[j]))
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(k))
		dst = append(dst, cv.vals[15*j:15*j+k]...)
	}
	return dst
}

// gatherStrings appends a string column's set rows as PLAIN byte arrays.
func gatherStrings(dst []byte, cv *colView, n int) []byte {
	eachSet(cv.valid, n, func(j int) {
		s := cv.varAt(j)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	})
	return dst
}

// appendDictIndices appends the RLE_DICTIONARY values of a page whose
// dictionary indices are idx, w bytes each (little-endian): the bit width
// (8w: byte-aligned, so zstd sees the indices' repeats), then one
// bit-packed run, which at that width is the indices as they are, padded
// to a multiple of 8.
func appendDictIndices(dst, idx []byte, w int) []byte {
	dst = append(dst, byte(8*w))
	count := len(idx) / w
	if count == 0 {
		return dst
	}
	groups := (count + 7) / 8
	dst = binary.AppendUvarint(dst, uint64(groups)<<1|1)
	dst = append(dst, idx...)
	return append(dst, make([]byte, (8*groups-count)*w)...)
}

// packBits appends vals at bw bits each, least significant bit first
// (Parquet's bit packing). len(vals)*bw must be a multiple of 8, and every
// value must fit in bw bits.
func packBits(dst []byte, vals []uint64, bw int) []byte {
	if bw == 0 {
		return dst
	}
	var acc uint64
	nb := 0
	for _, v := range vals {
		acc |= v << nb
		if nb+bw >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			acc = 0
			if nb > 0 {
				acc = v >> (64 - nb)
			}
			nb += bw - 64
		} else {
			nb += bw
		}
	}
	for ; nb > 0; nb -= 8 {
		dst = append(dst, byte(acc))
		acc >>= 8
	}
	return dst
}

// deltaBlock and deltaMini are the DELTA_BINARY_PACKED block shape: 128
// values a block in 4 miniblocks of 32 (what parquet-mr and Arrow write).
const (
	deltaBlock = 128
	deltaMini  = 4
)

// appendDelta appends n little-endian w-byte values (w 8: INT64, or 4:
// INT32) as DELTA_BINARY_PACKED. Differences and arithmetic wrap at the
// physical type's width, as readers undo them: an INT32 difference is a
// 32-bit one, so no miniblock is wider than 32 bits (readers refuse wider
// ones for INT32). scratch is reused.
func appendDelta(dst, vals []byte, n, w int, scratch []uint64) ([]byte, []uint64) {
	dst = binary.AppendUvarint(dst, deltaBlock)
	dst = binary.AppendUvarint(dst, deltaMini)
	dst = binary.AppendUvarint(dst, uint64(n))
	if n == 0 {
		return binary.AppendVarint(dst, 0), scratch
	}
	if cap(scratch) < deltaBlock {
		scratch = make([]uint64, deltaBlock)
	}
	d := (*[deltaBlock]uint64)(scratch[:deltaBlock])
	var prev uint64
	if w == 8 {
		vals = vals[:8*n]
		prev = binary.LittleEndian.Uint64(vals)
	} else {
		vals = vals[:4*n]
		// Sign-extended, so that a 32-bit difference is an int64 in the
		// int32 range.
		prev = uint64(int64(int32(binary.LittleEndian.Uint32(vals))))
	}
	dst = binary.AppendVarint(dst, int64(prev))
	const per = deltaBlock / deltaMini
	var lo, hi [deltaMini]int64 // each miniblock's least and greatest difference
	for i := 1; i < n; i += deltaBlock {
		m := min(deltaBlock, n-i)
		if m == deltaBlock {
			if w == 8 {
				prev = deltas64(d, (*[8 * deltaBlock]byte)(vals[8*i:]), prev, &lo, &hi)
			} else {
				prev = deltas32(d, (*[4 * deltaBlock]byte)(vals[4*i:]), prev, &lo, &hi)
			}
		} else {
			// The last block: differences, then padding that packs as 0.
			for k := range m {
				var v uint64
				if w == 8 {
					v = binary.LittleEndian.Uint64(vals[8*(i+k):])
					d[k] = v - prev
				} else {
					v = uint64(binary.LittleEndian.Uint32(vals[4*(i+k):]))
					d[k] = uint64(int64(int32(uint32(v) - uint32(prev))))
				}
				prev = v
			}
			for mb := range deltaMini {
				lo[mb], hi[mb] = 1<<63-1, -1<<63
				for k := mb * per; k < min(m, mb*per+per); k++ {
					lo[mb], hi[mb] = min(lo[mb], int64(d[k])), max(hi[mb], int64(d[k]))
				}
			}
		}
		minD := min(lo[0], lo[1], lo[2], lo[3])
		for k := m; k < deltaBlock; k++ {
			d[k] = uint64(minD)
		}
		dst = binary.AppendVarint(dst, minD)
		wpos := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		for mb := 0; mb*per < m; mb++ {
			if hi[mb] == minD {
				continue // width 0
			}
			bw := bits.Len64(uint64(hi[mb]) - uint64(minD))
			dst[wpos+mb] = byte(bw)
			dst = packDeltas(dst, (*[per]uint64)(d[mb*per:]), uint64(minD), bw)
		}
	}
	return dst, scratch
}

// deltas64 stores the differences of a block of 8-byte values from its
// predecessor prev in d, and each miniblock's least and greatest in lo and
// hi; it returns the block's last value.
func deltas64(d *[deltaBlock]uint64, src *[8 * deltaBlock]byte, prev uint64, lo, hi *[deltaMini]int64) uint64 {
	const per = deltaBlock / deltaMini
	for mb := range deltaMini {
		m := (*[per]uint64)(d[mb*per:])
		s := (*[8 * per]byte)(src[8*per*mb:])
		v := binary.LittleEndian.Uint64(s[:])
		m[0] = v - prev
		prev = v
		l, h := int64(m[0]), int64(m[0])
		for k := 1; k < per; k++ {
			v := binary.LittleEndian.Uint64(s[8*k:])
			x := int64(v - prev)
			m[k] = uint64(x)
			prev = v
			l, h = min(l, x), max(h, x)
		}
		lo[mb], hi[mb] = l, h
	}
	return prev
}

// deltas32 is deltas64 for 4-byte values: 32-bit differences,
// sign-extended; the last value is returned zero-extended.
func deltas32(d *[deltaBlock]uint64, src *[4 * deltaBlock]byte, prev uint64, lo, hi *[deltaMini]int64) uint64 {
	const per = deltaBlock / deltaMini
	p := uint32(prev)
	for mb := range deltaMini {
		m := (*[per]uint64)(d[mb*per:])
		s := (*[4 * per]byte)(src[4*per*mb:])
		v := binary.LittleEndian.Uint32(s[:])
		x := int64(int32(v - p))
		m[0] = uint64(x)
		p = v
		l, h := x, x
		for k := 1; k < per; k++ {
			v := binary.LittleEndian.Uint32(s[4*k:])
			x := int64(int32(v - p))
			m[k] = uint64(x)
			p = v
			l, h = min(l, x), max(h, x)
		}
		lo[mb], hi[mb] = l, h
	}
	return uint64(p)
}

// packDeltas appends a miniblock's differences less minD, packed at bw
// bits each (Parquet's bit packing, least significant bit first).
func packDeltas(dst []byte, blk *[deltaBlock / deltaMini]uint64, minD uint64, bw int) []byte {
	if bw == 0 {
		return dst
	}
	var acc uint64
	nb := 0
	for _, x := range blk {
		v := x - minD
		acc |= v << nb
		nb += bw
		if nb >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			nb -= 64
			acc = 0
			if nb > 0 {
				acc = v >> (bw - nb)
			}
		}
	}
	// 32 values of bw bits: a whole number of bytes.
	for ; nb > 0; nb -= 8 {
		dst = append(dst, byte(acc))
		acc >>= 8
	}
	return dst
}

// thrift writes Thrift compact protocol structs (the page headers).
type thrift struct {
	b    []byte
	last []int16 // the last field id of each open struct
}

func (t *thrift) field(id int16, typ byte) {
	last := t.last[len(t.last)-1]
	if d := id - last; d > 0 && d <= 15 {
		t.b = append(t.b, byte(d)<<4|typ)
	} else {
		t.b = append(t.b, typ)
		t.b = binary.AppendVarint(t.b, int64(id))
	}
	t.last[len(t.last)-1] = id
}

func (t *thrift) i32(id int16, v int32) {
	t.field(id, pqThriftI32)
	t.b = binary.AppendVarint(t.b, int64(v))
}

func (t *thrift) boolean(id int16, v bool) {
	typ := byte(pqThriftBoolF)
	if v {
		typ = pqThriftBoolT
	}
	t.field(id, typ)
}

func (t *thrift) begin(id int16) {
	t.field(id, pqThriftStrct)
	t.last = append(t.last, 0)
}

func (t *thrift) end() {
	t.b = append(t.b, 0)
	t.last = t.last[:len(t.last)-1]
}

// appendPageHeader appends a PageHeader: a version 1 data page of
// numValues levels in encoding enc (levels RLE), or (dict) a PLAIN
// dictionary page of numValues entries.
func appendPageHeader(dst []byte, dict bool, numValues, enc, uncompressed, compressed int) []byte {
	t := thrift{b: dst, last: make([]int16, 1, 2)}
	typ := pqPageData
	if dict {
		typ = pqPageDict
	}
	t.i32(1, int32(typ))
	t.i32(2, int32(uncompressed))
	t.i32(3, int32(compressed))
	if dict {
		t.begin(7) // DictionaryPageHeader
		t.i32(1, int32(numValues))
		t.i32(2, pqEncPlain)
		t.boolean(3, false) // is_sorted
		t.end()
	} else {
		t.begin(5) // DataPageHeader
		t.i32(1, int32(numValues))
		t.i32(2, int32(enc))
		t.i32(3, pqEncRLE) // definition levels
		t.i32(4, pqEncRLE) // repetition levels
		t.end()
	}
	t.b = append(t.b, 0)
	return t.b
}

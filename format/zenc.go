package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/klauspost/compress/huff0"
)

// zenc is a zstd encoder (RFC 8878) for column buffers: rows of a fixed
// width, where the useful matches start at row boundaries and repeat at a
// few distances (the period of a loop, the interleaving of CPUs). Its
// match finder only looks at row starts, first at the three repeat offsets
// and then in a hash table of the rows seen (and, for a row that matches
// nowhere, at the row's second byte: a row that differs from an earlier one
// only in its low byte), and extends matches 8 bytes at a time; that is several times faster than a general-purpose match
// finder on this data, for the same or a better ratio.
//
// Literals are Huffman-coded with klauspost/compress/huff0 (whose output is
// zstd's literals format). Sequences are FSE-coded: the normalized counts
// and their header come from klauspost/compress/fse (the same header
// format), the encoding tables and the interleaved bitstream are built
// here (following zstd's reference encoder); a symbol stream of one value
// uses RLE mode, and a short one the predefined distributions. Every frame
// shape is decoded by klauspost/compress and by the reference zstd in the
// tests (zenc_test.go).
type zenc struct {
	table []uint32 // hash of 8 bytes at a row start -> position+base
	long  []uint32 // hash of 16 bytes at a row start -> position+base
	base  uint32   // table value of position 0 in this frame
	last  int      // the previous frame's length
	seqs  []zseqc
	lits  []byte
	huff  huff0.Scratch
	codes [3][]byte // LL, OF, ML codes of a block
	ct    [3]fseCTable
	norm  [3][]int16
	hdr   [3][]byte
	bw    bitWriter
	// The previous block's table per symbol type (for Repeat mode):
	// valid after a compressed block with sequences in this frame.
	prevOK   [3]bool
	prevMode [3]int
	prevNorm [3]struct {
		norm []int16
		log  uint8
	}
	prevCT  [3]fseCTable
	curMode [3]int // the modes of the block being built

	// rows, when set, says which CPU each row of the buffer being
	// encoded is from (a batch of several CPUs' interleaved runs); cont
	// is then, per CPU, the row that would continue its last match, and
	// swAt the first entry of rows.sw not yet passed.
	rows *cpuRows
	cont [cpuRowsMax]int32
	swAt int
}

// cpuRowsMax bounds the CPU numbers cpuRows tracks (slice.MaxCPUs).
const cpuRowsMax = 64

// cpuRows describes how a batch's rows interleave CPUs, for zenc. When a
// CPU's run resumes after other CPUs' runs, the row that matches its
// first row is usually the one after the row its last run matched (the
// next iteration of the same loop on the same CPU), at a distance no
// repeat offset holds; and a match inside a run ends where its source's
// run ended, to continue after that CPU's next switch.
type cpuRows struct {
	cpu  []uint8 // each row's CPU
	next []int32 // the next row of the same CPU, or -1
	sw   []int32 // the rows whose CPU differs from the previous row's
}

// after returns the row of row s's CPU after s, or -1. Within a run it is
// s+1, read from the one-byte cpu column (cache-friendly); only at the end
// of a run does it read next, four bytes a row, far back from the rows
// being encoded.
func (r *cpuRows) after(s int) int32 {
	if s+1 < len(r.cpu) && r.cpu[s+1] == r.cpu[s] {
		return int32(s + 1)
	}
	return r.next[s]
}

// set computes r from a batch's cpu column (n u16 rows) and reports
// whether the rows are from more than one CPU (otherwise r is not set).
func (r *cpuRows) set(col []byte, n int) bool {
	// Any row whose CPU is not row 0's, four rows (8 bytes) at a time.
	multi := false
	first := binary.LittleEndian.Uint16(col)
	four := uint64(first) * 0x0001_0001_0001_0001
	i := 0
	for ; i+4 <= n && !multi; i += 4 {
		multi = binary.LittleEndian.Uint64(col[2*i:]) != four
	}
	for ; i < n && !multi; i++ {
		multi = binary.LittleEndian.Uint16(col[2*i:]) != first
	}
	if !multi {
		return false
	}
	r.cpu = resize(r.cpu, n)
	r.next = resize(r.next, n)
	r.sw = r.sw[:0]
	for i := range n {
		c := binary.LittleEndian.Uint16(col[2*i:])
		if c >= cpuRowsMax {
			return false
		}
		r.cpu[i] = uint8(c)
		if i > 0 && r.cpu[i] != r.cpu[i-1] {
			r.sw = append(r.sw, int32(i))
		}
	}
	var last [cpuRowsMax]int32
	for i := range last {
		last[i] = -1
	}
	for i := n - 1; i >= 0; i-- {
		c := r.cpu[i]
		r.next[i] = last[c]
		last[c] = int32(i)
	}
	return true
}

// zseqc is a sequence with its codes.
type zseqc struct {
	ll, ml   uint32
	ov       uint32 // Offset_Value
	llc, mlc uint8
	ofc      uint8
}

const (
	zencHashLog  = 16
	zencMaxWin   = 1 << 22 // matches reach back at most 4 MiB
	zencMinMatch = 8
	zencTrust    = 32 // a match this long tells where a CPU's rows continue
)

// encode appends to dst a zstd frame holding src, a buffer of rows of
// width bytes.
func (z *zenc) encode(dst, src []byte, width int) []byte {
	n := len(src)
	single := n <= zencMaxWin
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	if single {
		// Single segment: the window is the content size.
		if uint64(n) <= 0xFFFFFFFF {
			dst = append(dst, 2<<6|1<<5)
			dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
		} else {
			dst = append(dst, 3<<6|1<<5)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(n))
		}
	} else {
		dst = zstdHeaderWin(dst, n, 22)
	}
	if n == 0 {
		return blockHeader(dst, true, blockRaw, 0)
	}
	// Table entries are positions + base: those below base are from
	// earlier frames. Clear only when base would overflow.
	if len(z.table) == 0 || uint64(z.base)+2*uint64(n)+2 >= 1<<32 {
		z.table = make([]uint32, 1<<zencHashLog)
		z.long = make([]uint32, 1<<zencHashLog)
		z.base = 1
	} else {
		z.base += uint32(z.last) + 1
	}
	z.last = n
	rep := [3]uint32{1, 4, 8}
	z.prevOK = [3]bool{}
	for i := range z.cont {
		z.cont[i] = -1
	}
	z.swAt = 0
	for start := 0; start < n; start += zstdMaxBlock {
		end := min(start+zstdMaxBlock, n)
		dst = z.block(dst, src, start, end, width, &rep, end == n)
	}
	return dst
}

// zstdHeaderWin appends a frame header with a window of 2^winLog bytes
// and the content size.
func zstdHeaderWin(dst []byte, size, winLog int) []byte {
	if uint64(size) <= 0xFFFFFFFF {
		dst = append(dst, 2<<6, byte(winLog-10)<<3)
		return binary.LittleEndian.AppendUint32(dst, uint32(size))
	}
	dst = append(dst, 3<<6, byte(winLog-10)<<3)
	return binary.LittleEndian.AppendUint64(dst, uint64(size))
}

func hash8(v uint64) uint32 { return uint32((v * 0x9E3779B185EBCA87) >> (64 - zencHashLog)) }

func hash16(a, b uint64) uint32 {
	return uint32(((a * 0x9E3779B185EBCA87) ^ (b * 0xC2B2AE3D27D4EB4F)) >> (64 - zencHashLog))
}

// matchLen returns how many bytes a[i:] and a[j:] (i > j) have in common,
// up to end.
func matchLen(a []byte, i, j, end int) int {
	x := a[i:end]
	y := a[j:]
	y = y[:len(x)] // one bounds check: the loops below index within len(x)
	n := 0
	for ; n+32 <= len(x); n += 32 {
		if n == 256 {
			// A long match (a loop's rows repeating at its period, over
			// a whole block): compare in stretches with bytes.Equal
			// (vector compares) until one differs, and find where in it
			// below.
			for n+1024 <= len(x) && bytes.Equal(x[n:n+1024], y[n:n+1024]) {
				n += 1024
			}
			if n+32 > len(x) {
				break
			}
		}
		x4, y4 := (*[32]byte)(x[n:n+32]), (*[32]byte)(y[n:n+32])
		d0 := binary.LittleEndian.Uint64(x4[0:8]) ^ binary.LittleEndian.Uint64(y4[0:8])
		d1 := binary.LittleEndian.Uint64(x4[8:16]) ^ binary.LittleEndian.Uint64(y4[8:16])
		d2 := binary.LittleEndian.Uint64(x4[16:24]) ^ binary.LittleEndian.Uint64(y4[16:24])
		d3 := binary.LittleEndian.Uint64(x4[24:32]) ^ binary.LittleEndian.Uint64(y4[24:32])
		if d0|d1|d2|d3 != 0 {
			switch {
			case d0 != 0:
				return n + bits.TrailingZeros64(d0)>>3
			case d1 != 0:
				return n + 8 + bits.TrailingZeros64(d1)>>3
			case d2 != 0:
				return n + 16 + bits.TrailingZeros64(d2)>>3
			default:
				return n + 24 + bits.TrailingZeros64(d3)>>3
			}
		}
	}
	for ; n+8 <= len(x); n += 8 {
		if d := binary.LittleEndian.Uint64(x[n:n+8]) ^ binary.LittleEndian.Uint64(y[n:n+8]); d != 0 {
			return n + bits.TrailingZeros64(d)>>3
		}
	}
	for ; n < len(x); n++ {
		if x[n] != y[n] {
			return n
		}
	}
	return n
}

// block appends one compressed block (or a raw one when that is smaller)
// for src[start:end]; matches may reach back into earlier blocks.
func (z *zenc) block(dst, src []byte, start, end, width int, rep *[3]uint32, last bool) []byte {
	z.seqs = z.seqs[:0]
	z.lits = z.lits[:0]
	reps := *rep
	lit := start // first byte not yet covered
	// Row starts from the first one at or after start.
	// rowStart rounds a position down to a row start; aligned reports
	// whether an offset is a whole number of rows. Widths that are powers
	// of two avoid the division.
	mask := width - 1
	pow2 := width&mask == 0
	rowStart := func(x int) int {
		if pow2 {
			return x &^ mask
		}
		return x / width * width
	}
	aligned := func(o int) bool {
		if pow2 {
			return o&mask == 0
		}
		return o%width == 0
	}
	shift := bits.TrailingZeros(uint(width))
	rowOf := func(x int) int {
		if pow2 {
			return x >> shift
		}
		return x / width
	}
	p := rowStart(start + width - 1)
	misses := 0
	for p+zencMinMatch <= end {
		var off, ml int
		v := binary.LittleEndian.Uint64(src[p:])
		// consider extends the match at offset o if it is longer than the
		// best so far (checked first at the byte that would make it so).
		consider := func(o int) {
			c := p - o
			if ml > 0 && (p+ml >= end || src[c+ml] != src[p+ml]) {
				return
			}
			if l := 8 + matchLen(src, p+8, c+8, end); l > ml {
				off, ml = o, l
			}
		}
		// Repeat offsets first (row-aligned ones), then their sums: a
		// loop whose iterations alternate between two paths repeats
		// exactly only at the sum of the two lengths.
		// (Written out: a loop over an array of the five cost a third
		// of the time of the search.)
		if o := int(reps[0]); o <= p && o <= zencMaxWin && aligned(o) && binary.LittleEndian.Uint64(src[p-o:]) == v {
			consider(o)
		}
		if o := int(reps[1]); o <= p && o <= zencMaxWin && aligned(o) && binary.LittleEndian.Uint64(src[p-o:]) == v {
			consider(o)
		}
		if o := int(reps[2]); o <= p && o <= zencMaxWin && aligned(o) && binary.LittleEndian.Uint64(src[p-o:]) == v {
			consider(o)
		}
		if ml > 0 { // the sums only when a repeat offset matched
			if o := int(reps[0] + reps[1]); o <= p && o <= zencMaxWin && aligned(o) && binary.LittleEndian.Uint64(src[p-o:]) == v {
				consider(o)
			}
			if o := int(2 * reps[0]); o <= p && o <= zencMaxWin && aligned(o) && binary.LittleEndian.Uint64(src[p-o:]) == v {
				consider(o)
			}
		}
		// Then the row that continues this CPU's last match.
		cand := -1
		if z.rows != nil && ml < 64 {
			if c := int(z.cont[z.rows.cpu[rowOf(p)]]); c >= 0 {
				cand = p - c*width
				if cand > 0 && cand <= p && cand <= zencMaxWin && binary.LittleEndian.Uint64(src[p-cand:]) == v {
					consider(cand)
				}
			}
		}
		// Then the last row that started with the same 16 bytes, or else
		// the same 8.
		base := int(z.base)
		hs := hash8(v)
		cs := int(z.table[hs]) - base
		z.table[hs] = uint32(p + base)
		if p+16 <= end {
			hl := hash16(v, binary.LittleEndian.Uint64(src[p+8:]))
			cl := int(z.long[hl]) - base
			z.long[hl] = uint32(p + base)
			if cl >= 0 && p-cl <= zencMaxWin && binary.LittleEndian.Uint64(src[cl:]) == v {
				consider(p - cl)
			}
		}
		if ml < 64 && cs >= 0 && p-cs <= zencMaxWin && binary.LittleEndian.Uint64(src[cs:]) == v {
			consider(p - cs)
		}
		shifted := false
		if ml < zencMinMatch && width >= 4 && p+8 < end {
			// A row equal to an earlier one but in its low byte (a
			// counter, a stack pointer or address moved by less than
			// 256): a match from the next byte, at a repeat offset or
			// the previous row.
			low := func(o int) {
				if o > 0 && o <= p && o <= zencMaxWin && aligned(o) && (binary.LittleEndian.Uint64(src[p-o:])^v)>>8 == 0 {
					if l := 7 + matchLen(src, p+8, p+8-o, end); l > ml {
						off, ml = o, l
					}
				}
			}
			low(int(reps[0]))
			low(int(reps[1]))
			low(int(reps[2]))
			low(width)
			low(int(uint32(max(cand, 0))))
			if ml >= 7 {
				p++ // the low byte is a literal
				shifted = true
			}
		}
		if ml < zencMinMatch && !shifted {
			if z.rows != nil {
				// A literal row: its CPU's continuation moves on a row.
				c := &z.cont[z.rows.cpu[rowOf(p)]]
				if *c >= 0 {
					*c = z.rows.after(int(*c))
				}
			}
			misses++
			p += width * (1 + misses>>6) // skip faster through data without matches
			continue
		}
		misses = 0
		// Extend backwards over literal bytes.
		for p > lit && p-off > 0 && src[p-1] == src[p-1-off] {
			p--
			ml++
		}
		ll := p - lit
		z.lits = append(z.lits, src[lit:p]...)
		z.seqs = append(z.seqs, zseqc{ll: uint32(ll), ml: uint32(ml), ov: resolveOffset(&reps, uint32(off), ll)})
		lit = p + ml
		if z.rows != nil && aligned(off) {
			z.follow(rowOf(p), rowOf(lit-1), rowOf(off), off == cand || ml >= zencTrust)
		}
		// Remember the row starts of the last few rows of the match.
		q := rowStart(lit - 1)
		for k := 0; k < 2 && q > p && q+16 <= end; k++ {
			a, b := binary.LittleEndian.Uint64(src[q:]), binary.LittleEndian.Uint64(src[q+8:])
			z.table[hash8(a)] = uint32(q) + z.base
			z.long[hash16(a, b)] = uint32(q) + z.base
			q -= width
		}
		p = rowStart(lit + width - 1)
	}
	z.lits = append(z.lits, src[lit:end]...)
	mark := len(dst)
	dst = append(dst, 0, 0, 0)
	var ok bool
	dst, ok = z.sections(dst)
	if !ok || len(dst)-mark-3 >= end-start {
		// Raw is smaller (or sequences could not be coded): the repeat
		// offsets stay as they were.
		dst = blockHeader(dst[:mark], last, blockRaw, end-start)
		return append(dst, src[start:end]...)
	}
	copy(dst[mark:], blockHeader(nil, last, blockCompressed, len(dst)-mark-3))
	*rep = reps
	if len(z.seqs) > 0 {
		z.keepTables()
	}
	return dst
}

// follow updates the per-CPU continuations after a match of rows first
// to last at an offset of d rows. A long match (or one at the continuation)
// is taken as where its rows' CPUs are: each CPU whose run ends inside
// it, and the CPU of its last row, continue after their rows' sources. A
// short one (often a few zero rows, nulls, at whatever offset) says
// nothing about that: the continuation of each row's CPU moves on a row.
func (z *zenc) follow(first, last, d int, trusted bool) {
	r := z.rows
	if !trusted {
		for row := first; row <= last; row++ {
			if c := &z.cont[r.cpu[row]]; *c >= 0 {
				*c = r.after(int(*c))
			}
		}
		for z.swAt < len(r.sw) && int(r.sw[z.swAt]) <= last {
			z.swAt++
		}
		return
	}
	for z.swAt < len(r.sw) && int(r.sw[z.swAt]) <= last {
		if t := int(r.sw[z.swAt]); t > first && t-1-d >= 0 {
			z.cont[r.cpu[t-1]] = r.after(t - 1 - d)
		}
		z.swAt++
	}
	if last-d >= 0 {
		z.cont[r.cpu[last]] = r.after(last - d)
	}
}

// keepTables records the tables of a compressed block with sequences, for
// Repeat mode in the next blocks of the frame.
func (z *zenc) keepTables() {
	for i, mode := range z.curMode {
		switch mode {
		case modeRepeat:
			continue
		case modePredefined:
			z.prevNorm[i].norm = append(z.prevNorm[i].norm[:0], predefined[i]...)
			z.prevNorm[i].log = predefinedLog[i]
			z.prevCT[i].copyFrom(&predefinedCT[i])
		case modeCompressed:
			z.prevNorm[i].norm = append(z.prevNorm[i].norm[:0], z.norm[i]...)
			z.prevNorm[i].log = z.ct[i].log
			z.prevCT[i].copyFrom(&z.ct[i])
		}
		z.prevMode[i] = mode
		z.prevOK[i] = true
	}
}

// resolveOffset returns the Offset_Value for a match at off after ll
// literals and updates the repeat offsets (RFC 8878 3.1.2.5).
func resolveOffset(r *[3]uint32, off uint32, ll int) uint32 {
	if ll > 0 {
		switch off {
		case r[0]:
			return 1
		case r[1]:
			r[0], r[1] = r[1], r[0]
			return 2
		case r[2]:
			r[0], r[1], r[2] = r[2], r[0], r[1]
			return 3
		}
	} else {
		switch {
		case off == r[1]:
			r[0], r[1] = r[1], r[0]
			return 1
		case off == r[2]:
			r[0], r[1], r[2] = r[2], r[0], r[1]
			return 2
		case off == r[0]-1:
			r[0], r[1], r[2] = off, r[0], r[1]
			return 3
		}
	}
	r[0], r[1], r[2] = off, r[0], r[1]
	return off + 3
}

// sections appends the literals and sequences sections of the block in
// z.lits and z.seqs.
func (z *zenc) sections(dst []byte) ([]byte, bool) {
	dst = z.literals(dst)
	return z.sequences(dst)
}

func (z *zenc) literals(dst []byte) []byte {
	lits := z.lits
	n := len(lits)
	if n == 0 {
		return literalsHeader(dst, 0, 0)
	}
	z.huff.Reuse = huff0.ReusePolicyNone
	var out []byte
	var err error
	single := n < 1024
	if single {
		out, _, err = huff0.Compress1X(lits, &z.huff)
	} else {
		out, _, err = huff0.Compress4X(lits, &z.huff)
	}
	switch {
	case errors.Is(err, huff0.ErrUseRLE):
		dst = literalsHeader(dst, 1, n)
		return append(dst, lits[0])
	case err != nil || len(out) >= n || (single && len(out) >= 1024) || len(out) >= 1<<18:
		dst = literalsHeader(dst, 0, n)
		return append(dst, lits...)
	}
	const typ = 2 // Compressed_Literals_Block
	c := len(out)
	switch {
	case single:
		h := typ | 0<<2 | n<<4 | c<<14
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
	case n < 1024 && c < 1024:
		h := typ | 1<<2 | n<<4 | c<<14
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
	case n < 16384 && c < 16384:
		h := typ | 2<<2 | n<<4 | c<<18
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16), byte(h>>24))
	default:
		h := uint64(typ | 3<<2 | n<<4 | c<<22)
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16), byte(h>>24), byte(h>>32))
	}
	return append(dst, out...)
}

// Symbol compression modes.
const (
	modePredefined = 0
	modeRLE        = 1
	modeCompressed = 2
	modeRepeat     = 3
)

// Maximum accuracy logs and predefined distributions (RFC 8878 3.1.1.3.2.2).
var (
	seqMaxLog     = [3]uint8{9, 8, 9} // LL, OF, ML
	predefinedLog = [3]uint8{6, 5, 6}
	predefined    = [3][]int16{
		{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1},
		{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1},
		{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
			1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1},
	}
	predefinedCT [3]fseCTable
)

func init() {
	for i := range predefined {
		if err := predefinedCT[i].build(predefined[i], predefinedLog[i]); err != nil {
			panic(err)
		}
	}
}

func (z *zenc) sequences(dst []byte) ([]byte, bool) {
	seqs := z.seqs
	n := len(seqs)
	switch {
	case n < 128:
		dst = append(dst, byte(n))
	case n < 0x7F00:
		dst = append(dst, byte(n>>8+128), byte(n))
	default:
		m := n - 0x7F00
		dst = append(dst, 255, byte(m), byte(m>>8))
	}
	if n == 0 {
		return dst, true
	}
	for i := range z.codes {
		z.codes[i] = z.codes[i][:0]
	}
	for i := range seqs {
		s := &seqs[i]
		s.llc = uint8(llCode(int(s.ll)))
		s.mlc = uint8(mlCode(int(s.ml)))
		s.ofc = uint8(bits.Len32(s.ov) - 1)
		z.codes[0] = append(z.codes[0], s.llc)
		z.codes[1] = append(z.codes[1], s.ofc)
		z.codes[2] = append(z.codes[2], s.mlc)
	}
	modesAt := len(dst)
	dst = append(dst, 0)
	var modes byte
	var ct [3]*fseCTable
	for i := range 3 { // LL, OF, ML: the order of the table descriptions
		codes := z.codes[i]
		mode, out := z.chooseTable(i, codes)
		switch mode {
		case modeRLE:
			dst = append(dst, codes[0])
			z.ct[i].rle()
			ct[i] = &z.ct[i]
		case modePredefined:
			ct[i] = &predefinedCT[i]
		case modeCompressed:
			dst = append(dst, out...)
			ct[i] = &z.ct[i]
		case modeRepeat:
			ct[i] = &z.prevCT[i]
		default:
			return dst, false
		}
		z.curMode[i] = mode
		modes |= byte(mode) << (6 - 2*i)
	}
	dst[modesAt] = modes
	// The bitstream: a decoder reads it from the end, sequences first to
	// last, so it is written last sequence first (zstd's
	// ZSTD_encodeSequences).
	llT, ofT, mlT := ct[0], ct[1], ct[2]
	bw := &z.bw
	bw.reset(dst)
	last := &seqs[n-1]
	var llS, ofS, mlS uint32
	llS = llT.initState(last.llc)
	ofS = ofT.initState(last.ofc)
	mlS = mlT.initState(last.mlc)
	bw.addBits(uint64(last.ll-llBase[last.llc]), uint(llBits[last.llc]))
	bw.addBits(uint64(last.ml-mlBase[last.mlc]), uint(mlBits[last.mlc]))
	bw.addBits(uint64(last.ov), uint(last.ofc))
	bw.flush()
	for i := n - 2; i >= 0; i-- {
		s := &seqs[i]
		ofS = ofT.encode(bw, ofS, s.ofc)
		mlS = mlT.encode(bw, mlS, s.mlc)
		llS = llT.encode(bw, llS, s.llc)
		bw.flush()
		bw.addBits(uint64(s.ll-llBase[s.llc]), uint(llBits[s.llc]))
		bw.addBits(uint64(s.ml-mlBase[s.mlc]), uint(mlBits[s.mlc]))
		bw.flush()
		bw.addBits(uint64(s.ov), uint(s.ofc))
		bw.flush()
	}
	bw.addBits(uint64(mlS), uint(mlT.log))
	bw.addBits(uint64(ofS), uint(ofT.log))
	bw.flush()
	bw.addBits(uint64(llS), uint(llT.log))
	return bw.close(), true
}

// chooseTable picks how to code one symbol stream: RLE for one value, or
// whichever of the predefined distribution, the previous block's table
// (Repeat mode) and a table of the stream's own counts (whose header it
// returns) costs fewest bits.
func (z *zenc) chooseTable(kind int, codes []byte) (int, []byte) {
	var hist [64]uint32
	maxc := 0
	for _, c := range codes {
		hist[c]++
		maxc = max(maxc, int(c))
	}
	if int(hist[codes[0]]) == len(codes) {
		return modeRLE, nil
	}
	best, bestCost := -1, uint64(1)<<62
	if c, ok := tableCost(hist[:maxc+1], predefined[kind], predefinedLog[kind]); ok {
		best, bestCost = modePredefined, c
	}
	if z.prevOK[kind] && z.prevMode[kind] != modeRLE {
		p := &z.prevNorm[kind]
		if c, ok := tableCost(hist[:maxc+1], p.norm, p.log); ok && c < bestCost {
			best, bestCost = modeRepeat, c
		}
	}
	if len(codes) >= 16 {
		log := optimalLog(len(codes), maxc, seqMaxLog[kind])
		norm := z.norm[kind][:0]
		norm = normalize(norm, hist[:maxc+1], len(codes), log)
		z.norm[kind] = norm
		hdr := writeNCount(z.hdr[kind][:0], norm, log)
		z.hdr[kind] = hdr
		if c, ok := tableCost(hist[:maxc+1], norm, log); ok && c+uint64(8*len(hdr)) < bestCost {
			best = modeCompressed
		}
	}
	switch best {
	case modeCompressed:
		if z.ct[kind].build(z.norm[kind], optimalLog(len(codes), maxc, seqMaxLog[kind])) != nil {
			return -1, nil
		}
		return modeCompressed, z.hdr[kind]
	case modeRepeat:
		return modeRepeat, nil
	}
	return best, nil
}

// tableCost estimates the bits to code symbols with counts hist using a
// table of normalized counts norm (accuracy log); ok is false when a
// symbol has no place in the table.
func tableCost(hist []uint32, norm []int16, log uint8) (uint64, bool) {
	var cost uint64
	for s, n := range hist {
		if n == 0 {
			continue
		}
		if s >= len(norm) || norm[s] == 0 {
			return 0, false
		}
		p := int(norm[s])
		if p < 0 {
			p = 1
		}
		// log2(2^log / p), in 1/16 bits.
		cost += uint64(n) * uint64(16*int(log)-log2x16(p))
	}
	return cost / 16, true
}

// log2x16 returns 16*log2(p), rounded down.
func log2x16(p int) int {
	hb := bits.Len(uint(p)) - 1
	// Fraction from the next 4 bits below the top bit.
	frac := 0
	if hb >= 4 {
		frac = (p >> (hb - 4)) & 15
	} else {
		frac = (p << (4 - hb)) & 15
	}
	return 16*hb + frac
}

// optimalLog is zstd's FSE_optimalTableLog for n symbols of values up to
// maxSym.
func optimalLog(n, maxSym int, maxLog uint8) uint8 {
	log := int(maxLog)
	if src := bits.Len(uint(n-1)) - 1 - 2; src < log {
		log = src
	}
	minBits := min(bits.Len(uint(n-1))-1+1, bits.Len(uint(maxSym))-1+2)
	log = max(log, minBits, 5)
	return uint8(min(log, int(maxLog)))
}

// normalize scales counts to sum to 2^log, every present symbol at least
// 1 (no "less than 1" probabilities), the remainder given to or taken from
// the largest.
func normalize(norm []int16, hist []uint32, total int, log uint8) []int16 {
	size := 1 << log
	norm = append(norm, make([]int16, len(hist))...)
	sum := 0
	for s, n := range hist {
		if n == 0 {
			continue
		}
		v := max(1, int(uint64(n)*uint64(size)/uint64(total)))
		norm[s] = int16(v)
		sum += v
	}
	// Too many: take from the largest (repeatedly: each keeps 1 at least).
	for sum > size {
		big := 0
		for s := range norm {
			if norm[s] > norm[big] {
				big = s
			}
		}
		take := min(sum-size, int(norm[big])-1, max(1, int(norm[big])/2))
		norm[big] -= int16(take)
		sum -= take
	}
	if sum < size {
		big := 0
		for s := range norm {
			if norm[s] > norm[big] {
				big = s
			}
		}
		norm[big] += int16(size - sum)
	}
	return norm
}

// writeNCount appends an FSE table description (RFC 8878 4.1.1; zstd's
// FSE_writeNCount) of norm, which sums to 2^log.
func writeNCount(dst []byte, norm []int16, log uint8) []byte {
	size := 1 << log
	var acc uint64
	var n uint
	put := func(v uint64, bits uint) {
		acc |= v << n
		n += bits
		for n >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	put(uint64(log-5), 4)
	remaining := size + 1
	threshold := size
	nbBits := uint(log) + 1
	prev0 := false
	for s := 0; s < len(norm) && remaining > 1; {
		if prev0 {
			start := s
			for s < len(norm) && norm[s] == 0 {
				s++
			}
			for s >= start+24 {
				start += 24
				put(0xFFFF, 16)
			}
			for s >= start+3 {
				start += 3
				put(3, 2)
			}
			put(uint64(s-start), 2)
		}
		count := int(norm[s])
		s++
		maxV := 2*threshold - 1 - remaining
		if count < 0 {
			remaining += count
		} else {
			remaining -= count
		}
		count++
		if count >= threshold {
			count += maxV
		}
		if count < maxV {
			put(uint64(count), nbBits-1)
		} else {
			put(uint64(count), nbBits)
		}
		prev0 = count == 1
		for remaining < threshold {
			nbBits--
			threshold >>= 1
		}
	}
	if n > 0 {
		dst = append(dst, byte(acc))
	}
	return dst
}

// readNCount parses an FSE table description (RFC 8878 4.1.1): the
// normalized counts, the accuracy log and the header's length in bytes.
func readNCount(b []byte, maxSymbol int) ([]int16, uint8, int, error) {
	if len(b) < 4 {
		return nil, 0, 0, errors.New("fse header too short")
	}
	var norm []int16
	bitPos := 0
	read := func(n int) uint32 { // n <= 24
		var v uint32
		byteAt := bitPos >> 3
		var w [4]byte
		copy(w[:], b[min(byteAt, len(b)):])
		v = binary.LittleEndian.Uint32(w[:]) >> (bitPos & 7)
		return v & (1<<n - 1)
	}
	log := int(read(4)) + 5
	bitPos += 4
	remaining := (1 << log) + 1
	threshold := 1 << log
	nbBits := log + 1
	for remaining > 1 {
		if len(norm) > maxSymbol {
			return nil, 0, 0, errors.New("fse header: too many symbols")
		}
		maxV := 2*threshold - 1 - remaining
		var count int
		if low := int(read(nbBits - 1)); low < maxV {
			count = low
			bitPos += nbBits - 1
		} else {
			count = int(read(nbBits))
			if count >= threshold {
				count -= maxV
			}
			bitPos += nbBits
		}
		count--
		if count < 0 {
			remaining--
		} else {
			remaining -= count
		}
		norm = append(norm, int16(count))
		if count == 0 {
			for {
				r := int(read(2))
				bitPos += 2
				for range r {
					norm = append(norm, 0)
				}
				if r != 3 {
					break
				}
			}
		}
		for remaining < threshold && threshold > 1 {
			nbBits--
			threshold >>= 1
		}
		if bitPos>>3 > len(b) {
			return nil, 0, 0, errors.New("fse header: truncated")
		}
	}
	if remaining != 1 {
		return nil, 0, 0, errors.New("fse header: counts do not sum to the table size")
	}
	return norm, uint8(log), (bitPos + 7) >> 3, nil
}

// fseCTable is an FSE encoding table (zstd's FSE_buildCTable).
type fseCTable struct {
	log        uint8
	stateTable []uint16
	tt         []symbolTT
	cumul      []int   // scratch
	symbols    []uint8 // scratch
}

// resize returns s with length n, reusing its array when it is large
// enough (the contents are not kept: callers overwrite them).
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

type symbolTT struct {
	deltaNbBits    uint32
	deltaFindState int32
}

func (t *fseCTable) copyFrom(o *fseCTable) {
	t.log = o.log
	t.stateTable = append(t.stateTable[:0], o.stateTable...)
	t.tt = append(t.tt[:0], o.tt...)
}

func (t *fseCTable) rle() {
	t.log = 0
	t.stateTable = append(t.stateTable[:0], 0)
	t.tt = t.tt[:0]
}

func (t *fseCTable) build(norm []int16, log uint8) error {
	size := 1 << log
	high := size - 1
	t.cumul = resize(t.cumul, len(norm)+1)
	t.symbols = resize(t.symbols, size)
	cumul, symbols := t.cumul, t.symbols
	cumul[0] = 0
	for s, v := range norm {
		if v == -1 {
			cumul[s+1] = cumul[s] + 1
			symbols[high] = uint8(s)
			high--
		} else {
			cumul[s+1] = cumul[s] + int(v)
		}
	}
	if cumul[len(norm)] != size {
		return errors.New("fse: counts do not sum to the table size")
	}
	step := size>>1 + size>>3 + 3
	mask := size - 1
	pos := 0
	for s, v := range norm {
		for range max(v, 0) {
			symbols[pos] = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	if pos != 0 {
		return errors.New("fse: bad spread")
	}
	t.log = log
	t.stateTable = resize(t.stateTable, size)
	for u, s := range symbols {
		t.stateTable[cumul[s]] = uint16(size + u)
		cumul[s]++
	}
	t.tt = resize(t.tt, len(norm))
	clear(t.tt)
	total := int32(0)
	for s, v := range norm {
		switch v {
		case 0:
		case -1, 1:
			t.tt[s] = symbolTT{uint32(log)<<16 - 1<<log, total - 1}
			total++
		default:
			maxBitsOut := uint32(log) - uint32(bits.Len32(uint32(v-1))-1)
			minStatePlus := uint32(v) << maxBitsOut
			t.tt[s] = symbolTT{maxBitsOut<<16 - minStatePlus, total - int32(v)}
			total += int32(v)
		}
	}
	return nil
}

// initState is the state after encoding the first symbol (the last
// sequence's): no bits are written for it.
func (t *fseCTable) initState(s uint8) uint32 {
	if t.log == 0 {
		return 0
	}
	tt := t.tt[s]
	nb := (tt.deltaNbBits + 1<<15) >> 16
	v := nb<<16 - tt.deltaNbBits
	return uint32(t.stateTable[int32(v>>nb)+tt.deltaFindState])
}

func (t *fseCTable) encode(bw *bitWriter, state uint32, s uint8) uint32 {
	if t.log == 0 {
		return 0
	}
	tt := t.tt[s]
	nb := (state + tt.deltaNbBits) >> 16
	bw.addBits(uint64(state), uint(nb))
	return uint32(t.stateTable[int32(state>>nb)+tt.deltaFindState])
}

// bitWriter writes a zstd backward bitstream: bits are appended low to
// high; close adds the end mark.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) reset(out []byte) { w.out, w.acc, w.nacc = out, 0, 0 }

// addBits adds the low n bits of v (n + bits pending <= 64 between flushes).
func (w *bitWriter) addBits(v uint64, n uint) {
	if n == 0 {
		return
	}
	w.acc |= (v & (1<<n - 1)) << w.nacc
	w.nacc += n
}

func (w *bitWriter) flush() {
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) close() []byte {
	w.addBits(1, 1)
	w.flush()
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
	}
	return w.out
}

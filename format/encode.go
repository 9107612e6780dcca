package format

import (
	"encoding/binary"
	"math/bits"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/klauspost/compress/zstd"
)

// Arrow IPC body compression (BodyCompression ZSTD, method BUFFER): each
// buffer is stored as its uncompressed length (int64, little-endian)
// followed by one zstd frame; an empty buffer is stored as nothing.

// colOut is one column of a batch, encoded.
type colOut struct {
	nulls int
	nb    int       // buffers: 2, or 3 for strings
	bufs  [3][]byte // validity, values (or offsets, data); reused
}

// How each column's values are compressed: with zenc (zenc.go), the
// row-aligned encoder, or with klauspost/compress/zstd at a level. Chosen
// per column by measurement on the bench-fentry and text-poke-bp traces
// (RATIONALE.md "Compression"): zenc for the wide columns, where rows repeat
// at a loop's period or at the sum of two periods, which it looks for;
// klauspost for the narrow ones of interleaved runs, where it is faster.
const (
	levelDefault  = zstd.SpeedDefault
	levelValidity = levelDefault
	levelDict     = levelDefault
	numLevels     = 5
	codecZenc     = zstd.EncoderLevel(0) // not a klauspost level
)

// zencColumns are the columns compressed with zenc; the others (and every
// validity bitmap, offsets and dictionary) with klauspost's default level.
// old, new and the register columns joined when loads and register deltas
// made them most of a trace (format/RATIONALE.md "Compression").
var zencColumns = append([]int{
	ColRIP, ColRSP, ColRFlags, ColAddr, ColSize, ColAliasAddr, ColHandler, ColErrCode,
	ColArg0, ColArg1, ColArg2, ColArg3, ColRet, ColKind, ColPercpuOff, ColPercpuVar, ColBytes,
	ColOld, ColNew,
}, regColumnIndexes()...)

// regColumnIndexes lists the reg_ columns.
func regColumnIndexes() []int {
	var c []int
	for i := range NumRegs {
		c = append(c, ColRegRAX+i)
	}
	return c
}

// columnCodec is the codec for each column's values. (seq without gaps
// and all-null buffers take neither: see encodeColumn.)
var columnCodec = func() (l [NumColumns]zstd.EncoderLevel) {
	for i := range l {
		l[i] = levelDefault
	}
	for _, i := range zencColumns {
		l[i] = codecZenc
	}
	return l
}()

// columnCodecMulti is the codec for each column's values in a batch of
// several CPUs' rows (cpuRows), chosen by measurement on text-poke-bp
// (RATIONALE.md "Trace size"): zenc there follows each CPU's rows across
// the switches; klauspost's better level, which finds matches anywhere in
// a row, is smaller on a stack pointer delta stepping through pushes and
// pops, on addresses and on instruction lengths.
var columnCodecMulti = func() (l [NumColumns]zstd.EncoderLevel) {
	l = columnCodec
	l[ColOp] = codecZenc
	for _, i := range []int{ColRegRSP, ColAddr, ColLen} {
		l[i] = zstd.SpeedBetterCompression
	}
	return l
}()

// followColumns are the zenc columns whose encoder is told each row's CPU
// in a batch of several CPUs (cpuRows): those where following a CPU across
// the switches measured smaller on text-poke-bp (rip -12%, rsp -31%, bytes
// -12%, op -7%, rflags -6%, new -2.4%, kind -1.4%). On the others (values
// that are random or rarely repeat: old, most registers, the per-CPU and
// argument columns) it saved under 0.5% each, 6 KB in all, for ~1.5 ns
// per row each, ~23 ns/row over them.
var followColumns = [NumColumns]bool{
	ColKind: true, ColRIP: true, ColBytes: true, ColOp: true, ColRSP: true, ColRFlags: true, ColNew: true,
}

// columnWidth is the bytes per row of each column's values buffer (1 for
// booleans: zenc then sees bytes).
var columnWidth = func() (w [NumColumns]int) {
	for i, c := range Columns {
		w[i] = 1
		switch t := c.Type.(type) {
		case *arrow.DictionaryType:
			w[i] = t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
		case *arrow.FixedSizeBinaryType:
			w[i] = t.ByteWidth
		case arrow.FixedWidthDataType:
			w[i] = max(1, t.BitWidth()/8)
		}
	}
	return w
}()

// encodeOrder lists the columns most expensive to compress first, so that
// a batch's last jobs are short ones.
var encodeOrder = func() []int {
	first := []int{ColRFlags, ColOld, ColNew, ColRIP, ColRSP, ColBytes, ColAddr, ColSize}
	seen := map[int]bool{}
	var order []int
	for _, i := range first {
		order = append(order, i)
		seen[i] = true
	}
	for i := range NumColumns {
		if !seen[i] {
			order = append(order, i)
		}
	}
	return order
}()

// colEncoder compresses columns; each encoding goroutine has its own.
type colEncoder struct {
	valid   []byte // a validity bitmap being built
	enc     [numLevels]*zstd.Encoder
	zenc    zenc
	counter counterEncoder
}

func newColEncoder() *colEncoder {
	pool.Lock()
	defer pool.Unlock()
	if n := len(pool.encs); n > 0 {
		e := pool.encs[n-1]
		pool.encs = pool.encs[:n-1]
		return e
	}
	return &colEncoder{}
}

func (e *colEncoder) encoder(l zstd.EncoderLevel) *zstd.Encoder {
	if e.enc[l] == nil {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<20))
		if err != nil {
			panic(err) // only for invalid options
		}
		e.enc[l] = z
	}
	return e.enc[l]
}

// compress appends src, rows of width bytes, as a compressed body buffer.
func (e *colEncoder) compress(dst, src []byte, l zstd.EncoderLevel, width int) []byte {
	if len(src) == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(src)))
	if l == codecZenc {
		return e.zenc.encode(dst, src, width)
	}
	return e.encoder(l).EncodeAll(src, dst)
}

// zeros appends n zero bytes as a compressed body buffer.
func zeros(dst []byte, n int) []byte {
	if n == 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(n))
	return zeroFrame(dst, n)
}

// encodeColumn compresses column i of b into b.out[i] and clears the
// column's buffers for the next batch.
func (e *colEncoder) encodeColumn(b *batch, i int) {
	c := &b.cols[i]
	o := &b.out[i]
	n := b.n
	bm := (n + 7) / 8
	dirty := b.dirty&(1<<i) != 0

	o.nulls = 0
	v := o.bufs[0][:0]
	if c.valid != nil && n > 0 {
		switch {
		case !dirty:
			o.nulls = n
			v = zeros(v, bm)
		default:
			// The rows of kinds that always fill the column (derived
			// from the kind column) and those whose condition held (set
			// by Append).
			valid := e.valid[:0]
			valid = append(valid, make([]byte, bm)...)
			e.valid = valid
			kindValidity(valid, &b.kindMap, pureKinds[i], c.valid[:bm])
			set := 0
			for _, x := range valid {
				set += bits.OnesCount8(x)
			}
			if o.nulls = n - set; o.nulls == n {
				// Filled by no row (a kind that uses the column only under
				// a condition): all zeros, like a column no row uses.
				dirty = false
				v = zeros(v, bm)
			} else if o.nulls > 0 {
				v = e.compress(v, valid, levelValidity, 1)
			}
		}
	}
	o.bufs[0] = v

	if c.offs != nil { // string
		o.nb = 3
		if dirty {
			c.fill(n)
			o.bufs[1] = e.compress(o.bufs[1][:0], c.offs[:4*(n+1)], levelDefault, 4)
		} else {
			o.bufs[1] = zeros(o.bufs[1][:0], 4*(n+1))
		}
		o.bufs[2] = e.compress(o.bufs[2][:0], c.data, levelDefault, 1)
		c.data = c.data[:0]
		c.filled = 1
	} else {
		o.nb = 2
		size := n * c.width
		if c.width == 0 { // boolean
			size = bm
		}
		vals := o.bufs[1][:0]
		switch {
		case size == 0:
		case !dirty:
			vals = zeros(vals, size)
		case i == ColSeq && !b.gap:
			vals = binary.LittleEndian.AppendUint64(vals, uint64(size))
			vals = e.counter.frame(vals, b.firstSeq, n)
		default:
			if o.nulls > 0 && fillColumns[i] {
				fillNulls(c.fixed[:size], c.width, e.valid)
			}
			codec := columnCodec[i]
			if b.multi {
				codec = columnCodecMulti[i]
				if followColumns[i] {
					e.zenc.rows = &b.cpuRows
				}
			}
			vals = e.compress(vals, c.fixed[:size], codec, columnWidth[i])
			e.zenc.rows = nil
		}
		o.bufs[1] = vals
		if dirty && !Columns[i].Common {
			// Common columns are written in every row: nothing to clear
			// (and the kind column is read by the other columns' jobs).
			clear(c.fixed[:size])
		}
	}
	if dirty && c.valid != nil {
		clear(c.valid[:bm])
	}
}

// pureKinds[i] has bit k-1 set when kind k fills column i in every row
// (a Use with no condition): Append's fast paths do not set those validity
// bits; the encoder derives them from the rows of each kind (kindMap).
var pureKinds = func() (m [NumColumns]uint16) {
	for i, c := range Columns {
		for _, u := range c.Uses {
			if u.Cond == "" {
				m[i] |= 1 << (u.Kind - 1)
			}
		}
	}
	return m
}()

// kindValidity sets dst (bm bytes) to the rows of the kinds in mask
// (kindMap: one bitmap of rows per kind) or'ed with cond (the rows whose
// condition held).
func kindValidity(dst []byte, kindMap *[numKinds - 1][]uint64, mask uint16, cond []byte) {
	n := len(dst)
	for w := 0; 8*w < n; w++ {
		var x uint64
		for m := mask; m != 0; m &= m - 1 {
			x |= kindMap[bits.TrailingZeros16(m)][w]
		}
		if 8*w+8 <= n {
			x |= binary.LittleEndian.Uint64(cond[8*w:])
			binary.LittleEndian.PutUint64(dst[8*w:], x)
			continue
		}
		for k := 8 * w; k < n; k++ {
			dst[k] = byte(x>>(8*(k-8*w))) | cond[k]
		}
	}
}

// fillColumns are the columns whose null slots the encoder fills with the
// previous row's value (Arrow readers ignore the values under null bits):
// those whose values are few and repeat (size: 8 for most loads and
// stores), where a column of runs compresses better than values
// interleaved with zeros. For the others (addresses, old/new values,
// registers) zeros measured better: see RATIONALE.md "Encodings and size".
var fillColumns = [NumColumns]bool{ColSize: true}

// fillNulls sets each null slot of vals (rows of width bytes; valid is
// the validity bitmap) to the previous row's value (the first rows, if
// null, stay zero).
func fillNulls(vals []byte, width int, valid []byte) {
	if width == 4 {
		fillNulls32(vals, valid)
		return
	}
	n := len(vals) / width
	for w := 0; w*8 < n; w++ {
		if valid[w] == 0xFF {
			continue
		}
		for r := max(w*8, 1); r < min(w*8+8, n); r++ {
			if valid[w]&(1<<(r&7)) == 0 {
				copy(vals[r*width:(r+1)*width], vals[(r-1)*width:r*width])
			}
		}
	}
}

// fillNulls32 is fillNulls for 4-byte rows (size, the one filled column),
// without a branch or a copy call per row: every row after the first is
// stored again, its own value if valid, else the value carried from the
// row before.
func fillNulls32(vals []byte, valid []byte) {
	n := len(vals) / 4
	if n == 0 {
		return
	}
	valid = valid[:(n+7)/8]
	prev := binary.LittleEndian.Uint32(vals)
	for r := 1; r < n; r++ {
		keep := -uint32(valid[r>>3] >> (r & 7) & 1) // all ones for a valid row
		x := vals[4*r : 4*r+4]
		prev = prev&^keep | binary.LittleEndian.Uint32(x)&keep
		binary.LittleEndian.PutUint32(x, prev)
	}
}

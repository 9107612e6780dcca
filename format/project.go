package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/klauspost/compress/zstd"
)

// This file is the reader's fast path for reading rows in order
// (Events, EventsFrom, Scan): a batch's message is decoded here, not by
// the Arrow library. Only the buffers of the columns asked for are
// decompressed (straight into one reused arena per batch), and batches
// are decoded by GOMAXPROCS workers ahead of the consumer. What a batch
// is checked for is what Batch checks (bind, checkValues), for the
// columns decoded; a batch that does not decode is reported when the
// consumer reaches it, as a sequential read would.

// Projection says what a consumer reads of the rows: the columns it reads
// and the kinds of rows it reads them of. The common columns (seq, kind,
// cpu, task, depth, rip) are always decoded.
type Projection struct {
	// Columns are the Col* indexes decoded besides the common ones; nil:
	// every column.
	Columns []int
	// Kinds are the kinds whose rows have their columns filled; a row of
	// another kind has only its common columns (the rest read as zero).
	// A column used by none of these kinds is not decoded. nil: every
	// kind. (Rows are filled with the columns their kind uses: a value a
	// damaged file holds in a column its row's kind does not use is not
	// read.)
	Kinds []Kind
}

// projection is a compiled Projection.
type projection struct {
	cols  [NumColumns]bool
	kinds [numKinds]bool
	// fill lists, for each kind in kinds, the decoded columns its rows
	// use beyond the common ones (kindColumns that cols has).
	fill [numKinds][]int
	// clear lists, for a row of kind k after one of kind prev, the
	// columns of fill[prev] not in fill[k] (what rowProjected clears).
	clear [numKinds][numKinds][]int
	// fast[k]: the decoded columns of fill[k] as flags, for the kinds
	// most rows are of (insn, load, write), whose rows rowProjected
	// fills in straight-line code (fillFast) rather than a switch per
	// column.
	fast [numKinds]*fastFill
	// fastClear[prev][k], when both kinds have fast, is clear[prev][k] as
	// flags (clearFast).
	fastClear [numKinds][numKinds]*fastFill
}

// fastFill is fill[k] of an insn, load or write row as flags, in the
// order of Row's fields.
type fastFill struct {
	len, bytes, op, rsp, rflags            bool
	addr, size, old, new, alias, aliasAddr bool
	percpuCPU, percpuOff, percpuVar        bool
	regs                                   uint32 // bit i: column ColRegRAX+i
	other                                  []int  // any other column (none today): setCol
}

func newFastFill(cols []int) *fastFill {
	f := &fastFill{}
	for _, col := range cols {
		switch col {
		case ColLen:
			f.len = true
		case ColBytes:
			f.bytes = true
		case ColOp:
			f.op = true
		case ColRSP:
			f.rsp = true
		case ColAddr:
			f.addr = true
		case ColSize:
			f.size = true
		case ColOld:
			f.old = true
		case ColNew:
			f.new = true
		case ColAlias:
			f.alias = true
		case ColAliasAddr:
			f.aliasAddr = true
		case ColPercpuCPU:
			f.percpuCPU = true
		case ColPercpuOff:
			f.percpuOff = true
		case ColPercpuVar:
			f.percpuVar = true
		default:
			if k := col - ColRegRAX; k >= 0 && k < NumRegs {
				f.regs |= 1 << k
			} else {
				f.other = append(f.other, col) // rflags (its width depends on the file)
			}
		}
	}
	return f
}

// AllColumns is the projection of every column of every kind.
var AllColumns = Projection{}

func (p Projection) compile() *projection {
	c := &projection{}
	for k := range c.kinds {
		c.kinds[k] = k > 0 && (p.Kinds == nil || slices.Contains(p.Kinds, Kind(k)))
	}
	for i, col := range Columns {
		if col.Common {
			c.cols[i] = true
			continue
		}
		if p.Columns != nil && !slices.Contains(p.Columns, i) {
			continue
		}
		for _, u := range col.Uses {
			if int(u.Kind) < numKinds && c.kinds[u.Kind] {
				c.cols[i] = true
			}
		}
	}
	for k := range c.kinds {
		if !c.kinds[k] {
			continue
		}
		for _, col := range kindColumns[k] {
			if c.cols[col] {
				c.fill[k] = append(c.fill[k], col)
			}
		}
	}
	for _, k := range []Kind{KindInsn, KindLoad, KindWrite} {
		if c.kinds[k] {
			c.fast[k] = newFastFill(c.fill[k])
		}
	}
	for prev := range c.fill {
		for k := range c.fill {
			for _, col := range c.fill[prev] {
				if !slices.Contains(c.fill[k], col) {
					c.clear[prev][k] = append(c.clear[prev][k], col)
				}
			}
			if c.fast[prev] != nil && c.fast[k] != nil {
				c.fastClear[prev][k] = newFastFill(c.clear[prev][k])
			}
		}
	}
	return c
}

// zeroBits is the validity bitmap of a column not decoded: every row null.
var zeroBits = make([]byte, MaxBatchRows/8)

// Scan iterates over every readable row in order, decoding what p asks
// for (see Projection). The *Row is reused between iterations and must
// not be modified (the next row clears only the fields this one filled).
// Iteration stops at the first error.
func (r *Reader) Scan(p Projection) iter.Seq2[*Row, error] {
	return r.scanFrom(0, p.compile())
}

// decoderPool holds zstd decoders (one goroutine each, no checksum:
// trace checksums cover the batches).
var decoderPool = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true), zstd.WithDecoderMaxMemory(maxAlloc))
	if err != nil {
		panic(err) // only for invalid options
	}
	return d
}}

// msgPool and arenaPool hold the buffers batches are read into (the
// message as stored) and decompressed into.
var msgPool, arenaPool sync.Pool

func getBuf(pool *sync.Pool, n int) []byte {
	if a, ok := pool.Get().(*[]byte); ok && cap(*a) >= n {
		return (*a)[:n]
	}
	return make([]byte, n, n+n/8)
}

func putBuf(pool *sync.Pool, b []byte) {
	if cap(b) > 0 {
		pool.Put(&b)
	}
}

// readAhead is how many batches past the one being read may be decoded
// (two per worker: a worker descheduled on a shared machine holds up the
// consumer only once the others have run that far ahead).
func readAhead() int { return 2*runtime.GOMAXPROCS(0) + 1 }

// scanFrom iterates over the rows with Seq >= seq, decoded as p asks.
func (r *Reader) scanFrom(seq uint64, p *projection) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		first, err := r.Seek(seq)
		if err != nil {
			yield(nil, err)
			return
		}
		var row Row
		next := r.decodeAhead(first, p, readAhead())
		defer next(false)
		for i := first; i < len(r.infos); i++ {
			b, err := next(true)
			if err == nil {
				err = r.checkInfo(i, b)
			}
			if err != nil {
				b.Release()
				yield(nil, err)
				return
			}
			j := 0
			if i == first {
				j = b.Search(seq)
			}
			for ; j < b.n; j++ {
				b.rowProjected(j, &row, p)
				if !yield(&row, nil) {
					b.Release()
					return
				}
			}
			b.Release()
		}
	}
}

// decodeAhead decodes the batches from first on, in order, with up to
// GOMAXPROCS workers and ahead batches in flight (readAhead, or fewer
// for a consumer that keeps the workers busy anyway). next(true) returns
// the next batch (or its error); next(false) stops the workers and
// releases what they decoded.
func (r *Reader) decodeAhead(first int, p *projection, ahead int) func(bool) (*Batch, error) {
	n := len(r.infos) - first
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		i := first
		return func(more bool) (*Batch, error) {
			if !more {
				return nil, nil
			}
			b, err := r.decodeBatch(i, p)
			i++
			return b, err
		}
	}
	type result struct {
		b   *Batch
		err error
	}
	slots := make([]chan result, ahead)
	for k := range slots {
		slots[k] = make(chan result, 1)
	}
	free := make(chan struct{}, ahead)
	jobs := make(chan int)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b, err := r.decodeBatch(i, p)
				slots[(i-first)%ahead] <- result{b, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := first; i < first+n; i++ {
			select {
			case free <- struct{}{}:
			case <-done:
				return
			}
			select {
			case jobs <- i:
			case <-done:
				return
			}
		}
	}()
	i := first
	stopped := false
	return func(more bool) (*Batch, error) {
		if !more {
			if stopped {
				return nil, nil
			}
			stopped = true
			close(done)
			wg.Wait()
			for _, s := range slots {
				select {
				case res := <-s:
					res.b.Release()
				default:
				}
			}
			return nil, nil
		}
		res := <-slots[(i-first)%ahead]
		<-free
		i++
		return res.b, res.err
	}
}

// checkInfo checks decoded batch i against the index (as Batch does) and
// records its sequence range when the file had none.
func (r *Reader) checkInfo(i int, b *Batch) error {
	info := BatchInfo{Rows: b.n}
	if b.n > 0 {
		info.FirstSeq, info.LastSeq = b.Seq(0), b.Seq(b.n-1)
	}
	if r.known[i] && r.infos[i] != info {
		return corruptErr(r.name, i, fmt.Errorf("holds seq %d..%d (%d rows), the index says %d..%d (%d rows)",
			info.FirstSeq, info.LastSeq, info.Rows, r.infos[i].FirstSeq, r.infos[i].LastSeq, r.infos[i].Rows))
	}
	if !r.known[i] {
		if info.Rows != r.infos[i].Rows {
			return corruptErr(r.name, i, fmt.Errorf("has %d rows, its header says %d", info.Rows, r.infos[i].Rows))
		}
		if err := r.checkOrder(i, info); err != nil {
			return err
		}
		r.infos[i], r.known[i] = info, true
	}
	return nil
}

// checkOrder checks batch i's sequence range, read from the batch (a file
// with no index), against the nearest non-empty batches before and after
// it whose ranges are known: each batch's rows come after the previous
// batch's (a complete file's index is checked when it is opened; within a
// batch, checkValues checks the rows).
func (r *Reader) checkOrder(i int, info BatchInfo) error {
	if info.Rows == 0 {
		return nil
	}
	for j := i - 1; j >= 0 && (r.known[j] || r.infos[j].Rows == 0); j-- {
		if p := r.infos[j]; p.Rows > 0 {
			if info.FirstSeq <= p.LastSeq {
				return corruptErr(r.name, i, fmt.Errorf("its first seq %d is not after seq %d, the last of batch %d: batches out of order", info.FirstSeq, p.LastSeq, j))
			}
			break
		}
	}
	for j := i + 1; j < len(r.infos) && (r.known[j] || r.infos[j].Rows == 0); j++ {
		if n := r.infos[j]; n.Rows > 0 {
			if n.FirstSeq <= info.LastSeq {
				return corruptErr(r.name, j, fmt.Errorf("its first seq %d is not after seq %d, the last of batch %d: batches out of order", n.FirstSeq, info.LastSeq, i))
			}
			break
		}
	}
	return nil
}

// decodeBatch reads and decodes batch i's columns p asks for. It reads
// the reader's immutable fields only (it runs on worker goroutines).
func (r *Reader) decodeBatch(i int, p *projection) (*Batch, error) {
	blk := r.blocks[i]
	if blk.metaLen < 8 || blk.metaLen > maxMetaLen || blk.bodyLen < 0 || blk.bodyLen > r.size {
		return nil, corruptErr(r.name, i, fmt.Errorf("message of %d+%d bytes", blk.metaLen, blk.bodyLen))
	}
	m := getBuf(&msgPool, int(blk.metaLen+blk.bodyLen))
	b, err := r.decodeMessage(i, m, p)
	if err != nil {
		putBuf(&msgPool, m)
		return nil, corruptErr(r.name, i, err)
	}
	return b, nil
}

func (r *Reader) decodeMessage(i int, m []byte, p *projection) (*Batch, error) {
	if err := r.readMessage(i, m); err != nil {
		return nil, err
	}
	blk := r.blocks[i]
	meta, body := m[8:blk.metaLen], m[blk.metaLen:]
	msg, err := fbRoot(meta)
	if err != nil {
		return nil, err
	}
	rb, err := msg.table(2)
	if err != nil {
		return nil, err
	}
	n := int(rb.i64(0))
	_, np, _ := rb.vector(1, 16)
	_, bp, _ := rb.vector(2, 16)
	_, compressed := rb.field(3, 4)
	buf := func(k int) []byte { // buffer k of the message, as stored
		off := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*k:]))
		l := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*k+8:]))
		if l == 0 {
			return nil
		}
		return body[off : off+l]
	}
	nulls := func(c int) int64 { return int64(binary.LittleEndian.Uint64(rb.buf[np+16*c+8:])) }
	// The arena holds every decompressed buffer of the columns decoded.
	// A file of an older version has fewer columns: the others are null.
	ncols := numColumnsIn(r.version)
	size := 0
	for c := range ncols {
		if !p.cols[c] {
			continue
		}
		for k := r.bufStart[c]; k < r.bufStart[c+1]; k++ {
			if k == r.bufStart[c] && nulls(c) == 0 {
				continue // no nulls: the bitmap is not read (as Arrow)
			}
			if s := buf(k); compressed && len(s) >= 8 && int64(binary.LittleEndian.Uint64(s)) > 0 {
				if u := int(binary.LittleEndian.Uint64(s)); !isZeroView(s[8:], u) {
					size += u
				}
			}
		}
	}
	arena := getBuf(&arenaPool, size)[:0]
	b := &Batch{index: i, n: n, names: &r.names, rflags64: r.rflags64, msg: m, arena: arena}
	var zd *zstd.Decoder
	defer func() {
		if zd != nil {
			decoderPool.Put(zd)
		}
	}()
	var bufs [3][]byte
	for c := range Columns {
		cv := &b.cols[c]
		if !p.cols[c] || c >= ncols {
			*cv = colView{valid: zeroBits[:(n+7)/8]}
			continue
		}
		nb := r.bufStart[c+1] - r.bufStart[c]
		for k := range nb {
			bufs[k] = nil
			s := buf(r.bufStart[c] + k)
			if k == 0 && nulls(c) == 0 || len(s) == 0 {
				continue
			}
			if !compressed {
				bufs[k] = s
				continue
			}
			u := int64(binary.LittleEndian.Uint64(s))
			if u == -1 {
				bufs[k] = s[8:]
				continue
			}
			start := len(arena)
			if size, zero, ok := simpleFrame(s[8:]); ok && (zero && u <= zeroViewLen || cap(arena)-start >= size) {
				// Raw and RLE blocks only (see zfast.go).
				if int64(size) < u {
					putBuf(&arenaPool, arena)
					return nil, fmt.Errorf("decode: column %s: buffer %d holds %d bytes, its header says %d", Columns[c].Name, k, size, u)
				}
				if zero && u <= zeroViewLen {
					bufs[k] = zeroView()[:u]
					continue
				}
				arena = decodeSimple(arena, s[8:])[:start+int(u)]
				bufs[k] = arena[start:]
				continue
			}
			if zd == nil {
				zd = decoderPool.Get().(*zstd.Decoder)
			}
			// Decoded after the arena's length, into its capacity (sized
			// for every buffer's stated length): the decoder's size limit
			// (maxAlloc) then bounds this buffer, not the batch so far (a
			// batch of more than ~200 Ki rows holds more than 64 MiB).
			out, err := zd.DecodeAll(s[8:], arena[start:start])
			if err != nil {
				putBuf(&arenaPool, arena)
				return nil, fmt.Errorf("decode: column %s: %w", Columns[c].Name, err)
			}
			if int64(len(out)) < u {
				putBuf(&arenaPool, arena)
				return nil, fmt.Errorf("decode: column %s: buffer %d holds %d bytes, its header says %d", Columns[c].Name, k, len(out), u)
			}
			out = out[:u] // what is past the stated length is not read (as Arrow)
			switch {
			case u == 0:
			case cap(arena)-start >= int(u) && unsafe.SliceData(out) == unsafe.SliceData(arena[start:start+1]):
				arena = arena[:start+int(u)]
			default:
				arena = append(arena, out...) // the decoder had to allocate
			}
			bufs[k] = arena[start:]
		}
		if err := checkBuffers(bufs[:nb], nulls(c), columnType(r.version, c), n, cv); err != nil {
			putBuf(&arenaPool, arena)
			return nil, fmt.Errorf("column %s: %w", Columns[c].Name, err)
		}
	}
	b.arena = arena
	if err := r.checkBatch(b, p); err != nil {
		putBuf(&arenaPool, arena)
		return nil, err
	}
	return b, nil
}

// checkBuffers is checkData for a column's buffers as stored (validity,
// values, then data for strings) with nulls nulls.
func checkBuffers(bufs [][]byte, nulls int64, t arrow.DataType, n int, cv *colView) error {
	blen := func(i int) int { return len(bufs[i]) }
	bm := (n + 7) / 8
	*cv = colView{}
	if blen(0) > 0 {
		if blen(0) < bm {
			return fmt.Errorf("validity bitmap of %d bytes for %d rows", blen(0), n)
		}
		cv.valid = bufs[0][:bm]
	} else if nulls > 0 && n > 0 {
		return fmt.Errorf("%d nulls without a validity bitmap", nulls)
	}
	switch t := t.(type) {
	case *arrow.DictionaryType:
		w := t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
		if blen(1) < n*w {
			return fmt.Errorf("index buffer of %d bytes for %d rows", blen(1), n)
		}
		cv.vals = bufs[1][:n*w]
	case *arrow.BooleanType:
		if blen(1) < bm {
			return fmt.Errorf("value bitmap of %d bytes for %d rows", blen(1), n)
		}
		cv.vals = bufs[1][:bm]
	case *arrow.BinaryType, *arrow.StringType:
		if blen(1) < 4*(n+1) && !(n == 0 && blen(1) == 0) {
			return fmt.Errorf("offset buffer of %d bytes for %d rows", blen(1), n)
		}
		if n == 0 {
			return nil
		}
		cv.offs = bufs[1][:4*(n+1)]
		cv.data = bufs[2]
		prev := int32(binary.LittleEndian.Uint32(cv.offs))
		if prev < 0 {
			return errors.New("negative offset")
		}
		for j := 1; j <= n; j++ {
			o := int32(binary.LittleEndian.Uint32(cv.offs[4*j:]))
			if o < prev {
				return fmt.Errorf("offsets decrease at row %d", j-1)
			}
			prev = o
		}
		if int(prev) > len(cv.data) {
			return fmt.Errorf("offsets reach %d, data has %d bytes", prev, len(cv.data))
		}
	case arrow.FixedWidthDataType:
		w := t.BitWidth() / 8
		if blen(1) < n*w {
			return fmt.Errorf("value buffer of %d bytes for %d rows", blen(1), n)
		}
		cv.vals = bufs[1][:n*w]
	default:
		return fmt.Errorf("unsupported type %s", t)
	}
	return nil
}

// checkBatch is bind's checks after the buffers, for the columns decoded.
func (r *Reader) checkBatch(b *Batch, p *projection) error {
	n := b.n
	for i, c := range Columns {
		if !p.cols[i] || i >= numColumnsIn(r.version) {
			continue
		}
		cv := &b.cols[i]
		if c.Common && cv.valid != nil {
			for j := 0; j < n; j++ {
				if !cv.ok(j) {
					return fmt.Errorf("column %s: row %d is null", c.Name, j)
				}
			}
			cv.valid = nil
		}
		if dt, ok := c.Type.(*arrow.DictionaryType); ok {
			names := r.names[i]
			w := dt.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
			if dictFine(cv.vals[:n*w], w, len(names)) {
				continue
			}
			for j := 0; j < n; j++ {
				if !cv.ok(j) {
					continue
				}
				var idx int
				if w == 1 {
					idx = int(int8(cv.vals[j]))
				} else {
					idx = int(int16(le16(cv.vals, j)))
				}
				if idx < 0 || idx >= len(names) {
					return fmt.Errorf("column %s: row %d: dictionary index %d out of range", c.Name, j, idx)
				}
			}
		}
	}
	seqs := b.cols[ColSeq].vals[:8*n]
	for j := 8; j < len(seqs); j += 8 {
		if binary.LittleEndian.Uint64(seqs[j:]) <= binary.LittleEndian.Uint64(seqs[j-8:]) {
			return fmt.Errorf("row %d: seq %d not after %d", j/8, b.Seq(j/8), b.Seq(j/8-1))
		}
	}
	return r.checkValues(b)
}

// dictFine reports whether every value of a dictionary column's indexes
// (of w bytes), null or not, is an index into names: then no row's is out
// of range (else checkBatch looks at the rows that are not null).
func dictFine(vals []byte, w, names int) bool {
	switch w {
	case 1:
		limit := min(names, 128) // int8 indexes: 128 and up are negative
		var or uint64
		j := 0
		for ; j+8 <= len(vals); j += 8 {
			or |= binary.LittleEndian.Uint64(vals[j:])
		}
		m := uint8(or | or>>8 | or>>16 | or>>24 | or>>32 | or>>40 | or>>48 | or>>56)
		for ; j < len(vals); j++ {
			m |= vals[j]
		}
		if int(m) < limit || len(vals) == 0 {
			return true // (the OR is at least the largest)
		}
		m = 0
		for _, v := range vals {
			m = max(m, v)
		}
		return int(m) < limit
	case 2:
		return len(vals) == 0 || u16sBelow(vals, min(names, 1<<15))
	}
	return false
}

// rowProjected fills r with row i as p asks: the common columns, and the
// decoded columns its kind uses when p names the kind (a value in a
// column the kind does not use, which only a damaged file holds, is not
// read).
//
// r is the row this filled for the previous row (or a zero Row): the
// fields of this row's kind are set or cleared, and of the previous row's
// the others cleared (p.clear), not the whole Row (a fifth of a
// bench-fentry analysis went to clearing ~370 bytes a row).
func (b *Batch) rowProjected(i int, r *Row, p *projection) {
	prev := r.Kind
	c := &b.cols
	r.Seq, r.Kind, r.CPU = le64(c[ColSeq].vals, i), Kind(c[ColKind].vals[i]+1), le16(c[ColCPU].vals, i)
	r.Task, r.Depth, r.RIP = le32(c[ColTask].vals, i), c[ColDepth].vals[i], le64(c[ColRIP].vals, i)
	if int(prev) >= numKinds {
		prev = 0 // (a zero Row)
	}
	if int(r.Kind) >= numKinds {
		// (Not in a checked batch: the kind dictionary is checked.)
		for _, col := range p.fill[prev] {
			clearCol(r, col)
		}
		return
	}
	if prev != r.Kind {
		if f := p.fastClear[prev][r.Kind]; f != nil {
			clearFast(r, f)
		} else {
			for _, col := range p.clear[prev][r.Kind] {
				clearCol(r, col)
			}
		}
	}
	if f := p.fast[r.Kind]; f != nil {
		b.fillFast(i, r, f)
		return
	}
	for _, col := range p.fill[r.Kind] {
		if b.cols[col].ok(i) {
			b.setCol(i, r, col)
		} else {
			clearCol(r, col)
		}
	}
}

// ScanFrom is Scan from the first row with Seq >= seq: it seeks to that
// row's batch by the batch index instead of reading from the start.
func (r *Reader) ScanFrom(seq uint64, p Projection) iter.Seq2[*Row, error] {
	return r.scanFrom(seq, p.compile())
}

// clearFast zeroes the fields of the columns f lists (what clearCol does
// for each).
func clearFast(r *Row, f *fastFill) {
	if f.len {
		r.Len = 0
	}
	if f.bytes {
		r.Bytes = [15]byte{}
	}
	if f.op {
		r.Op = 0
	}
	if f.rsp {
		r.RSP = 0
	}
	if f.addr {
		r.Addr, r.HasAddr = 0, false
	}
	if f.size {
		r.Size = 0
	}
	if f.old {
		r.Old = 0
	}
	if f.new {
		r.New = 0
	}
	if f.alias {
		r.Alias = false
	}
	if f.aliasAddr {
		r.AliasAddr = 0
	}
	if f.percpuCPU {
		r.Percpu, r.PercpuCPU = false, 0
	}
	if f.percpuOff {
		r.PercpuOff = 0
	}
	if f.percpuVar {
		r.PercpuVar = ""
	}
	r.RegMask &^= f.regs
	for m := f.regs; m != 0; m &= m - 1 {
		r.Regs[bits.TrailingZeros32(m)] = 0
	}
	for _, col := range f.other {
		clearCol(r, col)
	}
}

// fillFast sets (or clears, where null) the columns f lists of row i: what
// the loop over fill[k] in rowProjected does, without a switch per column.
func (b *Batch) fillFast(i int, r *Row, f *fastFill) {
	c := &b.cols
	if f.len {
		r.Len = 0
		if c[ColLen].ok(i) {
			r.Len = c[ColLen].vals[i]
		}
	}
	if f.bytes {
		if c[ColBytes].ok(i) {
			r.Bytes = [15]byte(c[ColBytes].vals[15*i : 15*i+15]) // (copy() calls memmove)
		} else {
			r.Bytes = [15]byte{}
		}
	}
	if f.op {
		r.Op = 0
		if c[ColOp].ok(i) {
			r.Op = le16(c[ColOp].vals, i)
		}
	}
	if f.rsp {
		r.RSP = 0
		if c[ColRSP].ok(i) {
			r.RSP = le64(c[ColRSP].vals, i)
		}
	}
	if f.addr {
		r.Addr, r.HasAddr = 0, false
		if c[ColAddr].ok(i) {
			r.Addr, r.HasAddr = le64(c[ColAddr].vals, i), true
		}
	}
	if f.size {
		r.Size = 0
		if c[ColSize].ok(i) {
			r.Size = le32(c[ColSize].vals, i)
		}
	}
	if f.old {
		r.Old = 0
		if c[ColOld].ok(i) {
			r.Old = le64(c[ColOld].vals, i)
		}
	}
	if f.new {
		r.New = 0
		if c[ColNew].ok(i) {
			r.New = le64(c[ColNew].vals, i)
		}
	}
	if f.alias {
		r.Alias = c[ColAlias].ok(i) && c[ColAlias].vals[i>>3]&(1<<(i&7)) != 0
	}
	if f.aliasAddr {
		r.AliasAddr = 0
		if c[ColAliasAddr].ok(i) {
			r.AliasAddr = le64(c[ColAliasAddr].vals, i)
		}
	}
	if f.percpuCPU {
		r.Percpu, r.PercpuCPU = false, 0
		if c[ColPercpuCPU].ok(i) {
			r.Percpu, r.PercpuCPU = true, le16(c[ColPercpuCPU].vals, i)
		}
	}
	if f.percpuOff {
		r.PercpuOff = 0
		if c[ColPercpuOff].ok(i) {
			r.PercpuOff = le32(c[ColPercpuOff].vals, i)
		}
	}
	if f.percpuVar {
		r.PercpuVar = ""
		if c[ColPercpuVar].ok(i) {
			r.PercpuVar = b.names[ColPercpuVar][le16(c[ColPercpuVar].vals, i)]
		}
	}
	for m := f.regs; m != 0; m &= m - 1 {
		k := bits.TrailingZeros32(m)
		col := ColRegRAX + k
		if c[col].ok(i) {
			r.Regs[k] = le64(c[col].vals, i)
			r.RegMask |= 1 << k
		} else {
			r.Regs[k] = 0
			r.RegMask &^= 1 << k
		}
	}
	for _, col := range f.other {
		if c[col].ok(i) {
			b.setCol(i, r, col)
		} else {
			clearCol(r, col)
		}
	}
}

package format

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/metadata"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/klauspost/compress/zstd"
)

// ParquetRowGroupRows bounds the rows of a Parquet row group of an
// export: whole trace batches are grouped up to this many rows (a group
// holds at least one batch), the unit a reader such as DuckDB reads in
// parallel. The export holds one group's gathered values at a time.
const ParquetRowGroupRows = 1 << 18

// parquetRowGroupRows is ParquetRowGroupRows (tests lower it).
var parquetRowGroupRows = ParquetRowGroupRows

// ExportParquet writes every readable row of r to w as a zstd-compressed
// Parquet file: the same rows and columns, in row groups of up to
// ParquetRowGroupRows rows (whole trace batches), with the trace's schema
// metadata as Parquet key-value metadata (once: the Arrow schema is not
// stored). Batches are decoded and checked as for any read (the reader's
// own decoder, workers ahead of the writer), and the column chunks are
// encoded straight from the batches' buffers, one version 1 data page
// each: definition levels from the validity bitmaps, seq as
// DELTA_BINARY_PACKED, the other integer columns PLAIN or
// DELTA_BINARY_PACKED chunk by chunk (pqDeltaGain), the dictionary
// columns (kind, op, percpu_var, cause, service) as RLE_DICTIONARY
// indices into a dictionary page of the names the chunk uses (every Parquet reader sees VARCHAR/utf8), the bytes
// column as the len bytes of each instruction (binary). The columns are
// gathered and compressed in parallel (GOMAXPROCS encoders); arrow's
// parquet package supplies the schema and the footer. Memory is bounded by
// the batches in flight and one row group, whatever the trace's length;
// the output depends only on the trace.
func ExportParquet(r *Reader, w io.Writer) error { return ExportParquetProgress(r, w, nil) }

// ExportParquetProgress is ExportParquet calling done (when not nil) with
// the row count of each batch once the writer has taken it, so a caller
// can show progress against r.NumEvents().
func ExportParquetProgress(r *Reader, w io.Writer, done func(rows int)) error {
	pw, err := newParquetWriter(r, w)
	if err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	// GOMAXPROCS+1 batches decoded ahead, not readAhead's 2×GOMAXPROCS+1:
	// the encoders below use every core themselves, so batches decoded
	// further ahead only wait, each holding all its columns' buffers
	// (bench-fentry: 222-255 -> 200-229 MB RSS, the same CPU).
	next := r.decodeAhead(0, AllColumns.compile(), runtime.GOMAXPROCS(0)+1)
	defer next(false)
	workers := runtime.GOMAXPROCS(0)
	encs := make([]*pageEncoder, workers)
	for i := range encs {
		if encs[i], err = newPageEncoder(); err != nil {
			return fmt.Errorf("format: parquet: %w", err)
		}
		defer encs[i].close()
	}
	for i := 0; i < r.NumBatches(); i++ {
		b, err := next(true)
		if err == nil {
			err = r.checkInfo(i, b)
		}
		if err != nil {
			b.Release()
			return err
		}
		n := b.n
		if n > 0 {
			if pw.rows > 0 && pw.rows+n > parquetRowGroupRows {
				err = pw.flushGroup(encs)
			}
			if err == nil {
				err = pw.addBatch(b, encs)
			}
		}
		b.Release()
		if err != nil {
			return fmt.Errorf("format: parquet: batch %d: %w", i, err)
		}
		if done != nil {
			done(n)
		}
	}
	if err := pw.close(encs); err != nil {
		return fmt.Errorf("format: parquet: %w", err)
	}
	return nil
}

// parquetZstdLevel is the zstd level of the export's pages: klauspost's
// "better" level (about zstd 7) makes a bench-fentry export a third
// smaller than its default level, for about 5 % more CPU; its fastest
// level was no faster there and 15 % larger (RATIONALE.md).
const parquetZstdLevel = zstd.SpeedBetterCompression

// pqDeltaGain and pqDeltaSample choose a numeric column chunk's
// encoding: DELTA_BINARY_PACKED when the differences of its first
// pqDeltaSample values pack into at most 1/pqDeltaGain of their PLAIN
// bytes and compress (zstd) to no more than those, and all its values
// then pack into at most 1/pqDeltaGain of theirs; PLAIN otherwise.
// Differences that pack small are what zstd then squeezes to almost
// nothing, at little cost (stack pointers, counters, registers stepped
// by a loop: on bench-fentry rsp is 11 times smaller, reg_rcx 60 times,
// than PLAIN + zstd). Where values repeat but their differences do not
// (rip, cpu and task of CPUs interleaved, old, new), zstd finds the
// repeats in PLAIN and differences hide them (2-3 times larger on
// text-poke-bp): the sample's compressed sizes tell. The choice depends
// only on the chunk's values.
const (
	pqDeltaGain   = 4
	pqDeltaSure   = 64
	pqDeltaSample = 4096
)

// pqLevelProbe and pqLevelSlack choose a column's zstd level: the data
// pages of every pqLevelProbe-th row group are compressed at the
// export's level (parquetZstdLevel) and at zstd's fastest, and the
// column's pages go at the fastest level until the next probe when that
// was at most pqLevelSlack % of the other's size. The better level earns
// its CPU on columns whose values repeat with a long period (bench-fentry:
// old, new 35-40 % smaller); on registers holding data (reg_rax) it finds
// nothing the fastest does not, at 2-3 times its CPU. The choice depends
// only on the values.
const (
	pqLevelProbe = 8
	pqLevelSlack = 103
)

// pqKind is how a column's values are encoded.
type pqKind uint8

const (
	pqInt64  pqKind = iota // 8-byte values, PLAIN or DELTA_BINARY_PACKED (pqDeltaGain)
	pqInt32                // 4-byte values, from 1, 2, 4 (or rflags: 8) bytes, as pqInt64
	pqDelta                // seq: DELTA_BINARY_PACKED
	pqBool                 // PLAIN bit-packed booleans
	pqBinary               // bytes: PLAIN byte arrays of len bytes
	pqString               // msg: PLAIN byte arrays
	pqDict                 // RLE_DICTIONARY indices into the trace's dictionary
)

// pqColumn is how the export writes one column.
type pqColumn struct {
	kind     pqKind
	fast     bool     // compress its pages at zstd's fastest level (pqLevelProbe)
	width    int      // source value (or dictionary index) width in bytes
	required bool     // a common column: no definition levels
	names    []string // pqDict: the trace's dictionary
}

// pqChunk is a column chunk of the row group being written: its values
// as gathered from the batches, then its pages, and what its metadata
// needs.
type pqChunk struct {
	// The rows gathered, their definition level runs and values
	// (dictionary indices as stored, booleans one byte each, seq as
	// stored: encoded when the chunk is finished).
	rows         int
	levels, vals []byte
	// The finished chunk: its dictionary page (pqDict) and data page,
	// compressed with their headers, and their uncompressed size.
	dict, page   []byte
	uncompressed int64
	enc          int // the data page's encoding (pqEnc*)
	// Statistics (common columns): min and max as unsigned values, or
	// for kind the dictionary indices seen.
	hasStats bool
	min, max uint64
	kinds    uint64
}

// parquetWriter writes a Parquet file column chunk by column chunk.
type parquetWriter struct {
	w      *posWriter
	props  *parquet.WriterProperties
	fmb    *metadata.FileMetaDataBuilder
	cols   [NumColumns]pqColumn
	chunks [NumColumns]pqChunk
	rows   int // rows of the row group being written
	groups int
}

// posWriter counts the bytes written through it (file offsets).
type posWriter struct {
	w   *bufio.Writer
	pos int64
}

func (p *posWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.pos += int64(n)
	return n, err
}

func newParquetWriter(r *Reader, w io.Writer) (*parquetWriter, error) {
	md := r.schema.Metadata()
	popts := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCreatedBy(fmt.Sprintf("patchtrace format v%d", FormatVersion)),
		parquet.WithDataPageVersion(parquet.DataPageV1),
		parquet.WithDictionaryDefault(false),
		parquet.WithEncodingFor("seq", parquet.Encodings.DeltaBinaryPacked),
	}
	for i, c := range Columns {
		if _, ok := c.Type.(*arrow.DictionaryType); ok {
			popts = append(popts, parquet.WithDictionaryFor(Columns[i].Name, true))
		}
	}
	props := parquet.NewWriterProperties(popts...)
	sc, err := pqarrow.ToParquet(ParquetSchema(md), props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	kv := metadata.NewKeyValueMetadata()
	for i, k := range md.Keys() {
		kv.Append(k, md.Values()[i])
	}
	pw := &parquetWriter{w: &posWriter{w: bufio.NewWriterSize(w, 1<<20)}, props: props, fmb: metadata.NewFileMetadataBuilder(sc, props, kv)}
	for i, c := range Columns {
		pc := &pw.cols[i]
		pc.required = c.Common
		switch t := c.Type.(type) {
		case *arrow.DictionaryType:
			pc.kind = pqDict
			pc.width = t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
			pc.names = r.names[i]
		case *arrow.BooleanType:
			pc.kind = pqBool
		case *arrow.FixedSizeBinaryType:
			pc.kind = pqBinary
		case *arrow.StringType:
			pc.kind = pqString
		case arrow.FixedWidthDataType:
			pc.width = t.BitWidth() / 8
			pc.kind = pqInt32
			if pc.width == 8 {
				pc.kind = pqInt64
			}
		default:
			return nil, fmt.Errorf("column %s: type %s", c.Name, c.Type)
		}
	}
	pw.cols[ColSeq].kind = pqDelta // (width 8)
	if r.rflags64 {
		pw.cols[ColRFlags].width = 8
	}
	if _, err := pw.w.Write([]byte("PAR1")); err != nil {
		return nil, err
	}
	return pw, nil
}

// pageEncoder encodes and compresses pages (one goroutine each).
type pageEncoder struct {
	zw                *zstd.Encoder
	zfast             *zstd.Encoder // deltaPays's, and pages at the fastest level
	alt               []byte
	body, comp, plain []byte
	scratch           []uint64
	remap             []uint32
}

func newPageEncoder() (*pageEncoder, error) {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(parquetZstdLevel), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	zfast, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<22))
	if err != nil {
		return nil, err
	}
	return &pageEncoder{zw: zw, zfast: zfast}, nil
}

func (e *pageEncoder) close() {
	e.zw.Close()
	e.zfast.Close()
}

// forColumns runs f on every column, shared out among the encoders, and
// returns the first column's error.
func forColumns(encs []*pageEncoder, f func(e *pageEncoder, c int) error) error {
	var next atomic.Int32
	var errs [NumColumns]error
	work := func(e *pageEncoder) {
		for {
			c := int(next.Add(1)) - 1
			if c >= NumColumns {
				return
			}
			errs[c] = e.safely(func() error { return f(e, c) })
		}
	}
	var wg sync.WaitGroup
	for _, e := range encs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(e)
		}()
	}
	work(encs[0])
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			return fmt.Errorf("column %s: %w", Columns[c].Name, err)
		}
	}
	return nil
}

// safely runs f, turning a panic into an error.
func (e *pageEncoder) safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("encode: %v", p)
		}
	}()
	return f()
}

// addBatch adds batch b's rows to the row group. The definition levels
// of a chunk are the runs of its batches one after the other, so a batch
// whose rows are not a multiple of 8 (its level runs end padded) ends the
// row group.
func (pw *parquetWriter) addBatch(b *Batch, encs []*pageEncoder) error {
	err := forColumns(encs, func(e *pageEncoder, c int) error {
		e.gather(b, c, &pw.cols[c], &pw.chunks[c])
		return nil
	})
	if err != nil {
		return err
	}
	pw.rows += b.n
	if b.n%8 != 0 {
		return pw.flushGroup(encs)
	}
	return nil
}

// gather appends column c of b to the page being gathered.
func (e *pageEncoder) gather(b *Batch, c int, pc *pqColumn, ch *pqChunk) {
	n := b.n
	cv := &b.cols[c]
	if !pc.required {
		ch.levels = appendLevelRuns(ch.levels, cv.valid, n)
	}
	if room := pqHeadroom(); len(ch.vals) < room {
		ch.vals = slices.Grow(ch.vals[:0], room)[:room]
	}
	switch pc.kind {
	case pqDelta, pqInt64, pqDict:
		ch.vals = gatherFixed(ch.vals, cv.vals, cv.valid, n, pc.width)
	case pqInt32:
		ch.vals = gather32(ch.vals, cv.vals, cv.valid, n, pc.width)
	case pqBool:
		ch.vals = gatherBools(ch.vals, cv.vals, cv.valid, n)
	case pqBinary:
		ch.vals = gatherInsnBytes(ch.vals, cv, &b.cols[ColLen], n)
	case pqString:
		ch.vals = gatherStrings(ch.vals, cv, n)
	}
	if pc.required {
		ch.stats(cv, pc, n)
	}
	ch.rows += n
}

// pqHeadroom is the room kept in front of a chunk's gathered values for
// its definition levels (with their 4-byte length): a PLAIN page is then
// the levels moved in front of the values, not both copied. It holds the
// levels of a full row group (at most 1.5 bytes for 8 rows); larger
// levels (a batch larger than a row group) are copied.
func pqHeadroom() int { return 4 + parquetRowGroupRows/4 + 64 }

// finish encodes the chunk gathered as one version 1 data page (and,
// for a dictionary column, the dictionary page of the names it uses),
// compressed.
func (e *pageEncoder) finish(pc *pqColumn, ch *pqChunk, group int) {
	room := pqHeadroom()
	data := ch.vals[min(len(ch.vals), room):]
	lv := 4 + len(ch.levels)
	if pc.required {
		lv = 0
	}
	var body []byte
	enc := pqEncPlain
	switch pc.kind {
	case pqDelta, pqDict, pqBool:
		body = e.body[:0]
		if lv > 0 {
			body = binary.LittleEndian.AppendUint32(body, uint32(len(ch.levels)))
			body = append(body, ch.levels...)
		}
		switch pc.kind {
		case pqDelta:
			enc = pqEncDelta
			body, e.scratch = appendDelta(body, data, ch.rows, 8, e.scratch)
		case pqDict:
			enc = pqEncRLEDict
			body = e.dictionary(body, pc, ch, data)
		case pqBool:
			body = packBools(body, data)
		}
		e.body = body
	default:
		if pc.kind == pqInt64 || pc.kind == pqInt32 {
			w := 4
			if pc.kind == pqInt64 {
				w = 8
			}
			body = e.body[:0]
			if lv > 0 {
				body = binary.LittleEndian.AppendUint32(body, uint32(len(ch.levels)))
				body = append(body, ch.levels...)
			}
			// A sample first: most chunks that end PLAIN are told
			// by their first values, without encoding them all.
			at := len(body)
			sample := min(len(data), pqDeltaSample*w)
			body, e.scratch = appendDelta(body, data[:sample], sample/w, w, e.scratch)
			if (len(body)-at)*pqDeltaGain <= sample && e.deltaPays(data[:sample], body[at:]) {
				body, e.scratch = appendDelta(body[:at], data, len(data)/w, w, e.scratch)
				e.body = body
				if (len(body)-at)*pqDeltaGain <= len(data) {
					enc = pqEncDelta
					break
				}
			}
		}
		if lv <= room && len(ch.vals) >= room {
			body = ch.vals[room-lv:]
		} else {
			body = append(e.body[:0], make([]byte, lv)...)
			body = append(body, data...)
			e.body = body
		}
		if lv > 0 {
			binary.LittleEndian.PutUint32(body, uint32(len(ch.levels)))
			copy(body[4:], ch.levels)
		}
	}
	ch.enc = enc
	switch {
	case group%pqLevelProbe == 0:
		e.comp = e.zw.EncodeAll(body, e.comp[:0])
		e.alt = e.zfast.EncodeAll(body, e.alt[:0])
		pc.fast = len(e.alt)*100 <= len(e.comp)*pqLevelSlack
		if pc.fast {
			e.comp, e.alt = e.alt, e.comp
		}
	case pc.fast:
		e.comp = e.zfast.EncodeAll(body, e.comp[:0])
	default:
		e.comp = e.zw.EncodeAll(body, e.comp[:0])
	}
	ch.page = appendPageHeader(ch.page[:0], false, ch.rows, enc, len(body), len(e.comp))
	ch.uncompressed += int64(len(ch.page)) + int64(len(body))
	ch.page = append(ch.page, e.comp...)
}

// deltaPays reports whether a chunk's sample of values, plain, takes
// no fewer bytes compressed than its differences, delta: at once when
// the differences are pqDeltaSure times smaller (both compress to almost
// nothing), else compressed at zstd's fastest level (deciding at the
// export's level made the bench-fentry and text-poke-bp exports 0.5 %
// and 0.2 % smaller, for several times this CPU).
func (e *pageEncoder) deltaPays(plain, delta []byte) bool {
	if len(delta)*pqDeltaSure <= len(plain) {
		return true
	}
	e.comp = e.zfast.EncodeAll(delta, e.comp[:0])
	zd := len(e.comp)
	e.comp = e.zfast.EncodeAll(plain, e.comp[:0])
	return zd <= len(e.comp)
}

// dictionary builds ch's dictionary page from the names its indices use
// (in the trace dictionary's order) and appends the data page's values:
// the indices into it, bit-packed at the smallest of 1, 2, 4, 8 or 16 bits
// that holds them (whole bytes or fractions: zstd still sees repeats).
func (e *pageEncoder) dictionary(dst []byte, pc *pqColumn, ch *pqChunk, vals []byte) []byte {
	remap := e.remap[:0]
	for range pc.names {
		remap = append(remap, 0)
	}
	e.remap = remap
	w := pc.width
	count := len(vals) / w
	idx := func(j int) int {
		if w == 1 {
			return int(vals[j])
		}
		return int(binary.LittleEndian.Uint16(vals[2*j:]))
	}
	for j := range count {
		remap[idx(j)] = 1
	}
	plain := e.plain[:0]
	used := 0
	for k, u := range remap {
		if u != 0 {
			remap[k] = uint32(used)
			used++
			plain = binary.LittleEndian.AppendUint32(plain, uint32(len(pc.names[k])))
			plain = append(plain, pc.names[k]...)
		}
	}
	e.plain = plain
	e.comp = e.zw.EncodeAll(plain, e.comp[:0])
	ch.dict = appendPageHeader(ch.dict[:0], true, used, pqEncPlain, len(plain), len(e.comp))
	ch.uncompressed += int64(len(ch.dict) + len(plain))
	ch.dict = append(ch.dict, e.comp...)

	bw := 1
	for used > 1<<bw {
		bw *= 2
	}
	dst = append(dst, byte(bw))
	if count == 0 {
		return dst
	}
	groups := (count + 7) / 8
	dst = binary.AppendUvarint(dst, uint64(groups)<<1|1)
	packed := e.scratch[:0]
	for j := range count {
		packed = append(packed, uint64(remap[idx(j)]))
	}
	for len(packed) < 8*groups {
		packed = append(packed, 0)
	}
	e.scratch = packed
	return packBits(dst, packed, bw)
}

// stats merges a common column's page into the chunk's statistics.
func (ch *pqChunk) stats(cv *colView, pc *pqColumn, n int) {
	if !ch.hasStats {
		ch.hasStats, ch.min, ch.max, ch.kinds = true, ^uint64(0), 0, 0
	}
	if pc.kind == pqDict {
		for j := 0; j < n; j++ {
			ch.kinds |= 1 << (cv.vals[j] & 63)
		}
		return
	}
	lo, hi := ch.min, ch.max
	for j := 0; j < n; j++ {
		var v uint64
		switch pc.width {
		case 1:
			v = uint64(cv.vals[j])
		case 2:
			v = uint64(binary.LittleEndian.Uint16(cv.vals[2*j:]))
		case 4:
			v = uint64(binary.LittleEndian.Uint32(cv.vals[4*j:]))
		default:
			v = binary.LittleEndian.Uint64(cv.vals[8*j:])
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	ch.min, ch.max = lo, hi
}

// encodedStats returns a common column chunk's statistics as Parquet
// stores them: min and max in the physical type's plain encoding
// (unsigned order), no nulls.
func (ch *pqChunk) encodedStats(pc *pqColumn) metadata.EncodedStatistics {
	st := metadata.EncodedStatistics{HasNullCount: true, HasMin: true, HasMax: true}
	switch pc.kind {
	case pqDict:
		var names []string
		for k := range pc.names {
			if k < 64 && ch.kinds&(1<<k) != 0 {
				names = append(names, pc.names[k])
			}
		}
		if len(names) == 0 {
			return metadata.EncodedStatistics{HasNullCount: true}
		}
		st.Min, st.Max = []byte(slices.Min(names)), []byte(slices.Max(names))
	case pqInt32:
		st.Min = binary.LittleEndian.AppendUint32(nil, uint32(ch.min))
		st.Max = binary.LittleEndian.AppendUint32(nil, uint32(ch.max))
	default:
		st.Min = binary.LittleEndian.AppendUint64(nil, ch.min)
		st.Max = binary.LittleEndian.AppendUint64(nil, ch.max)
	}
	return st
}

// flushGroup writes the row group's column chunks, each with its
// metadata after it (as arrow's writer does), and starts the next.
func (pw *parquetWriter) flushGroup(encs []*pageEncoder) error {
	if pw.rows == 0 {
		return nil
	}
	err := forColumns(encs, func(e *pageEncoder, c int) error {
		e.finish(&pw.cols[c], &pw.chunks[c], pw.groups)
		return nil
	})
	if err != nil {
		return err
	}
	rg := pw.fmb.AppendRowGroup()
	var total int64
	for c := range NumColumns {
		pc, ch := &pw.cols[c], &pw.chunks[c]
		cc := rg.NextColumnChunk()
		start := pw.w.pos
		var dictOff int64
		if pc.kind == pqDict {
			dictOff = start
			if _, err := pw.w.Write(ch.dict); err != nil {
				return err
			}
		}
		dataOff := pw.w.pos
		if _, err := pw.w.Write(ch.page); err != nil {
			return err
		}
		if pc.required {
			cc.SetStats(ch.encodedStats(pc))
		}
		es := metadata.EncodingStats{DataEncodingStats: map[parquet.Encoding]int32{parquet.Encoding(ch.enc): 1}}
		if pc.kind == pqDict {
			es.DictEncodingStats = map[parquet.Encoding]int32{parquet.Encodings.Plain: 1}
		}
		info := metadata.ChunkMetaInfo{NumValues: int64(pw.rows), DictPageOffset: dictOff, IndexPageOffset: -1,
			DataPageOffset: dataOff, CompressedSize: pw.w.pos - start, UncompressedSize: ch.uncompressed}
		if err := cc.Finish(info, pc.kind == pqDict, false, es, nil); err != nil {
			return err
		}
		if pc.kind != pqDict {
			// The chunk's encodings are the data page's and RLE (its
			// levels); Finish took the first from the writer
			// properties, which hold one per column, and a numeric
			// column's is chosen per chunk.
			setEnum(&cc.Contents().MetaData.Encodings[0], ch.enc)
		}
		if _, err := cc.WriteTo(pw.w); err != nil {
			return err
		}
		total += ch.uncompressed
		*ch = pqChunk{levels: ch.levels[:0], vals: ch.vals[:0], dict: ch.dict[:0], page: ch.page[:0]}
	}
	rg.SetNumRows(pw.rows)
	if err := rg.Finish(total, int16(pw.groups)); err != nil {
		return err
	}
	pw.rows = 0
	pw.groups++
	return nil
}

// setEnum sets a Thrift enum field of arrow's generated metadata (whose
// type is internal to arrow).
func setEnum[T ~int64](p *T, v int) { *p = T(v) }

// close writes the last row group and the footer.
func (pw *parquetWriter) close(encs []*pageEncoder) error {
	if err := pw.flushGroup(encs); err != nil {
		return err
	}
	fmd, err := pw.fmb.Finish()
	if err != nil {
		return err
	}
	n, err := fmd.WriteTo(pw.w, nil)
	if err != nil {
		return err
	}
	var tail [8]byte
	binary.LittleEndian.PutUint32(tail[:], uint32(n))
	copy(tail[4:], "PAR1")
	if _, err := pw.w.Write(tail[:]); err != nil {
		return err
	}
	return pw.w.w.Flush()
}

// ParquetSchema is the schema of a Parquet export as readers see it: the
// trace schema with dictionary columns as utf8, bytes as binary, and the
// given metadata.
func ParquetSchema(md arrow.Metadata) *arrow.Schema {
	fs := baseSchema.Fields()
	for i, f := range fs {
		if _, ok := f.Type.(*arrow.DictionaryType); ok {
			fs[i].Type = arrow.BinaryTypes.String
		}
	}
	fs[ColBytes].Type = arrow.BinaryTypes.Binary
	return arrow.NewSchema(fs, &md)
}

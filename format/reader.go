package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"os"
	"sort"
	"syscall"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// ReadOption configures a Reader.
type ReadOption func(*readOptions)

type readOptions struct {
	mem  memory.Allocator
	name string
}

// WithReadAllocator sets the Arrow allocator used to decode batches.
func WithReadAllocator(mem memory.Allocator) ReadOption {
	return func(o *readOptions) { o.mem = mem }
}

// WithName sets the file name used in errors (Open sets the path).
func WithName(name string) ReadOption { return func(o *readOptions) { o.name = name } }

var arrowMagic = []byte("ARROW1")

// Reader reads a trace file. Batches decode independently, so a Reader
// can seek by sequence number without reading the whole file. Methods
// are not safe for concurrent use.
type Reader struct {
	name   string
	ra     io.ReaderAt
	size   int64
	mem    memory.Allocator
	closer io.Closer

	schema *arrow.Schema
	meta   *Meta
	// The stream prefix (schema and dictionary messages, after the
	// magic) and the record-batch messages (from the footer, or found by
	// scanning a file with no usable footer). A batch decodes as the
	// stream prefix + its message.
	prefix    []byte
	blocks    []block
	truncated *Error

	infos []BatchInfo
	known []bool
	names [NumColumns][]string // dictionary values, from the first batch

	rflags64 bool // a version 1 file: rflags is uint64
	version  int  // the file's format version
	// bufStart[c] is the index of column c's first buffer in a record
	// batch message (bufStart[NumColumns]: the buffer count).
	bufStart [NumColumns + 1]int
}

// numColumnsIn is the number of columns of a format version v file:
// versions 1 to 3 end before the register columns (which version 4
// appended; a reader sees them all null in older files).
func numColumnsIn(v int) int {
	if v < 4 {
		return ColRegRAX
	}
	return NumColumns
}

// numKindsIn is the number of event kinds of a format version v file
// (version 4 added load).
func numKindsIn(v int) int {
	if v < 4 {
		return int(KindLoad) - 1
	}
	return len(Kinds)
}

// numServicesIn is the number of native services of a format version v
// file (version 5 added vfree and module_memfree).
func numServicesIn(v int) int {
	if v < 5 {
		return 12
	}
	return len(Services)
}

// columnType is column i's type in files of format version v.
func columnType(v, i int) arrow.DataType {
	if v == 1 && i == ColRFlags {
		return arrow.PrimitiveTypes.Uint64
	}
	return Columns[i].Type
}

// Open opens the trace file at path.
// Only a regular file is read: a FIFO, device or directory (also behind
// a symlink) is refused with an error wrapping ErrNotRegular, without
// blocking (the file is opened non-blocking and checked before any read).
func Open(path string, opts ...ReadOption) (*Reader, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("format: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fileErr(path, "is "+fileKind(st.Mode()), ErrNotRegular)
	}
	r, err := NewReader(f, st.Size(), append([]ReadOption{WithName(path)}, opts...)...)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a trace of size bytes from ra. It checks the magic, the
// format version, the schema and the metadata, and decodes the first batch.
// A file without a footer (a killed run) is read up to its last complete
// batch; Truncated then reports it.
func NewReader(ra io.ReaderAt, size int64, opts ...ReadOption) (*Reader, error) {
	o := readOptions{mem: memory.DefaultAllocator}
	for _, f := range opts {
		f(&o)
	}
	r := &Reader{name: o.name, ra: ra, size: size, mem: limitAlloc{o.mem}}
	if err := r.open(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) open() error {
	if r.size <= 0 {
		// What a run killed before its header reached the disk leaves.
		return fileErr(r.name, "truncated after 0 events (the file is empty: the run ended before the header was written)", ErrTruncated)
	}
	head := make([]byte, min(r.size, 8))
	if _, err := r.ra.ReadAt(head, 0); err != nil && !(err == io.EOF && len(head) > 0) {
		return fileErr(r.name, "read header", err)
	}
	if len(head) < len(arrowMagic) {
		if bytes.HasPrefix(arrowMagic, head) {
			return fileErr(r.name, fmt.Sprintf("cut after %d bytes, inside the Arrow magic", len(head)), ErrTruncated)
		}
		return fileErr(r.name, "not an Arrow IPC file (no ARROW1 magic)", ErrNotTrace)
	}
	if !bytes.HasPrefix(head, arrowMagic) {
		if r.endsLikeTrace() {
			return corruptErr(r.name, -1, errors.New("the file ends with a trace footer, but its leading ARROW1 magic is damaged"))
		}
		return fileErr(r.name, "not an Arrow IPC file (no ARROW1 magic)", ErrNotTrace)
	}
	if r.size >= 8+10+6 {
		tail := make([]byte, 6)
		if _, err := r.ra.ReadAt(tail, r.size-6); err == nil && bytes.Equal(tail, arrowMagic) {
			// The writer writes the closing magic last: a file that ends
			// with it was finished, so a footer or batch that does not
			// read is damage, not a cut (a killed run never leaves it).
			ft, err := readFooter(r.ra, r.size)
			if err != nil {
				return corruptErr(r.name, -1, fmt.Errorf("the file ends with the Arrow footer magic, but its footer is unreadable: %w", err))
			}
			err = r.openComplete(ft)
			if err == nil || errors.Is(err, ErrNewerVersion) || errors.Is(err, ErrNotTrace) {
				return err
			}
			return markCorrupt(r.name, err)
		}
	}
	return r.openStream(nil)
}

// endsLikeTrace reports whether the file ends with the Arrow magic and a
// footer that parses and holds patchtrace metadata.
func (r *Reader) endsLikeTrace() bool {
	tail := make([]byte, 6)
	if r.size < 8+10+6 {
		return false
	}
	if _, err := r.ra.ReadAt(tail, r.size-6); err != nil || !bytes.Equal(tail, arrowMagic) {
		return false
	}
	ft, err := readFooter(r.ra, r.size)
	if err != nil {
		return false
	}
	_, ok, _ := versionOf(arrow.NewMetadata(ft.keys, ft.vals))
	return ok
}

// markCorrupt makes err (an error reading a finished file) say that the
// file is corrupt.
func markCorrupt(name string, err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		ne := *e
		detail := errors.New(e.Msg)
		if e.Err != nil && e.Msg != "" {
			detail = fmt.Errorf("%s: %w", e.Msg, e.Err)
		} else if e.Err != nil {
			detail = e.Err
		}
		ne.Msg, ne.Err = "corrupt", corruption{detail}
		return &ne
	}
	return corruptErr(name, -1, err)
}

// readPrefix reads the schema message and the dictionary messages that
// follow it (msgs, from a scan), checks the version and schema, and keeps
// the prefix bytes for decoding batches. md, when not nil, replaces the
// header's metadata (a complete file's footer metadata).
func (r *Reader) readPrefix(msgs []block, md *arrow.Metadata) (n int, err error) {
	end := msgs[0].end()
	n = 1
	for ; n < len(msgs) && msgs[n].typ == msgDictionary; n++ {
		end = msgs[n].end()
	}
	buf := make([]byte, end)
	if _, err := r.ra.ReadAt(buf, 0); err != nil {
		return 0, fileErr(r.name, "read schema", err)
	}
	var fm *Meta
	if md != nil {
		// A finished file: its footer metadata (checked against its own
		// checksum by decodeMeta) has the header's checksum, checked
		// before anything in the header is trusted.
		if err := r.checkVersion(*md); err != nil {
			if m := msgs[0]; errors.Is(err, ErrNotTrace) && m.metaLen > 8 {
				// Not a trace by its footer; by its header it may be one
				// whose footer is damaged.
				if k, v, herr := messageKV(buf[m.off+8 : m.off+m.metaLen]); herr == nil {
					if _, ok, verr := versionOf(arrow.NewMetadata(k, v)); ok && verr == nil {
						return 0, corruptErr(r.name, -1, fmt.Errorf("the footer metadata has no valid %s, the header has one", KeyFormatVersion))
					}
				}
			}
			return 0, err
		}
		if fm, err = decodeMeta(*md); err != nil {
			return 0, corruptErr(r.name, -1, fmt.Errorf("footer metadata: %w", err))
		}
		if fm.checksums != nil {
			if got := crc32.Checksum(buf, castagnoli); got != fm.checksums[0] {
				return 0, corruptErr(r.name, -1, fmt.Errorf("header checksum %08x, computed %08x (the schema or a dictionary is damaged)", fm.checksums[0], got))
			}
		}
	}
	m := msgs[0]
	if m.metaLen < 8 || binary.LittleEndian.Uint32(buf[m.off:]) != 0xFFFFFFFF {
		return 0, fileErr(r.name, "schema message without continuation marker", ErrNotTrace)
	}
	k, v, err := messageKV(buf[m.off+8 : m.off+m.metaLen])
	if err != nil {
		return 0, fileErr(r.name, "schema", err)
	}
	hm := arrow.NewMetadata(k, v)
	if err := r.checkVersion(hm); err != nil {
		return 0, err
	}
	r.version, _, _ = versionOf(hm)
	if md == nil {
		md = &hm
	} else if fv, _, _ := versionOf(*md); fv != r.version {
		return 0, corruptErr(r.name, -1, fmt.Errorf("the footer says format version %d, the header %d", fv, r.version))
	}
	if err := checkSchemaMessage(buf[m.off+8:m.off+m.metaLen], r.version); err != nil {
		return 0, fileErr(r.name, "schema is not a trace schema", err)
	}
	if fm == nil {
		if fm, err = decodeMeta(*md); err != nil {
			return 0, fileErr(r.name, "metadata", err)
		}
	}
	for j := 1; j < n; j++ {
		d := msgs[j]
		if d.metaLen < 8 || binary.LittleEndian.Uint32(buf[d.off:]) != 0xFFFFFFFF {
			return 0, fileErr(r.name, "dictionary message without continuation marker", ErrNotTrace)
		}
		if err := checkDictionaryMessage(buf[d.off+8:d.off+d.metaLen], buf[d.off+d.metaLen:d.end()], r.version); err != nil {
			return 0, corruptErr(r.name, -1, fmt.Errorf("dictionary message %d: %w", j-1, err))
		}
	}
	r.prefix = buf[8:]
	if r.version >= 2 && n > 1 {
		// Each batch decodes as the prefix plus its message: a prefix
		// with the header's metadata (the ELF, the symbols, the scenario)
		// would copy it once per batch. The schema was checked to be the
		// trace schema this package writes; with no metadata it is the
		// same stream.
		r.prefix = append(schemaMessageN(nil, nil, numColumnsIn(r.version)), buf[msgs[1].off:]...)
	}
	var schema *arrow.Schema
	err = safely(func() error {
		sm := buf[8:msgs[0].end()]
		sr, err := ipc.NewReader(bytes.NewReader(append(sm[:len(sm):len(sm)], eos...)), ipc.WithAllocator(r.mem))
		if err != nil {
			return err
		}
		defer sr.Release()
		schema = sr.Schema()
		return nil
	})
	if err != nil {
		return 0, fileErr(r.name, "schema", err)
	}
	return n, r.setSchema(arrow.NewSchema(schema.Fields(), md), fm)
}

func (r *Reader) openComplete(ft *footer) error {
	var msgs []block
	for off := int64(8); off < ft.start; {
		b, err := readBlock(r.ra, off, ft.start)
		if err != nil || b.typ == msgRecord {
			break
		}
		msgs = append(msgs, b)
		off = b.end()
	}
	if len(msgs) == 0 || msgs[0].typ != msgSchema {
		return fileErr(r.name, "no schema message after the Arrow magic", nil)
	}
	md := arrow.NewMetadata(ft.keys, ft.vals)
	if _, err := r.readPrefix(msgs, &md); err != nil {
		return err
	}
	n := len(ft.recs)
	if r.meta.Status != StatusComplete {
		return fileErr(r.name, fmt.Sprintf("footer metadata has status %q", r.meta.Status), nil)
	}
	if len(r.meta.Batches) != n {
		return fileErr(r.name, fmt.Sprintf("batch index lists %d batches, the footer %d", len(r.meta.Batches), n), nil)
	}
	var rows uint64
	for i, b := range r.meta.Batches {
		if b.Rows > MaxBatchRows || (b.Rows > 0 && b.FirstSeq > b.LastSeq) ||
			(i > 0 && b.Rows > 0 && r.meta.Batches[i-1].Rows > 0 && b.FirstSeq <= r.meta.Batches[i-1].LastSeq) {
			return batchErr(r.name, i, "batch index entry out of order", nil)
		}
		rows += uint64(b.Rows)
	}
	if rows != r.meta.Events {
		return fileErr(r.name, fmt.Sprintf("batch index has %d rows, metadata says %d events", rows, r.meta.Events), nil)
	}
	r.blocks = ft.recs
	r.infos = r.meta.Batches
	r.known = make([]bool, n)
	for i := range r.known {
		r.known[i] = true
	}
	return r.loadFirst()
}

func (r *Reader) openStream(footErr error) error {
	msgs, stop := scanStream(r.ra, r.size)
	if len(msgs) == 0 || msgs[0].typ != msgSchema {
		if errors.Is(stop, io.ErrUnexpectedEOF) || stop == errCleanEnd {
			return fileErr(r.name, "cut before the schema was written", ErrTruncated)
		}
		return fileErr(r.name, "no schema message after the Arrow magic", ErrNotTrace)
	}
	i, err := r.readPrefix(msgs, nil)
	if err != nil {
		return err
	}
	for j := i; j < len(msgs); j++ {
		if t := msgs[j].typ; t != msgRecord {
			msgs = msgs[:j]
			stop = fmt.Errorf("unexpected message type %d", t)
			break
		}
	}
	r.blocks = msgs[i:]
	r.infos = make([]BatchInfo, len(r.blocks))
	r.known = make([]bool, len(r.blocks))
	var events uint64
	for j, b := range r.blocks {
		r.infos[j].Rows = int(b.rows)
		events += uint64(b.rows)
	}
	var why string
	switch {
	case footErr != nil:
		why = "the footer is unreadable: " + footErr.Error()
	case stop == nil:
		why = "no footer after the end-of-stream marker"
	case stop == errCleanEnd:
		why = "the file ends after the last complete batch, with no footer"
	case errors.Is(stop, io.ErrUnexpectedEOF):
		why = "the file ends inside a batch or inside the footer"
	default:
		why = "the bytes after the last complete batch are not a batch (an incomplete footer?): " + stop.Error()
	}
	r.truncated = fileErr(r.name, fmt.Sprintf("truncated after %d events (%d complete batches; %s)", events, len(r.blocks), why), ErrTruncated)
	return r.loadFirst()
}

var eos = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// setSchema checks the version, the schema and the metadata.
func (r *Reader) checkVersion(md arrow.Metadata) error {
	v, ok, err := versionOf(md)
	if !ok {
		return fileErr(r.name, "an Arrow file without patchtrace metadata (no "+KeyFormatVersion+" key)", ErrNotTrace)
	}
	if err != nil {
		return fileErr(r.name, err.Error(), ErrNotTrace)
	}
	if v > FormatVersion {
		return fileErr(r.name, fmt.Sprintf("trace format version %d; this patchtrace reads versions up to %d: upgrade it", v, FormatVersion), ErrNewerVersion)
	}
	return nil
}

func (r *Reader) setSchema(s *arrow.Schema, m *Meta) error {
	md := s.Metadata()
	v, _, _ := versionOf(md)
	if s.NumFields() != numColumnsIn(v) {
		return fileErr(r.name, fmt.Sprintf("schema has %d columns, format version %d has %d", s.NumFields(), v, numColumnsIn(v)), nil)
	}
	for i, c := range Columns[:numColumnsIn(v)] {
		f := s.Field(i)
		if t := columnType(v, i); f.Name != c.Name || !arrow.TypeEqual(f.Type, t) {
			return fileErr(r.name, fmt.Sprintf("schema column %d is %s %s, want %s %s", i, f.Name, f.Type, c.Name, t), nil)
		}
	}
	r.rflags64 = v == 1
	for i := range Columns {
		r.bufStart[i+1] = r.bufStart[i] + len(bufSpecs(columnType(v, i)))
	}
	r.schema = s
	r.meta = m
	return nil
}

// loadFirst decodes the first batch: it validates early and captures the
// dictionaries.
func (r *Reader) loadFirst() error {
	if len(r.infos) == 0 {
		return nil
	}
	b, err := r.Batch(0)
	if err != nil {
		return err
	}
	b.Release()
	return nil
}

// Close releases the reader (and closes the file Open opened).
func (r *Reader) Close() error {
	if r.closer != nil {
		err := r.closer.Close()
		r.closer = nil
		return err
	}
	return nil
}

// Meta returns the trace metadata. OpNames and PercpuVars are the file's
// dictionaries (nil if it has no batch).
func (r *Reader) Meta() *Meta {
	m := *r.meta
	m.OpNames = r.names[ColOp]
	m.PercpuVars = r.names[ColPercpuVar]
	return &m
}

// Symbols returns the slice's symbol table, sorted by address.
func (r *Reader) Symbols() []Symbol { return r.meta.Symbols }

// Schema returns the file's Arrow schema, with its metadata.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// Truncated reports whether the file was cut short (it has no usable
// footer). Every complete batch is still readable.
func (r *Reader) Truncated() bool { return r.truncated != nil }

// TruncatedError says how the file was cut ("truncated after N events
// ..."), wrapping ErrTruncated; nil for a complete file.
func (r *Reader) TruncatedError() error {
	if r.truncated == nil {
		return nil
	}
	return r.truncated
}

// Verified reports whether the file's bytes are covered by checksums
// (a complete file of format version 3 or later): every batch Batch
// returns, the header and the footer metadata were checked against them.
// Older versions and truncated files (which have no footer) cannot be
// verified beyond the structural and value checks every file gets;
// Unverified says why.
func (r *Reader) Verified() bool { return r.meta != nil && r.meta.checksums != nil }

// Unverified says why the file's bytes are not covered by checksums
// ("" when they are).
func (r *Reader) Unverified() string {
	switch {
	case r.Verified():
		return ""
	case r.truncated != nil:
		return "the file has no footer, so its batches are not covered by checksums"
	}
	return fmt.Sprintf("format version %d has no checksums: damage to the file cannot be detected", r.meta.Version)
}

// NumBatches returns the number of readable record batches.
func (r *Reader) NumBatches() int { return len(r.infos) }

// NumEvents returns the number of readable rows.
func (r *Reader) NumEvents() uint64 {
	var n uint64
	for _, b := range r.infos {
		n += uint64(b.Rows)
	}
	return n
}

// OpName returns the mnemonic of op (Row.Op).
func (r *Reader) OpName(op uint16) string {
	if int(op) < len(r.names[ColOp]) {
		return r.names[ColOp][op]
	}
	return fmt.Sprintf("op(%d)", op)
}

// BatchInfo returns batch i's sequence range, decoding the batch if the
// file has no index for it.
func (r *Reader) BatchInfo(i int) (BatchInfo, error) {
	if i < 0 || i >= len(r.infos) {
		return BatchInfo{}, batchErr(r.name, i, fmt.Sprintf("no such batch (the file has %d)", len(r.infos)), nil)
	}
	if !r.known[i] {
		b, err := r.Batch(i)
		if err != nil {
			return BatchInfo{}, err
		}
		b.Release()
	}
	return r.infos[i], nil
}

// SeqGaps counts the sequence numbers missing from the readable batches
// (from seq 0 to the last batch's end: sequence numbers count every
// event of a run) and says where the first gap is. The reader checks
// each batch's rows against its index entry (first and last seq, row
// count, strictly increasing, batches in order), so the index alone
// gives the gaps. A file whose footer declares lost events
// (Meta.Dropped) may have gaps that many; any more are events missing
// (rows filtered out of the trace by another tool).
func (r *Reader) SeqGaps() (missing uint64, first string, err error) {
	var next uint64
	for i := range r.NumBatches() {
		b, err := r.BatchInfo(i)
		if err != nil {
			return 0, "", err
		}
		if b.Rows == 0 || b.FirstSeq < next || b.LastSeq < b.FirstSeq {
			continue // refused by the reader; nothing to count
		}
		span := b.LastSeq - b.FirstSeq + 1
		before, inside := b.FirstSeq-next, span-min(uint64(b.Rows), span)
		switch {
		case first != "":
		case before > 0:
			first = fmt.Sprintf("seq %d..%d, before batch %d", next, b.FirstSeq-1, i)
		case inside > 0:
			first = fmt.Sprintf("inside batch %d, seq %d..%d", i, b.FirstSeq, b.LastSeq)
		}
		missing += before + inside
		next = b.LastSeq + 1
	}
	return missing, first, nil
}

// Seek returns the index of the first batch holding an event with
// sequence number >= seq (NumBatches if there is none).
func (r *Reader) Seek(seq uint64) (int, error) {
	var err error
	i := sort.Search(len(r.infos), func(i int) bool {
		if err != nil {
			return true
		}
		var bi BatchInfo
		bi, err = r.BatchInfo(i)
		return bi.Rows > 0 && bi.LastSeq >= seq
	})
	if err != nil {
		return 0, err
	}
	return i, nil
}

// Events iterates over every readable row in order. The *Row is reused
// between iterations. Iteration stops at the first error.
func (r *Reader) Events() iter.Seq2[*Row, error] { return r.EventsFrom(0) }

// EventsFrom iterates over the rows with Seq >= seq.
func (r *Reader) EventsFrom(seq uint64) iter.Seq2[*Row, error] {
	return r.scanFrom(seq, allColumns)
}

// allColumns is AllColumns compiled.
var allColumns = AllColumns.compile()

// eventsArrow is EventsFrom through Batch (the Arrow library's decoder).
func (r *Reader) eventsArrow(seq uint64) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		first, err := r.Seek(seq)
		if err != nil {
			yield(nil, err)
			return
		}
		var row Row
		for i := first; i < len(r.infos); i++ {
			b, err := r.Batch(i)
			if err != nil {
				yield(nil, err)
				return
			}
			j := 0
			if i == first {
				j = b.Search(seq)
			}
			for ; j < b.Len(); j++ {
				b.Row(j, &row)
				if !yield(&row, nil) {
					b.Release()
					return
				}
			}
			b.Release()
		}
	}
}

// Batch decodes batch i. Release it when done.
func (r *Reader) Batch(i int) (*Batch, error) {
	if i < 0 || i >= len(r.infos) {
		return nil, batchErr(r.name, i, fmt.Sprintf("no such batch (the file has %d)", len(r.infos)), nil)
	}
	buf, err := r.message(i)
	if err != nil {
		return nil, corruptErr(r.name, i, err)
	}
	var rec arrow.Record
	err = safely(func() error {
		var err error
		rec, err = r.record(buf)
		return err
	})
	if err != nil {
		return nil, corruptErr(r.name, i, fmt.Errorf("decode: %w", err))
	}
	b := &Batch{index: i, rec: rec, rflags64: r.rflags64}
	if err := r.bind(b); err != nil {
		rec.Release()
		return nil, corruptErr(r.name, i, err)
	}
	if err := r.checkInfo(i, b); err != nil {
		rec.Release()
		return nil, err
	}
	return b, nil
}

// message reads batch i's message and checks it (its checksum when the
// file has them, then its shape) before the Arrow library sees it. It
// returns the stream to decode: the prefix, the message and an
// end-of-stream marker.
func (r *Reader) message(i int) ([]byte, error) {
	blk := r.blocks[i]
	if blk.metaLen < 8 || blk.metaLen > maxMetaLen || blk.bodyLen < 0 || blk.bodyLen > r.size {
		return nil, fmt.Errorf("message of %d+%d bytes", blk.metaLen, blk.bodyLen)
	}
	buf := make([]byte, len(r.prefix)+int(blk.metaLen+blk.bodyLen)+len(eos))
	copy(buf, r.prefix)
	if err := r.readMessage(i, buf[len(r.prefix):len(buf)-len(eos)]); err != nil {
		return nil, err
	}
	copy(buf[len(buf)-len(eos):], eos)
	return buf, nil
}

// readMessage reads batch i's message into m (of its size) and checks it
// (its checksum when the file has them, then its shape). It reads only
// the reader's immutable fields.
func (r *Reader) readMessage(i int, m []byte) error {
	blk := r.blocks[i]
	if _, err := r.ra.ReadAt(m, blk.off); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if sums := r.meta.checksums; sums != nil {
		if got := crc32.Checksum(m, castagnoli); got != sums[i+1] {
			return corruption{fmt.Errorf("checksum %08x, computed %08x: the batch's bytes are damaged", sums[i+1], got)}
		}
	}
	if binary.LittleEndian.Uint32(m) != 0xFFFFFFFF {
		return corruption{errors.New("no continuation marker")}
	}
	if err := checkRecordMessage(m[8:blk.metaLen], m[blk.metaLen:], r.version); err != nil {
		return corruption{err}
	}
	return nil
}

func (r *Reader) record(buf []byte) (arrow.Record, error) {
	sr, err := ipc.NewReader(bytes.NewReader(buf), ipc.WithAllocator(r.mem))
	if err != nil {
		return nil, err
	}
	defer sr.Release()
	if !sr.Next() {
		if sr.Err() != nil {
			return nil, sr.Err()
		}
		return nil, errors.New("no record batch in message")
	}
	rec := sr.Record()
	rec.Retain()
	return rec, nil
}

// safely runs f, turning a panic in the Arrow library into an error.
func safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed Arrow data: %v", p)
		}
	}()
	return f()
}

// limitAlloc refuses absurd allocations (a corrupt length field) with a
// panic that safely turns into an error.
type limitAlloc struct{ memory.Allocator }

const maxAlloc = 64 << 20

func (a limitAlloc) Allocate(n int) []byte {
	if n < 0 || n > maxAlloc {
		panic(fmt.Sprintf("allocation of %d bytes refused", n))
	}
	return a.Allocator.Allocate(n)
}

func (a limitAlloc) Reallocate(n int, b []byte) []byte {
	if n < 0 || n > maxAlloc {
		panic(fmt.Sprintf("allocation of %d bytes refused", n))
	}
	return a.Allocator.Reallocate(n, b)
}

// le reads little-endian values from validated buffers.
func le16(b []byte, i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
func le32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[4*i:]) }
func le64(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[8*i:]) }

package format

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// DefaultBatchRows is the default number of rows per record batch.
const DefaultBatchRows = 64 << 10

// MaxBatchRows bounds WithBatchRows (and what a reader accepts).
const MaxBatchRows = 1 << 22

// Option configures a Writer.
type Option func(*writerOptions)

type writerOptions struct {
	batchRows int
	mem       memory.Allocator
	serial    bool
}

// WithBatchRows sets the rows per record batch (1..MaxBatchRows).
func WithBatchRows(n int) Option { return func(o *writerOptions) { o.batchRows = n } }

// WithAllocator sets the Arrow allocator (tests pass a checked one).
func WithAllocator(mem memory.Allocator) Option { return func(o *writerOptions) { o.mem = mem } }

// WithSerial makes the writer encode and write batches on the appending
// goroutine instead of a background one. The bytes written are the same.
func WithSerial() Option { return func(o *writerOptions) { o.serial = true } }

// Writer writes a trace as an Arrow IPC file with zstd-compressed batches.
// Append rows in sequence order, then SetFinal and Close. Full batches are
// encoded, compressed and written by a background goroutine while the next
// one fills. A Writer is not safe for concurrent use.
type Writer struct {
	opts   writerOptions
	schema *arrow.Schema // carries the metadata; its late values are set at Close
	out    *fileOut
	fw     *ipc.FileWriter

	dicts     [NumColumns]arrow.ArrayData
	percpuIdx map[string]int16
	nOps      int

	cur     *batch
	free    chan *batch
	full    chan *batch
	done    chan struct{}
	mu      sync.Mutex
	bgErr   error
	written int // batches handed to the encoder

	index   []BatchInfo
	events  uint64
	lastSeq uint64
	final   Final
	closed  bool
	err     error // sticky
}

// NewWriter starts a trace on w: the Arrow header with meta is written (and
// flushed) at once, so even a run killed before its first batch leaves a
// file that names its scenario.
func NewWriter(w io.Writer, meta Meta, opts ...Option) (*Writer, error) {
	o := writerOptions{batchRows: DefaultBatchRows, mem: memory.DefaultAllocator}
	for _, f := range opts {
		f(&o)
	}
	if o.batchRows < 1 || o.batchRows > MaxBatchRows {
		return nil, fmt.Errorf("format: batch rows %d out of range 1..%d", o.batchRows, MaxBatchRows)
	}
	if len(meta.OpNames) > 1<<15 {
		return nil, fmt.Errorf("format: %d op names, at most %d", len(meta.OpNames), 1<<15)
	}
	if len(meta.PercpuVars) > 1<<15 {
		return nil, fmt.Errorf("format: %d per-CPU variables, at most %d", len(meta.PercpuVars), 1<<15)
	}
	vals, err := meta.headerValues()
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata(metaKeyNames(), vals)
	schema := arrow.NewSchema(baseSchema.Fields(), &md)
	if !lateMetadataWorks() {
		return nil, errors.New("format: this arrow version copies schema metadata; footer metadata cannot be set (see RATIONALE.md)")
	}

	wr := &Writer{opts: o, schema: schema, nOps: len(meta.OpNames), percpuIdx: make(map[string]int16, len(meta.PercpuVars))}
	for i, v := range meta.PercpuVars {
		wr.percpuIdx[v] = int16(i)
	}
	// ipc.FileWriter (arrow v15) keeps the dictionaries it wrote and never
	// releases them, so they come from the Go heap, not o.mem.
	gomem := memory.DefaultAllocator
	wr.dicts[ColKind] = stringData(gomem, enumNames(kindNames()))
	wr.dicts[ColOp] = stringData(gomem, meta.OpNames)
	wr.dicts[ColPercpuVar] = stringData(gomem, meta.PercpuVars)
	wr.dicts[ColCause] = stringData(gomem, enumNames(Causes))
	wr.dicts[ColService] = stringData(gomem, enumNames(Services))

	header, err := headerBytes(schema, o.mem)
	if err != nil {
		wr.releaseDicts()
		return nil, err
	}
	wr.out = &fileOut{w: bufio.NewWriterSize(w, 1<<20), skip: header}
	if _, err := wr.out.w.Write(header); err != nil {
		wr.releaseDicts()
		return nil, fmt.Errorf("format: write header: %w", err)
	}
	if err := wr.out.w.Flush(); err != nil {
		wr.releaseDicts()
		return nil, fmt.Errorf("format: write header: %w", err)
	}
	wr.fw, err = ipc.NewFileWriter(wr.out, ipc.WithSchema(schema), ipc.WithZstd(), ipc.WithAllocator(o.mem))
	if err != nil {
		wr.releaseDicts()
		return nil, fmt.Errorf("format: %w", err)
	}

	wr.cur = newBatch(o.batchRows)
	if !o.serial {
		wr.free = make(chan *batch, 1)
		wr.full = make(chan *batch, 1)
		wr.done = make(chan struct{})
		wr.free <- newBatch(o.batchRows)
		go wr.loop()
	}
	return wr, nil
}

func kindNames() []EnumValue {
	ev := make([]EnumValue, len(Kinds))
	for i, k := range Kinds {
		ev[i] = EnumValue{Value: uint8(k.Kind), Name: k.Name}
	}
	return ev
}

func enumNames(ev []EnumValue) []string {
	s := make([]string, len(ev))
	for i, e := range ev {
		s[i] = e.Name
	}
	return s
}

func stringData(mem memory.Allocator, vals []string) arrow.ArrayData {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	a := b.NewStringArray()
	defer a.Release()
	d := a.Data()
	d.Retain()
	return d
}

// headerBytes is what an ipc.FileWriter writes first for schema: the magic,
// padding and the schema message. It is produced by the stream writer, which
// encodes the schema message the same way; fileOut checks that it does.
func headerBytes(schema *arrow.Schema, mem memory.Allocator) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("ARROW1\x00\x00")
	sw := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := sw.Close(); err != nil {
		return nil, fmt.Errorf("format: encode schema: %w", err)
	}
	b := buf.Bytes()
	eos := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	if !bytes.HasSuffix(b, eos) {
		return nil, errors.New("format: encode schema: no end-of-stream marker")
	}
	return b[:len(b)-len(eos)], nil
}

var (
	lateOnce sync.Once
	lateOK   bool
)

// lateMetadataWorks checks that a schema's metadata values can be updated
// in place (arrow v15 returns the backing slice from Metadata().Values()).
// The writer relies on it to put final values in the footer.
func lateMetadataWorks() bool {
	lateOnce.Do(func() {
		md := arrow.NewMetadata([]string{"k"}, []string{"a"})
		s := arrow.NewSchema(nil, &md)
		s.Metadata().Values()[0] = "b"
		lateOK = s.Metadata().Values()[0] == "b"
	})
	return lateOK
}

// fileOut is the io.WriteSeeker given to ipc.FileWriter. The header was
// written ahead; the FileWriter's identical header bytes are checked and
// skipped. Seek only reports the position.
type fileOut struct {
	w    *bufio.Writer
	pos  int64
	skip []byte
}

func (o *fileOut) Write(p []byte) (int, error) {
	n := len(p)
	if len(o.skip) > 0 {
		k := min(len(p), len(o.skip))
		if !bytes.Equal(p[:k], o.skip[:k]) {
			return 0, errors.New("format: arrow wrote a header that differs from the one written ahead")
		}
		o.skip, p = o.skip[k:], p[k:]
	}
	if len(p) > 0 {
		if _, err := o.w.Write(p); err != nil {
			return 0, err
		}
	}
	o.pos += int64(n)
	return n, nil
}

func (o *fileOut) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekCurrent {
		return o.pos, nil
	}
	return 0, errors.New("format: writer output is not seekable")
}

// colBuf holds one column of a batch as raw little-endian Arrow buffers.
type colBuf struct {
	width  int    // bytes per value (fixed-width and dictionary-index columns)
	fixed  []byte // values, or bit-packed booleans
	valid  []byte // validity bitmap; nil for common (never-null) columns
	offs   []byte // binary/string: int32 offsets
	data   []byte // binary/string: bytes
	filled int    // binary/string: offsets written so far
}

type batch struct {
	n        int
	cols     [NumColumns]colBuf
	dirty    uint64 // columns with values to clear
	firstSeq uint64
	lastSeq  uint64
}

func newBatch(rows int) *batch {
	b := &batch{}
	bm := (rows + 7) / 8
	for i, c := range Columns {
		cb := &b.cols[i]
		if !c.Common {
			cb.valid = make([]byte, bm)
		}
		switch t := c.Type.(type) {
		case *arrow.DictionaryType:
			cb.width = t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
			cb.fixed = make([]byte, rows*cb.width)
		case *arrow.BooleanType:
			cb.fixed = make([]byte, bm)
		case *arrow.BinaryType, *arrow.StringType:
			cb.offs = make([]byte, 4*(rows+1))
			cb.filled = 1
		case arrow.FixedWidthDataType:
			cb.width = t.BitWidth() / 8
			cb.fixed = make([]byte, rows*cb.width)
		default:
			panic("format: column " + c.Name + " has an unsupported type")
		}
	}
	return b
}

func (c *colBuf) setValid(n int)    { c.valid[n>>3] |= 1 << (n & 7) }
func (c *colBuf) u8(n int, v uint8) { c.fixed[n] = v; c.setValid(n) }
func (c *colBuf) u16(n int, v uint16) {
	binary.LittleEndian.PutUint16(c.fixed[2*n:], v)
	c.setValid(n)
}
func (c *colBuf) u32(n int, v uint32) {
	binary.LittleEndian.PutUint32(c.fixed[4*n:], v)
	c.setValid(n)
}
func (c *colBuf) u64(n int, v uint64) {
	binary.LittleEndian.PutUint64(c.fixed[8*n:], v)
	c.setValid(n)
}
func (c *colBuf) bool(n int, v bool) {
	if v {
		c.fixed[n>>3] |= 1 << (n & 7)
	}
	c.setValid(n)
}

// fill writes the offsets of rows before n (null rows: empty).
func (c *colBuf) fill(n int) {
	end := uint32(len(c.data))
	for ; c.filled <= n; c.filled++ {
		binary.LittleEndian.PutUint32(c.offs[4*c.filled:], end)
	}
}

func (c *colBuf) str(n int, v string) {
	c.fill(n)
	c.data = append(c.data, v...)
	binary.LittleEndian.PutUint32(c.offs[4*(n+1):], uint32(len(c.data)))
	c.filled = n + 2
	c.setValid(n)
}

// reset clears what the last batch wrote.
func (b *batch) reset() {
	n := b.n
	for i := range b.cols {
		c := &b.cols[i]
		if b.dirty&(1<<i) != 0 {
			clear(c.fixed[:min(len(c.fixed), max(n*c.width, (n+7)/8))])
			if c.valid != nil {
				clear(c.valid[:(n+7)/8])
			}
		}
		c.data = c.data[:0]
		c.filled = 1
	}
	b.n, b.dirty = 0, 0
}

// Append adds one row. Rows must come in strictly increasing Seq order.
// A row the format cannot store is rejected with an *Error and not written;
// the writer stays usable. Errors from encoding or writing earlier batches
// are returned by the next Append that completes a batch, and by Close.
// Append allocates nothing.
func (w *Writer) Append(r *Row) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("format: append after close")
	}
	b := w.cur
	n := b.n
	if err := w.check(r); err != nil {
		return err
	}
	c := &b.cols
	binary.LittleEndian.PutUint64(c[ColSeq].fixed[8*n:], r.Seq)
	c[ColKind].fixed[n] = uint8(r.Kind - 1)
	binary.LittleEndian.PutUint16(c[ColCPU].fixed[2*n:], r.CPU)
	binary.LittleEndian.PutUint32(c[ColTask].fixed[4*n:], r.Task)
	c[ColDepth].fixed[n] = r.Depth
	binary.LittleEndian.PutUint64(c[ColRIP].fixed[8*n:], r.RIP)
	mask := kindMask[r.Kind]
	switch r.Kind {
	case KindInsn:
		c[ColLen].u8(n, r.Len)
		copy(c[ColBytes].fixed[15*n:], r.Bytes[:r.Len])
		c[ColBytes].setValid(n)
		c[ColOp].u16(n, r.Op)
		c[ColRSP].u64(n, r.RSP)
		c[ColRFlags].u64(n, r.RFlags)
	case KindWrite:
		c[ColAddr].u64(n, r.Addr)
		c[ColSize].u32(n, r.Size)
		c[ColOld].u64(n, r.Old)
		c[ColNew].u64(n, r.New)
		c[ColAlias].bool(n, r.Alias)
		if r.Alias {
			c[ColAliasAddr].u64(n, r.AliasAddr)
		}
		if r.Percpu {
			c[ColPercpuCPU].u16(n, r.PercpuCPU)
			c[ColPercpuOff].u32(n, r.PercpuOff)
			if r.PercpuVar != "" {
				c[ColPercpuVar].u16(n, uint16(w.percpuIdx[r.PercpuVar]))
			}
		}
	case KindPercpuRead:
		c[ColAddr].u64(n, r.Addr)
		c[ColSize].u32(n, r.Size)
		c[ColNew].u64(n, r.New)
		c[ColPercpuCPU].u16(n, r.PercpuCPU)
		c[ColPercpuOff].u32(n, r.PercpuOff)
		if r.PercpuVar != "" {
			c[ColPercpuVar].u16(n, uint16(w.percpuIdx[r.PercpuVar]))
		}
	case KindTrap:
		c[ColVector].u8(n, r.Vector)
		c[ColHandler].u64(n, r.Handler)
		c[ColRSP].u64(n, r.RSP)
		c[ColIST].u8(n, r.IST)
		c[ColRFlags].u64(n, r.RFlags)
		c[ColSize].u32(n, r.Size)
		if r.HasErrCode {
			c[ColErrCode].u64(n, r.ErrCode)
		}
		if r.HasAddr {
			c[ColAddr].u64(n, r.Addr)
		}
	case KindIret:
		c[ColHandler].u64(n, r.Handler)
		c[ColRSP].u64(n, r.RSP)
		c[ColRFlags].u64(n, r.RFlags)
	case KindPerm:
		c[ColAddr].u64(n, r.Addr)
		c[ColSize].u32(n, r.Size)
		c[ColPermOld].u8(n, r.PermOld)
		c[ColPermNew].u8(n, r.PermNew)
		if r.Service != 0 {
			c[ColService].u8(n, uint8(r.Service-1))
		}
		c[ColAlias].bool(n, r.Alias)
		if r.Alias {
			c[ColAliasAddr].u64(n, r.AliasAddr)
		}
	case KindSerialize:
		c[ColCause].u8(n, uint8(r.Cause-1))
	case KindSwitch:
		c[ColOld].u64(n, r.Old)
		c[ColNew].u64(n, r.New)
	case KindService:
		c[ColService].u8(n, uint8(r.Service-1))
		c[ColArg0].u64(n, r.Args[0])
		c[ColArg1].u64(n, r.Args[1])
		c[ColArg2].u64(n, r.Args[2])
		c[ColArg3].u64(n, r.Args[3])
		c[ColRet].u64(n, r.Ret)
	case KindMarker:
		c[ColArg0].u64(n, r.Args[0])
		c[ColArg1].u64(n, r.Args[1])
		if r.Msg != "" {
			c[ColMsg].str(n, r.Msg)
		}
	case KindFault:
		if r.HasVector {
			c[ColVector].u8(n, r.Vector)
		}
		if r.HasErrCode {
			c[ColErrCode].u64(n, r.ErrCode)
		}
		if r.HasAddr {
			c[ColAddr].u64(n, r.Addr)
		}
		if r.Service != 0 {
			c[ColService].u8(n, uint8(r.Service-1))
		}
		c[ColMsg].str(n, r.Msg)
	case KindInject:
		c[ColVector].u8(n, r.Vector)
		c[ColAddr].u64(n, r.Addr)
	case KindHalt:
	}
	b.dirty |= mask
	if n == 0 {
		b.firstSeq = r.Seq
	}
	b.lastSeq = r.Seq
	w.lastSeq = r.Seq
	w.events++
	b.n = n + 1
	if b.n == w.opts.batchRows {
		return w.flush()
	}
	return nil
}

// check rejects a row the format cannot store.
func (w *Writer) check(r *Row) error {
	var msg string
	switch {
	case !r.Kind.Valid():
		msg = fmt.Sprintf("unknown kind %d", r.Kind)
	case w.events > 0 && r.Seq <= w.lastSeq:
		msg = fmt.Sprintf("seq %d not after %d", r.Seq, w.lastSeq)
	case r.Kind == KindInsn && (r.Len < 1 || r.Len > 15):
		msg = fmt.Sprintf("instruction length %d", r.Len)
	case r.Kind == KindInsn && int(r.Op) >= w.nOps:
		msg = fmt.Sprintf("op %d has no name (Meta.OpNames has %d)", r.Op, w.nOps)
	case r.Kind == KindService && (r.Service < 1 || int(r.Service) > len(Services)),
		(r.Kind == KindFault || r.Kind == KindPerm) && int(r.Service) > len(Services):
		msg = fmt.Sprintf("unknown service %d", r.Service)
	case r.Kind == KindSerialize && (r.Cause < 1 || int(r.Cause) > len(Causes)):
		msg = fmt.Sprintf("unknown serialize cause %d", r.Cause)
	case r.PercpuVar != "" && (r.Kind == KindPercpuRead || r.Kind == KindWrite && r.Percpu):
		if _, ok := w.percpuIdx[r.PercpuVar]; !ok {
			msg = fmt.Sprintf("per-CPU variable %q not in Meta.PercpuVars", r.PercpuVar)
		}
	}
	if msg == "" {
		return nil
	}
	return &Error{Batch: len(w.index), Row: w.cur.n, Msg: fmt.Sprintf("seq %d: %s", r.Seq, msg)}
}

// flush hands the current batch to the encoder.
func (w *Writer) flush() error {
	b := w.cur
	w.index = append(w.index, BatchInfo{FirstSeq: b.firstSeq, LastSeq: b.lastSeq, Rows: b.n})
	w.written++
	if w.opts.serial {
		err := w.writeBatch(b)
		b.reset()
		if err != nil {
			w.err = err
		}
		return err
	}
	w.full <- b
	w.cur = <-w.free
	w.mu.Lock()
	err := w.bgErr
	w.mu.Unlock()
	if err != nil {
		w.err = err
	}
	return err
}

func (w *Writer) loop() {
	defer close(w.done)
	for b := range w.full {
		w.mu.Lock()
		failed := w.bgErr != nil
		w.mu.Unlock()
		if !failed {
			if err := w.writeBatch(b); err != nil {
				w.mu.Lock()
				w.bgErr = err
				w.mu.Unlock()
			}
		}
		b.reset()
		w.free <- b
	}
}

func (w *Writer) writeBatch(b *batch) (err error) {
	rec := w.record(b)
	defer rec.Release()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("format: encode batch: %v", p)
		}
	}()
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("format: write batch: %w", err)
	}
	if err := w.out.w.Flush(); err != nil {
		return fmt.Errorf("format: write batch: %w", err)
	}
	return nil
}

// record wraps the batch's buffers (no copy) as an Arrow record.
func (w *Writer) record(b *batch) arrow.Record {
	n := b.n
	bm := (n + 7) / 8
	cols := make([]arrow.Array, NumColumns)
	for i, c := range Columns {
		cb := &b.cols[i]
		var valid *memory.Buffer
		nulls := 0
		if cb.valid != nil {
			set := 0
			for _, x := range cb.valid[:bm] {
				set += bits.OnesCount8(x)
			}
			nulls = n - set
			if nulls > 0 {
				valid = memory.NewBufferBytes(cb.valid[:bm])
			}
		}
		var d *array.Data
		switch t := c.Type.(type) {
		case *arrow.DictionaryType:
			d = array.NewDataWithDictionary(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(cb.fixed[:n*cb.width])}, nulls, 0, w.dicts[i].(*array.Data))
		case *arrow.BooleanType:
			d = array.NewData(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(cb.fixed[:bm])}, nil, nulls, 0)
		case *arrow.BinaryType, *arrow.StringType:
			cb.fill(n)
			d = array.NewData(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(cb.offs[:4*(n+1)]), memory.NewBufferBytes(cb.data)}, nil, nulls, 0)
		default:
			d = array.NewData(t, n, []*memory.Buffer{valid, memory.NewBufferBytes(cb.fixed[:n*cb.width])}, nil, nulls, 0)
		}
		cols[i] = array.MakeFromData(d)
		d.Release()
	}
	rec := array.NewRecord(w.schema, cols, int64(n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

// SetFinal records what is known at the end of the run; Close writes it
// into the footer metadata.
func (w *Writer) SetFinal(f Final) { w.final = f }

// Events returns the number of rows appended.
func (w *Writer) Events() uint64 { return w.events }

// Close writes the last batch and the footer (with the final metadata)
// and flushes. It does not close the underlying io.Writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	err := w.err
	if err == nil && (w.cur.n > 0 || w.written == 0) {
		err = w.flush()
	}
	w.stop()
	if err == nil {
		err = w.bgErr
	}
	if err == nil {
		err = w.finish()
	}
	w.releaseDicts()
	w.closed = true
	w.err = err
	return err
}

// stop ends the background goroutine.
func (w *Writer) stop() {
	if w.full != nil {
		close(w.full)
		<-w.done
		w.full = nil
	}
}

func (w *Writer) finish() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("format: write footer: %v", p)
		}
	}()
	vals := w.schema.Metadata().Values()
	if err := finalValues(vals, &w.final, w.events, w.index); err != nil {
		return err
	}
	if err := w.fw.Close(); err != nil {
		return fmt.Errorf("format: write footer: %w", err)
	}
	if len(w.out.skip) != 0 {
		return errors.New("format: arrow wrote a shorter header than the one written ahead")
	}
	if err := w.out.w.Flush(); err != nil {
		return fmt.Errorf("format: write footer: %w", err)
	}
	return nil
}

// abort stops the writer without writing a footer.
func (w *Writer) abort() {
	if w.closed {
		return
	}
	w.stop()
	w.releaseDicts()
	w.closed = true
	if w.err == nil {
		w.err = errors.New("format: writer aborted")
	}
}

func (w *Writer) releaseDicts() {
	for i, d := range w.dicts {
		if d != nil {
			d.Release()
			w.dicts[i] = nil
		}
	}
}

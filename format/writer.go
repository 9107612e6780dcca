package format

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	flatbuffers "github.com/google/flatbuffers/go"
)

// DefaultBatchRows is the default number of rows per record batch. Each
// buffer of a batch is its own zstd frame, so a batch is also how much
// history a column's matches can reach: 96 Ki rows instead of 64 Ki made
// bench-fentry's trace 8% smaller (loop patterns whose period is hundreds
// of iterations, such as a counter's parity in RFLAGS, are learnt once per
// batch) for ~35 MiB more heap while recording (RATIONALE.md "Trace size").
const DefaultBatchRows = 96 << 10

// MaxBatchRows bounds WithBatchRows (and what a reader accepts).
const MaxBatchRows = 1 << 22

// Option configures a Writer.
type Option func(*writerOptions)

type writerOptions struct {
	batchRows int
	serial    bool
	workers   int
}

// WithBatchRows sets the rows per record batch (1..MaxBatchRows).
func WithBatchRows(n int) Option { return func(o *writerOptions) { o.batchRows = n } }

// WithSerial makes the writer encode and write batches on the appending
// goroutine instead of background ones. The bytes written are the same.
func WithSerial() Option { return func(o *writerOptions) { o.serial = true } }

// WithEncoders sets how many goroutines compress batches in the
// background (default: GOMAXPROCS-1, at least 1, at most 4; the appending
// goroutine also compresses while it waits for a free batch). The bytes
// written do not depend on it.
func WithEncoders(n int) Option { return func(o *writerOptions) { o.workers = n } }

// batchSets is how many batches exist: one filling, the others being
// compressed and written.
const batchSets = 3

// Writer writes a trace as an Arrow IPC file with zstd-compressed batches.
// Append rows in sequence order, then SetFinal and Close. Full batches are
// compressed by background goroutines (one column at a time, in parallel)
// and written in order while the next one fills. A Writer is not safe for
// concurrent use.
type Writer struct {
	opts       writerOptions
	keys, vals []string // metadata; vals get their final values at Close
	out        *bufio.Writer
	pos        int64
	dictBlocks []fileBlock
	recBlocks  []fileBlock
	// The output goroutine's, reused for every batch.
	fb      *flatbuffers.Builder
	wbufs   [][]byte
	wnodes  []ipcNode
	wlayout []ipcBuffer
	wmsg    []byte

	percpuIdx map[string]int16
	lastVar   string // the last per-CPU variable looked up, and its index
	lastIdx   int16
	nOps      int
	loads     bool // Meta.Loads: load rows are accepted
	regs      bool // Meta.Regs: register deltas are accepted

	cur     *batch
	enc     *colEncoder // serial mode, and the appending goroutine's help
	free    chan *batch
	full    chan *batch    // to the output goroutine, in file order
	jobs    chan colJob    // to the encoders
	done    chan struct{}  // the output goroutine ended
	workers sync.WaitGroup // the encoders
	mu      sync.Mutex
	bgErr   error
	written int // batches handed to the encoder

	index   []BatchInfo
	sums    []uint32 // CRC-32C of the header, then of each batch message
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
	o := writerOptions{batchRows: DefaultBatchRows, workers: min(runtime.GOMAXPROCS(0)-1, 4)}
	for _, f := range opts {
		f(&o)
	}
	if o.batchRows < 1 || o.batchRows > MaxBatchRows {
		return nil, fmt.Errorf("format: batch rows %d out of range 1..%d", o.batchRows, MaxBatchRows)
	}
	o.workers = max(o.workers, 1)
	if len(meta.OpNames) > 1<<15 {
		return nil, fmt.Errorf("format: %d op names, at most %d", len(meta.OpNames), 1<<15)
	}
	if len(meta.PercpuVars) > 1<<15 {
		return nil, fmt.Errorf("format: %d per-CPU variables, at most %d", len(meta.PercpuVars), 1<<15)
	}
	if err := checkScenarioID(meta.Scenario); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	vals, err := meta.headerValues()
	if err != nil {
		return nil, err
	}
	wr := &Writer{opts: o, keys: metaKeyNames(), vals: vals, nOps: len(meta.OpNames), loads: meta.Loads, regs: meta.Regs,
		percpuIdx: make(map[string]int16, len(meta.PercpuVars)), fb: flatbuffers.NewBuilder(4096)}
	for i, v := range meta.PercpuVars {
		wr.percpuIdx[v] = int16(i)
	}
	wr.out = bufio.NewWriterSize(w, 1<<20)
	if err := wr.writeHeader(meta); err != nil {
		return nil, err
	}
	wr.cur = newBatch(o.batchRows)
	if o.serial {
		wr.enc = newColEncoder()
		return wr, nil
	}
	wr.free = make(chan *batch, batchSets)
	wr.full = make(chan *batch, batchSets)
	wr.jobs = make(chan colJob, batchSets*(NumColumns+1))
	wr.done = make(chan struct{})
	for range batchSets - 1 {
		wr.free <- newBatch(o.batchRows)
	}
	for range o.workers {
		wr.workers.Add(1)
		go wr.encodeLoop()
	}
	go wr.outputLoop()
	return wr, nil
}

// writeHeader writes the magic, the schema message (with the header
// metadata) and one dictionary message per dictionary column, and flushes.
func (w *Writer) writeHeader(meta Meta) error {
	var hdr []byte
	hdr = append(hdr, "ARROW1\x00\x00"...)
	hdr = append(hdr, schemaMessage(w.keys, w.vals)...)
	enc := newColEncoder()
	defer putEncoder(enc)
	for i, c := range Columns {
		if dictID[i] < 0 {
			continue
		}
		var names []string
		switch i {
		case ColKind:
			names = enumNames(kindNames())
		case ColOp:
			names = meta.OpNames
		case ColPercpuVar:
			names = meta.PercpuVars
		case ColCause:
			names = enumNames(Causes)
		case ColService:
			names = enumNames(Services)
		default:
			return fmt.Errorf("format: column %s: no dictionary", c.Name)
		}
		offs := make([]byte, 4*(len(names)+1))
		var data []byte
		for j, s := range names {
			data = append(data, s...)
			binary.LittleEndian.PutUint32(offs[4*(j+1):], uint32(len(data)))
		}
		bufs := [][]byte{nil, enc.compress(nil, offs, levelDict, 4), enc.compress(nil, data, levelDict, 1)}
		layout, body := bodyLayout(nil, bufs)
		msg := dictionaryMessage(dictID[i], int64(len(names)), []ipcNode{{int64(len(names)), 0}}, layout, body)
		w.dictBlocks = append(w.dictBlocks, fileBlock{off: int64(len(hdr)), metaLen: int32(len(msg)), bodyLen: body})
		hdr = append(hdr, msg...)
		hdr = appendBody(hdr, bufs)
	}
	w.sums = append(w.sums[:0], crc32.Checksum(hdr, castagnoli))
	if _, err := w.out.Write(hdr); err != nil {
		return fmt.Errorf("format: write header: %w", err)
	}
	if err := w.out.Flush(); err != nil {
		return fmt.Errorf("format: write header: %w", err)
	}
	w.pos = int64(len(hdr))
	return nil
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
	dirty    uint64 // columns with values (the others are all null)
	firstSeq uint64
	lastSeq  uint64
	gap      bool // seq is not firstSeq, firstSeq+1, ...

	out     [NumColumns]colOut // the encoded buffers
	pending sync.WaitGroup     // columns not yet encoded

	rows    int                        // capacity
	log     []byte                     // insn rows, insnRecord bytes each, to be transposed
	logBase unsafe.Pointer             // &log[0]
	logN    int                        // records in log
	kindMap [numKinds - 1][]uint64     // rows of each kind (index kind-1), set by transpose
	multi   bool                       // rows of several CPUs, set by transpose
	cpuRows cpuRows                    // how they interleave, when multi
	base    [NumColumns]unsafe.Pointer // &cols[i].fixed[0]
	vbase   [NumColumns]unsafe.Pointer // &cols[i].valid[0]
}

// Batches and encoders are reused across writers (a process that records
// many runs, a benchmark): a batch set is ~15 MB and an encoder's tables a
// few MB, which would otherwise be allocated and zeroed for every run.
// The pools keep at most one writer's worth (a deterministic bound, unlike
// sync.Pool, which may drop an object and leave the next writer to
// allocate another while the pool still holds the first).
var pool struct {
	sync.Mutex
	batches []*batch
	encs    []*colEncoder
}

const (
	maxPooledBatches  = batchSets
	maxPooledEncoders = 6
)

func putBatch(b *batch) {
	pool.Lock()
	defer pool.Unlock()
	if len(pool.batches) < maxPooledBatches {
		pool.batches = append(pool.batches, b)
	}
}

func putEncoder(e *colEncoder) {
	pool.Lock()
	defer pool.Unlock()
	if len(pool.encs) < maxPooledEncoders {
		pool.encs = append(pool.encs, e)
	}
}

// newBatch returns a clean batch of rows rows, from the pool if it has one.
func newBatch(rows int) *batch {
	pool.Lock()
	for i, b := range pool.batches {
		if b.rows == rows {
			pool.batches = append(pool.batches[:i], pool.batches[i+1:]...)
			pool.Unlock()
			return b
		}
	}
	pool.Unlock()
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
	for i := range b.cols {
		if f := b.cols[i].fixed; len(f) > 0 {
			b.base[i] = unsafe.Pointer(&f[0])
		}
		if v := b.cols[i].valid; len(v) > 0 {
			b.vbase[i] = unsafe.Pointer(&v[0])
		}
	}
	b.rows = rows
	b.log = make([]byte, insnRecord*rows)
	b.logBase = unsafe.Pointer(&b.log[0])
	return b
}

// The fast append paths store through raw pointers to the column
// buffers: a row index below the batch's capacity is always in bounds
// (each buffer holds rows values), and the stores are the buffers'
// little-endian layout only on a little-endian machine.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func (b *batch) p8(col, n int, v uint8) { *(*uint8)(unsafe.Add(b.base[col], n)) = v }
func (b *batch) p16(col, n int, v uint16) {
	*(*uint16)(unsafe.Add(b.base[col], 2*n)) = v
}
func (b *batch) p32(col, n int, v uint32) {
	*(*uint32)(unsafe.Add(b.base[col], 4*n)) = v
}
func (b *batch) p64(col, n int, v uint64) {
	*(*uint64)(unsafe.Add(b.base[col], 8*n)) = v
}
func (b *batch) setValid(col, n int) {
	*(*uint8)(unsafe.Add(b.vbase[col], n>>3)) |= 1 << (n & 7)
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
func (c *colBuf) rflags(n int, v uint64) {
	putRFlags(c.fixed, n, v)
	c.setValid(n)
}

// putRFlags stores an rflags value (its low 32 bits: the writer rejects
// the others) at row n.
func putRFlags(b []byte, n int, v uint64) { binary.LittleEndian.PutUint32(b[4*n:], uint32(v)) }

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

// reset readies an encoded batch for refilling (the encoders cleared
// the column buffers).
func (b *batch) reset() {
	b.n, b.dirty, b.gap = 0, 0, false
	// An empty trace's one zero-row batch is indexed 0..0, also when
	// it is a pooled batch that held rows before.
	b.firstSeq, b.lastSeq = 0, 0
}

// Append adds one row. Rows must come in strictly increasing Seq order.
// A row the format cannot store is rejected with an *Error and not written;
// the writer stays usable. Errors from encoding or writing earlier batches
// are returned by the next Append that completes a batch, and by Close.
// Append allocates nothing.
func (w *Writer) Append(r *Row) error {
	if r.Kind == KindInsn && littleEndian && w.err == nil && !w.closed && (r.Seq > w.lastSeq || w.events == 0) &&
		r.Len-1 < 15 && int(r.Op) < w.nOps && r.RFlags>>32 == 0 && (w.regs || r.RegMask == 0) && r.RegMask < 1<<NumRegs {
		return w.AppendInsn(r.Seq, r.CPU, r.Task, r.Depth, r.RIP, r.Len, &r.Bytes, r.Op, r.RSP, r.RFlags, r.RegMask, &r.Regs)
	}
	if (r.Kind == KindWrite || r.Kind == KindLoad && w.loads) && littleEndian && w.err == nil && !w.closed && (r.Seq > w.lastSeq || w.events == 0) &&
		(!r.Percpu || r.PercpuVar == "" || r.PercpuVar == w.lastVar) && (r.Kind == KindLoad || (w.regs || r.RegMask == 0) && r.RegMask < 1<<NumRegs) {
		return w.appendWrite(r)
	}
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
		c[ColRFlags].rflags(n, r.RFlags)
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
				c[ColPercpuVar].u16(n, uint16(w.lastIdx))
			}
		}
	case KindLoad:
		c[ColAddr].u64(n, r.Addr)
		c[ColSize].u32(n, r.Size)
		c[ColNew].u64(n, r.New)
		if r.Percpu {
			c[ColPercpuCPU].u16(n, r.PercpuCPU)
			c[ColPercpuOff].u32(n, r.PercpuOff)
			if r.PercpuVar != "" {
				c[ColPercpuVar].u16(n, uint16(w.lastIdx))
			}
		}
	case KindPercpuRead:
		c[ColAddr].u64(n, r.Addr)
		c[ColSize].u32(n, r.Size)
		c[ColNew].u64(n, r.New)
		c[ColPercpuCPU].u16(n, r.PercpuCPU)
		c[ColPercpuOff].u32(n, r.PercpuOff)
		if r.PercpuVar != "" {
			c[ColPercpuVar].u16(n, uint16(w.lastIdx))
		}
	case KindTrap:
		c[ColVector].u8(n, r.Vector)
		c[ColHandler].u64(n, r.Handler)
		c[ColRSP].u64(n, r.RSP)
		c[ColIST].u8(n, r.IST)
		c[ColRFlags].rflags(n, r.RFlags)
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
		c[ColRFlags].rflags(n, r.RFlags)
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
	if mask&regColsMask != 0 {
		b.putRegs(n, r.RegMask, &r.Regs)
	}
	if w.endRow(b, n, r.Seq, mask) {
		return w.flush()
	}
	return nil
}

// regColsMask has the bits of the register-delta columns.
const regColsMask = (1<<NumRegs - 1) << ColRegRAX

// putRegs stores row n's register deltas (mask: bit i = RegNames[i]).
func (b *batch) putRegs(n int, mask uint32, regs *[NumRegs]uint64) {
	for m := mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros32(m)
		b.p64(ColRegRAX+i, n, regs[i])
		b.setValid(ColRegRAX+i, n)
	}
}

// endRow finishes row n of batch b: the columns it touched (mask) and
// the batch's sequence range. It reports whether the batch is full: the
// caller then flushes it. (No call in it: it inlines into the append
// paths.)
func (w *Writer) endRow(b *batch, n int, seq uint64, mask uint64) (full bool) {
	b.dirty |= mask
	if n == 0 {
		b.firstSeq = seq
	} else if seq != b.lastSeq+1 {
		b.gap = true
	}
	b.lastSeq, w.lastSeq = seq, seq
	w.events++
	b.n = n + 1
	return b.n == w.opts.batchRows
}

// insnMask is kindMask[KindInsn]: the columns an insn row fills.
var insnMask = kindMask[KindInsn]

// AppendInsn appends an insn row given by its fields, as Append would with
// a Row holding them (the same checks and errors), without the Row: the
// recorder's path for the most common event. bytes holds the instruction
// in its first n bytes; the rest is ignored.
//
// regMask and regs are the row's register deltas (Row.RegMask, Row.Regs);
// regs may be nil when regMask is 0.
func (w *Writer) AppendInsn(seq uint64, cpu uint16, task uint32, depth uint8, rip uint64, ilen uint8, bytes *[15]byte, op uint16, rsp, rflags uint64,
	regMask uint32, regs *[NumRegs]uint64) error {
	if !(littleEndian && w.err == nil && !w.closed && (seq > w.lastSeq || w.events == 0) && ilen-1 < 15 && int(op) < w.nOps && rflags>>32 == 0 &&
		(regMask == 0 || w.regs && regMask < 1<<NumRegs)) {
		return w.appendInsnRow(seq, cpu, task, depth, rip, ilen, bytes, op, rsp, rflags, regMask, regs)
	}
	// A valid insn row (the common case, kept short: no per-column
	// calls).
	b := w.cur
	n := b.n
	if uint(n) >= uint(b.rows) {
		panic("format: batch overflow")
	}
	// One 64-byte record in the insn log (one write stream, one cache
	// line per row); an encoding goroutine moves it into the columns.
	p := unsafe.Add(b.logBase, insnRecord*b.logN)
	*(*uint64)(p) = seq
	*(*uint64)(unsafe.Add(p, 8)) = rip
	*(*uint64)(unsafe.Add(p, 16)) = rsp
	*(*uint32)(unsafe.Add(p, 24)) = uint32(rflags)
	*(*uint32)(unsafe.Add(p, 28)) = task
	*(*uint16)(unsafe.Add(p, 32)) = cpu
	*(*uint16)(unsafe.Add(p, 34)) = op
	*(*uint8)(unsafe.Add(p, 36)) = depth
	*(*uint8)(unsafe.Add(p, 37)) = ilen
	*(*uint64)(unsafe.Add(p, 40)) = binary.LittleEndian.Uint64(bytes[0:8])
	*(*uint64)(unsafe.Add(p, 47)) = binary.LittleEndian.Uint64(bytes[7:15])
	*(*uint32)(unsafe.Add(p, 56)) = uint32(n)
	b.logN++
	if regMask != 0 {
		// The register columns are not in the log: stored here, with
		// their validity (a condition: set per row).
		b.putRegs(n, regMask, regs)
	}
	// Validity: every column an insn row fills is filled by every insn
	// row (pureKinds); the encoder derives those bits from the kind.
	if w.endRow(b, n, seq, insnMask) {
		return w.flush()
	}
	return nil
}

// appendInsnRow is AppendInsn through Append, for a row it checks and
// rejects (or a writer that takes no more rows).
//
//go:noinline
func (w *Writer) appendInsnRow(seq uint64, cpu uint16, task uint32, depth uint8, rip uint64, n uint8, bytes *[15]byte, op uint16, rsp, rflags uint64,
	regMask uint32, regs *[NumRegs]uint64) error {
	r := Row{Seq: seq, Kind: KindInsn, CPU: cpu, Task: task, Depth: depth, RIP: rip, Len: n, Op: op, RSP: rsp, RFlags: rflags, RegMask: regMask}
	if regs != nil {
		r.Regs = *regs
	}
	copy(r.Bytes[:], bytes[:min(int(n), 15)])
	return w.Append(&r)
}

// insnRecord is the size of an insn log record: seq 0, rip 8, rsp 16,
// rflags 24, task 28, cpu 32, op 34, depth 36, len 37, bytes 40-54 (as
// given: the tail past len is masked here), row 56.
const insnRecord = 64

// transpose moves the insn log into the columns. It runs on an encoding
// goroutine before the batch's columns are compressed.
func (b *batch) transpose() {
	for k := 0; k < b.logN; k++ {
		p := unsafe.Add(b.logBase, insnRecord*k)
		n := int(*(*uint32)(unsafe.Add(p, 56)))
		if uint(n) >= uint(b.rows) {
			panic("format: bad insn log")
		}
		b.p64(ColSeq, n, *(*uint64)(p))
		b.p8(ColKind, n, uint8(KindInsn-1))
		b.p16(ColCPU, n, *(*uint16)(unsafe.Add(p, 32)))
		b.p32(ColTask, n, *(*uint32)(unsafe.Add(p, 28)))
		b.p8(ColDepth, n, *(*uint8)(unsafe.Add(p, 36)))
		b.p64(ColRIP, n, *(*uint64)(unsafe.Add(p, 8)))
		ilen := *(*uint8)(unsafe.Add(p, 37))
		b.p8(ColLen, n, ilen)
		// The first ilen bytes, zero-padded to 15, as two overlapping
		// 8-byte stores (bytes 0-7 and 7-14) masked to the length.
		lo := *(*uint64)(unsafe.Add(p, 40))
		hi := *(*uint64)(unsafe.Add(p, 47))
		if l := uint(ilen); l < 8 {
			lo &= 1<<(8*l) - 1
			hi = 0
		} else if l < 15 {
			hi &= 1<<(8*(l-7)) - 1
		}
		by := unsafe.Add(b.base[ColBytes], 15*n)
		*(*uint64)(by) = lo
		*(*uint64)(unsafe.Add(by, 7)) = hi
		b.p16(ColOp, n, *(*uint16)(unsafe.Add(p, 34)))
		b.p64(ColRSP, n, *(*uint64)(unsafe.Add(p, 16)))
		b.p32(ColRFlags, n, *(*uint32)(unsafe.Add(p, 24)))
	}
	b.logN = 0
	// One bitmap of rows per kind, for the validity the encoder derives.
	words := (b.n + 63) / 64
	for k := range b.kindMap {
		if len(b.kindMap[k]) < words {
			b.kindMap[k] = make([]uint64, words)
		}
		clear(b.kindMap[k][:words])
	}
	for r, k := range b.cols[ColKind].fixed[:b.n] {
		if int(k) < len(b.kindMap) {
			b.kindMap[k][r>>6] |= 1 << (r & 63)
		}
	}
	b.multi = b.cpuRows.set(b.cols[ColCPU].fixed, b.n)
}

// writeMask is kindMask[KindWrite]: the columns a write row can fill.
var writeMask = kindMask[KindWrite]

// appendWrite is Append for a valid write or load row whose per-CPU
// variable (if any) is the last one looked up.
func (w *Writer) appendWrite(r *Row) error {
	if r.Kind == KindLoad {
		return w.appendLoad(r)
	}
	b := w.cur
	n := b.n
	if uint(n) >= uint(b.rows) {
		panic("format: batch overflow")
	}
	b.p64(ColSeq, n, r.Seq)
	b.p8(ColKind, n, uint8(KindWrite-1))
	b.p16(ColCPU, n, r.CPU)
	b.p32(ColTask, n, r.Task)
	b.p8(ColDepth, n, r.Depth)
	b.p64(ColRIP, n, r.RIP)
	b.p64(ColAddr, n, r.Addr)
	b.p32(ColSize, n, r.Size)
	b.p64(ColOld, n, r.Old)
	b.p64(ColNew, n, r.New)
	// addr, size, old, new and alias are filled by every write row
	// (pureKinds); the others only under their condition.
	if r.Alias {
		*(*uint8)(unsafe.Add(b.base[ColAlias], n>>3)) |= 1 << (n & 7)
		b.p64(ColAliasAddr, n, r.AliasAddr)
		b.setValid(ColAliasAddr, n)
	}
	if r.Percpu {
		b.p16(ColPercpuCPU, n, r.PercpuCPU)
		b.setValid(ColPercpuCPU, n)
		b.p32(ColPercpuOff, n, r.PercpuOff)
		b.setValid(ColPercpuOff, n)
		if r.PercpuVar != "" {
			b.p16(ColPercpuVar, n, uint16(w.lastIdx))
			b.setValid(ColPercpuVar, n)
		}
	}
	if r.RegMask != 0 {
		b.putRegs(n, r.RegMask, &r.Regs)
	}
	if w.endRow(b, n, r.Seq, writeMask) {
		return w.flush()
	}
	return nil
}

// loadMask is kindMask[KindLoad]: the columns a load row can fill.
var loadMask = kindMask[KindLoad]

// appendLoad is Append for a valid load row whose per-CPU variable (if
// any) is the last one looked up.
func (w *Writer) appendLoad(r *Row) error {
	b := w.cur
	n := b.n
	if uint(n) >= uint(b.rows) {
		panic("format: batch overflow")
	}
	b.p64(ColSeq, n, r.Seq)
	b.p8(ColKind, n, uint8(KindLoad-1))
	b.p16(ColCPU, n, r.CPU)
	b.p32(ColTask, n, r.Task)
	b.p8(ColDepth, n, r.Depth)
	b.p64(ColRIP, n, r.RIP)
	b.p64(ColAddr, n, r.Addr)
	b.p32(ColSize, n, r.Size)
	b.p64(ColNew, n, r.New)
	if r.Percpu {
		b.p16(ColPercpuCPU, n, r.PercpuCPU)
		b.setValid(ColPercpuCPU, n)
		b.p32(ColPercpuOff, n, r.PercpuOff)
		b.setValid(ColPercpuOff, n)
		if r.PercpuVar != "" {
			b.p16(ColPercpuVar, n, uint16(w.lastIdx))
			b.setValid(ColPercpuVar, n)
		}
	}
	if w.endRow(b, n, r.Seq, loadMask) {
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
	case (r.Kind == KindInsn || r.Kind == KindTrap || r.Kind == KindIret) && r.RFlags>>32 != 0:
		msg = fmt.Sprintf("rflags %#x has reserved upper bits set", r.RFlags)
	case r.Kind == KindService && (r.Service < 1 || int(r.Service) > len(Services)),
		(r.Kind == KindFault || r.Kind == KindPerm) && int(r.Service) > len(Services):
		msg = fmt.Sprintf("unknown service %d", r.Service)
	case r.Kind == KindSerialize && (r.Cause < 1 || int(r.Cause) > len(Causes)):
		msg = fmt.Sprintf("unknown serialize cause %d", r.Cause)
	case r.Kind == KindLoad && !w.loads:
		msg = "a load row, but Meta.Loads is false (the metadata would say the trace has no loads)"
	case r.RegMask >= 1<<NumRegs:
		msg = fmt.Sprintf("register mask %#x has bits past the %d registers", r.RegMask, NumRegs)
	case r.RegMask != 0 && kindMask[r.Kind]&regColsMask != 0 && !w.regs:
		msg = "register deltas, but Meta.Regs is false (the metadata would say the trace has none)"
	case r.PercpuVar != "" && (r.Kind == KindPercpuRead || (r.Kind == KindWrite || r.Kind == KindLoad) && r.Percpu):
		if r.PercpuVar != w.lastVar {
			idx, ok := w.percpuIdx[r.PercpuVar]
			if !ok {
				msg = fmt.Sprintf("per-CPU variable %q not in Meta.PercpuVars", r.PercpuVar)
				break
			}
			w.lastVar, w.lastIdx = r.PercpuVar, idx
		}
	}
	if msg == "" {
		return nil
	}
	return &Error{Batch: len(w.index), Row: w.cur.n, Msg: fmt.Sprintf("seq %d: %s", r.Seq, msg)}
}

// flush hands the current batch to the encoders.
func (w *Writer) flush() error {
	b := w.cur
	w.index = append(w.index, BatchInfo{FirstSeq: b.firstSeq, LastSeq: b.lastSeq, Rows: b.n})
	w.written++
	if w.opts.serial {
		b.transpose()
		for i := range NumColumns {
			w.enc.encodeColumn(b, i)
		}
		err := w.writeBatch(b)
		b.reset()
		if err != nil {
			w.err = err
		}
		return err
	}
	b.pending.Add(NumColumns + 1)
	w.jobs <- colJob{b, -1} // transpose, then queue the columns
	w.full <- b
	// Take a free batch; while there is none (compression is behind),
	// encode columns here: this goroutine would wait anyway, and the
	// core it runs on is then free.
	for w.cur = nil; w.cur == nil; {
		select {
		case w.cur = <-w.free:
			continue
		default:
		}
		if w.enc == nil {
			w.enc = newColEncoder()
		}
		select {
		case w.cur = <-w.free:
		case j := <-w.jobs:
			w.do(w.enc, j)
		}
	}
	w.mu.Lock()
	err := w.bgErr
	w.mu.Unlock()
	if err != nil {
		w.err = err
	}
	return err
}

// colJob asks an encoder to compress one column of a batch (col >= 0)
// or to transpose its insn log (col < 0).
type colJob struct {
	b   *batch
	col int
}

func (w *Writer) encodeLoop() {
	defer w.workers.Done()
	enc := newColEncoder()
	defer putEncoder(enc)
	for j := range w.jobs {
		w.do(enc, j)
	}
}

// do runs a job: a column (col >= 0) or the batch's transposition, which
// then queues the batch's columns. The queue has room for every job of
// the batches in flight, so queueing never blocks.
func (w *Writer) do(enc *colEncoder, j colJob) {
	if j.col < 0 {
		j.b.transpose()
		for _, i := range encodeOrder {
			w.jobs <- colJob{j.b, i}
		}
	} else {
		enc.encodeColumn(j.b, j.col)
	}
	j.b.pending.Done()
}

func (w *Writer) outputLoop() {
	defer close(w.done)
	for b := range w.full {
		b.pending.Wait()
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

// writeBatch writes an encoded batch as a RecordBatch message and flushes.
func (w *Writer) writeBatch(b *batch) error {
	bufs := w.wbufs[:0]
	nodes := w.wnodes[:0]
	for i := range NumColumns {
		o := &b.out[i]
		nodes = append(nodes, ipcNode{int64(b.n), int64(o.nulls)})
		bufs = append(bufs, o.bufs[:o.nb]...)
	}
	var body int64
	w.wlayout, body = bodyLayout(w.wlayout[:0], bufs)
	msg := recordMessage(w.wmsg[:0], w.fb, int64(b.n), nodes, w.wlayout, body)
	w.wbufs, w.wnodes, w.wmsg = bufs, nodes, msg
	w.recBlocks = append(w.recBlocks, fileBlock{off: w.pos, metaLen: int32(len(msg)), bodyLen: body})
	if _, err := w.out.Write(msg); err != nil {
		return fmt.Errorf("format: write batch: %w", err)
	}
	var pad [8]byte
	crc := crc32.Update(0, castagnoli, msg)
	for _, p := range bufs {
		if _, err := w.out.Write(p); err != nil {
			return fmt.Errorf("format: write batch: %w", err)
		}
		crc = crc32.Update(crc, castagnoli, p)
		if k := pad8(len(p)) - len(p); k > 0 {
			w.out.Write(pad[:k])
			crc = crc32.Update(crc, castagnoli, pad[:k])
		}
	}
	w.sums = append(w.sums, crc)
	if err := w.out.Flush(); err != nil {
		return fmt.Errorf("format: write batch: %w", err)
	}
	w.pos += int64(len(msg)) + body
	return nil
}

func pad8(n int) int { return (n + 7) &^ 7 }

// bodyLayout appends to layout the places of bufs in a message body,
// each padded to 8 bytes, and returns the body length.
func bodyLayout(layout []ipcBuffer, bufs [][]byte) ([]ipcBuffer, int64) {
	off := int64(0)
	for _, p := range bufs {
		layout = append(layout, ipcBuffer{off, int64(len(p))})
		off += int64(pad8(len(p)))
	}
	return layout, off
}

func appendBody(dst []byte, bufs [][]byte) []byte {
	for _, p := range bufs {
		dst = append(dst, p...)
		dst = append(dst, make([]byte, pad8(len(p))-len(p))...)
	}
	return dst
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
	w.recycle()
	w.closed = true
	w.err = err
	return err
}

// recycle gives the writer's clean batches (all of them after a Close
// that flushed) and its encoder to the pools.
func (w *Writer) recycle() {
	if b := w.cur; b != nil && b.n == 0 && b.dirty == 0 && b.logN == 0 {
		putBatch(b)
	}
	w.cur = nil
	for w.free != nil && len(w.free) > 0 {
		putBatch(<-w.free)
	}
	if w.enc != nil {
		putEncoder(w.enc)
		w.enc = nil
	}
}

// stop ends the background goroutines.
func (w *Writer) stop() {
	if w.full != nil {
		// The output goroutine ends after the last batch's jobs are done
		// (a transposition queues more jobs): only then close the queue.
		close(w.full)
		<-w.done
		close(w.jobs)
		w.workers.Wait()
		w.full = nil
	}
}

func (w *Writer) finish() error {
	if err := finalValues(w.keys, w.vals, &w.final, w.events, w.index, w.sums); err != nil {
		return err
	}
	if _, err := w.out.Write(footerBytes(w.keys, w.vals, w.dictBlocks, w.recBlocks)); err != nil {
		return fmt.Errorf("format: write footer: %w", err)
	}
	if err := w.out.Flush(); err != nil {
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
	w.recycle()
	w.closed = true
	if w.err == nil {
		w.err = errors.New("format: writer aborted")
	}
}

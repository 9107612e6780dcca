package format

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/apache/arrow/go/v15/arrow"
)

// Batch is one decoded record batch. Its rows stay valid until Release.
type Batch struct {
	index int
	rec   arrow.Record
	n     int
	cols  [NumColumns]colView
	names *[NumColumns][]string

	rflags64 bool // a version 1 file: rflags is uint64

	// A batch the reader decoded itself (project.go): its message as
	// read and the arena its columns were decompressed into, returned
	// to their pools on Release.
	msg, arena []byte
}

// colView is a validated view of one column's buffers.
type colView struct {
	valid []byte // nil: no nulls
	vals  []byte // fixed-width values, dictionary indices or bit-packed booleans
	offs  []byte // binary/string offsets
	data  []byte
}

func (c *colView) ok(i int) bool { return c.valid == nil || c.valid[i>>3]&(1<<(i&7)) != 0 }

func (c *colView) varAt(i int) []byte {
	return c.data[binary.LittleEndian.Uint32(c.offs[4*i:]):binary.LittleEndian.Uint32(c.offs[4*i+4:])]
}

// Index returns the batch's position in the file.
func (b *Batch) Index() int { return b.index }

// Len returns the number of rows.
func (b *Batch) Len() int { return b.n }

// Record returns the batch as an Arrow record (owned by the Batch).
func (b *Batch) Record() arrow.Record { return b.rec }

// Release frees the batch.
func (b *Batch) Release() {
	if b == nil {
		return
	}
	if b.rec != nil {
		b.rec.Release()
		b.rec = nil
	}
	if b.msg != nil {
		putBuf(&msgPool, b.msg)
		putBuf(&arenaPool, b.arena)
		b.msg, b.arena = nil, nil
	}
}

// Seq returns row i's sequence number.
func (b *Batch) Seq(i int) uint64 { return le64(b.cols[ColSeq].vals, i) }

// Search returns the first row with Seq >= seq (Len if none).
func (b *Batch) Search(seq uint64) int {
	return sort.Search(b.n, func(i int) bool { return b.Seq(i) >= seq })
}

// Row fills r with row i. Strings in r are the reader's (Msg is copied).
// (For a batch decoded with a Projection, the columns not decoded read
// as null.)
func (b *Batch) Row(i int, r *Row) {
	b.common(i, r)
	for col := ColRIP + 1; col < NumColumns; col++ {
		if b.cols[col].ok(i) {
			b.setCol(i, r, col)
		}
	}
}

// common sets r to row i's common columns (the rest zero).
func (b *Batch) common(i int, r *Row) {
	c := &b.cols
	*r = Row{Seq: le64(c[ColSeq].vals, i), Kind: Kind(c[ColKind].vals[i] + 1), CPU: le16(c[ColCPU].vals, i),
		Task: le32(c[ColTask].vals, i), Depth: c[ColDepth].vals[i], RIP: le64(c[ColRIP].vals, i)}
}

// kindColumns lists, for each kind, the columns other than the common
// ones that its rows use ([Column.Uses]).
var kindColumns = func() (kc [numKinds][]int) {
	for i, c := range Columns {
		for _, u := range c.Uses {
			if !c.Common && int(u.Kind) < numKinds && !slices.Contains(kc[u.Kind], i) {
				kc[u.Kind] = append(kc[u.Kind], i)
			}
		}
	}
	return kc
}()

// setCol sets r's field of column col from row i (not null).
func (b *Batch) setCol(i int, r *Row, col int) {
	c := &b.cols
	switch col {
	case ColLen:
		r.Len = c[ColLen].vals[i]
	case ColBytes:
		copy(r.Bytes[:], c[ColBytes].vals[15*i:15*i+15])
	case ColOp:
		r.Op = le16(c[ColOp].vals, i)
	case ColRSP:
		r.RSP = le64(c[ColRSP].vals, i)
	case ColRFlags:
		if b.rflags64 {
			r.RFlags = le64(c[ColRFlags].vals, i)
		} else {
			r.RFlags = uint64(le32(c[ColRFlags].vals, i))
		}
	case ColAddr:
		r.Addr, r.HasAddr = le64(c[ColAddr].vals, i), true
	case ColSize:
		r.Size = le32(c[ColSize].vals, i)
	case ColOld:
		r.Old = le64(c[ColOld].vals, i)
	case ColNew:
		r.New = le64(c[ColNew].vals, i)
	case ColAlias:
		r.Alias = c[ColAlias].vals[i>>3]&(1<<(i&7)) != 0
	case ColAliasAddr:
		r.AliasAddr = le64(c[ColAliasAddr].vals, i)
	case ColPercpuCPU:
		r.Percpu, r.PercpuCPU = true, le16(c[ColPercpuCPU].vals, i)
	case ColPercpuOff:
		r.PercpuOff = le32(c[ColPercpuOff].vals, i)
	case ColPercpuVar:
		r.PercpuVar = b.names[ColPercpuVar][le16(c[ColPercpuVar].vals, i)]
	case ColVector:
		r.Vector, r.HasVector = c[ColVector].vals[i], true
	case ColHandler:
		r.Handler = le64(c[ColHandler].vals, i)
	case ColIST:
		r.IST = c[ColIST].vals[i]
	case ColErrCode:
		r.ErrCode, r.HasErrCode = le64(c[ColErrCode].vals, i), true
	case ColPermOld:
		r.PermOld = c[ColPermOld].vals[i]
	case ColPermNew:
		r.PermNew = c[ColPermNew].vals[i]
	case ColCause:
		r.Cause = Cause(c[ColCause].vals[i] + 1)
	case ColService:
		r.Service = Service(c[ColService].vals[i] + 1)
	case ColArg0, ColArg1, ColArg2, ColArg3:
		r.Args[col-ColArg0] = le64(c[col].vals, i)
	case ColRet:
		r.Ret = le64(c[ColRet].vals, i)
	case ColMsg:
		r.Msg = string(c[ColMsg].varAt(i))
	default:
		if k := col - ColRegRAX; k >= 0 && k < NumRegs {
			r.Regs[k] = le64(c[col].vals, i)
			r.RegMask |= 1 << k
		}
	}
}

// clearCol zeroes r's field of column col (what setCol sets).
func clearCol(r *Row, col int) {
	switch col {
	case ColLen:
		r.Len = 0
	case ColBytes:
		r.Bytes = [15]byte{}
	case ColOp:
		r.Op = 0
	case ColRSP:
		r.RSP = 0
	case ColRFlags:
		r.RFlags = 0
	case ColAddr:
		r.Addr, r.HasAddr = 0, false
	case ColSize:
		r.Size = 0
	case ColOld:
		r.Old = 0
	case ColNew:
		r.New = 0
	case ColAlias:
		r.Alias = false
	case ColAliasAddr:
		r.AliasAddr = 0
	case ColPercpuCPU:
		r.Percpu, r.PercpuCPU = false, 0
	case ColPercpuOff:
		r.PercpuOff = 0
	case ColPercpuVar:
		r.PercpuVar = ""
	case ColVector:
		r.Vector, r.HasVector = 0, false
	case ColHandler:
		r.Handler = 0
	case ColIST:
		r.IST = 0
	case ColErrCode:
		r.ErrCode, r.HasErrCode = 0, false
	case ColPermOld:
		r.PermOld = 0
	case ColPermNew:
		r.PermNew = 0
	case ColCause:
		r.Cause = 0
	case ColService:
		r.Service = 0
	case ColArg0, ColArg1, ColArg2, ColArg3:
		r.Args[col-ColArg0] = 0
	case ColRet:
		r.Ret = 0
	case ColMsg:
		r.Msg = ""
	default:
		if k := col - ColRegRAX; k >= 0 && k < NumRegs {
			r.Regs[k] = 0
			r.RegMask &^= 1 << k
		}
	}
}

// bind validates a decoded record against the schema, so that Row never
// reads out of bounds, and sets up the column views.
func (r *Reader) bind(b *Batch) error {
	rec := b.rec
	// The file's version's columns (checked against the schema when the
	// file was opened), or all of them (a current-schema record: a
	// Parquet export of an older file).
	ncols := int(rec.NumCols())
	if ncols != numColumnsIn(r.version) && ncols != NumColumns {
		return fmt.Errorf("%d columns, want %d", rec.NumCols(), numColumnsIn(r.version))
	}
	if rec.NumRows() < 0 || rec.NumRows() > MaxBatchRows {
		return fmt.Errorf("%d rows", rec.NumRows())
	}
	n := int(rec.NumRows())
	b.n = n
	b.names = &r.names
	if ncols < NumColumns {
		// An older version's file: the columns it does not have are
		// all null.
		none := make([]byte, (n+7)/8)
		for i := ncols; i < NumColumns; i++ {
			b.cols[i] = colView{valid: none}
		}
	}
	for i, c := range Columns[:ncols] {
		d := rec.Column(i).Data()
		t := c.Type
		if i == ColRFlags && b.rflags64 {
			t = arrow.PrimitiveTypes.Uint64
		}
		if err := checkData(d, t, n, &b.cols[i]); err != nil {
			return fmt.Errorf("column %s: %w", c.Name, err)
		}
		if c.Common && b.cols[i].valid != nil {
			for j := 0; j < n; j++ {
				if !b.cols[i].ok(j) {
					return fmt.Errorf("column %s: row %d is null", c.Name, j)
				}
			}
			b.cols[i].valid = nil
		}
		if dt, ok := c.Type.(*arrow.DictionaryType); ok {
			names, err := r.dictNames(i, d.Dictionary())
			if err != nil {
				return fmt.Errorf("column %s dictionary: %w", c.Name, err)
			}
			cv := &b.cols[i]
			w := dt.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
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
	for j := 0; j < n; j++ {
		if j > 0 && b.Seq(j) <= b.Seq(j-1) {
			return fmt.Errorf("row %d: seq %d not after %d", j, b.Seq(j), b.Seq(j-1))
		}
	}
	return r.checkValues(b)
}

// Value ranges the reader enforces, so that no consumer loops or indexes
// by a corrupt value (see RATIONALE.md "Integrity and resource limits").
const (
	// MaxTrapFrame bounds a trap row's size (stack bytes used by a
	// delivery: at most a 48-byte frame with error code and 16-byte
	// alignment; the bound leaves room).
	MaxTrapFrame = 4096
	// MaxPermPages bounds a perm row's size (pages whose permissions
	// changed): 64 MiB, what the emulator maps at most.
	MaxPermPages = 1 << 14
)

// CheckRow checks a row's values as the reader checks every decoded row
// (for rows that do not come from a Reader: a consumer fed rows directly
// uses it to index and loop by them safely).
func CheckRow(r *Row, cpus int) error {
	if r.Kind < KindInsn || r.Kind >= numKinds {
		return fmt.Errorf("kind %d", r.Kind)
	}
	if int(r.CPU) >= cpus {
		return fmt.Errorf("cpu %d, the trace has %d CPUs", r.CPU, cpus)
	}
	if r.Percpu && int(r.PercpuCPU) >= cpus {
		return fmt.Errorf("percpu_cpu %d, the trace has %d CPUs", r.PercpuCPU, cpus)
	}
	if r.Kind == KindInsn && (r.Len < 1 || r.Len > 15) {
		return fmt.Errorf("instruction length %d", r.Len)
	}
	return checkSize(r.Kind, r.Size)
}

func checkSize(k Kind, size uint32) error {
	switch k {
	case KindWrite, KindPercpuRead, KindLoad:
		if size < 1 || size > 8 {
			return fmt.Errorf("%s of %d bytes (one access: 1 to 8)", Kinds[k-1].Name, size)
		}
	case KindTrap:
		if size > MaxTrapFrame {
			return fmt.Errorf("trap frame of %d bytes (at most %d)", size, MaxTrapFrame)
		}
	case KindPerm:
		if size > MaxPermPages {
			return fmt.Errorf("perm change of %d pages (at most %d)", size, MaxPermPages)
		}
	}
	return nil
}

// checkValues checks the values the schema constrains: cpu and percpu_cpu
// below the trace's CPU count, an access size of 1 to 8 bytes, an
// instruction length of 1..15, bounded trap and perm sizes.
func (r *Reader) checkValues(b *Batch) error {
	c := &b.cols
	cpus := r.meta.CPUs
	if valuesFine(c, b.n, cpus) {
		return nil
	}
	return checkValueRows(c, b.n, cpus)
}

// checkValueRows is checkValues row by row: the first row in error.
func checkValueRows(c *[NumColumns]colView, n, cpus int) error {
	for j := 0; j < n; j++ {
		if cpu := int(le16(c[ColCPU].vals, j)); cpu >= cpus {
			return fmt.Errorf("row %d: cpu %d, the trace has %d CPUs", j, cpu, cpus)
		}
		if c[ColPercpuCPU].ok(j) {
			if cpu := int(le16(c[ColPercpuCPU].vals, j)); cpu >= cpus {
				return fmt.Errorf("row %d: percpu_cpu %d, the trace has %d CPUs", j, cpu, cpus)
			}
		}
		k := Kind(c[ColKind].vals[j] + 1)
		if k == KindInsn && c[ColLen].vals != nil { // (len is not decoded when not read: see Projection)
			if l := c[ColLen].vals[j]; !c[ColLen].ok(j) || l < 1 || l > 15 {
				return fmt.Errorf("row %d: instruction length %d", j, l)
			}
		}
		if !c[ColSize].ok(j) {
			continue
		}
		if err := checkSize(k, le32(c[ColSize].vals, j)); err != nil {
			return fmt.Errorf("row %d: %w", j, err)
		}
	}
	return nil
}

// valuesFine reports whether checkValues finds nothing in the n rows of
// c, column at a time (a batch's rows in order, checked as checkValues
// checks them, cost several times as much). false: there may be an error
// (checkValues then finds the first).
func valuesFine(c *[NumColumns]colView, n, cpus int) bool {
	if cv := c[ColCPU].vals; !u16sBelow(cv[:2*n], cpus) {
		return false
	}
	// Null slots are read too: a value there out of range sends the batch
	// to the row loop, which does not read it.
	if cv := c[ColPercpuCPU].vals; cv != nil && !u16sBelow(cv[:2*n], cpus) {
		return false
	}
	kinds := c[ColKind].vals[:n]
	if lens := c[ColLen]; lens.vals != nil && !insnLensFine(kinds, lens.vals[:n], lens.valid) {
		return false
	}
	if sizes := c[ColSize]; sizes.vals != nil {
		sv := sizes.vals[:4*n]
		// Every kind takes an access of 1 to 8 bytes; the rows of a size
		// outside that, not null, are looked at one by one.
		var out uint32
		for j := range n {
			v := uint32(1)
			if sizes.valid != nil {
				v = uint32(sizes.valid[j>>3]>>(j&7)) & 1
			}
			out |= b2u32(binary.LittleEndian.Uint32(sv[4*j:])-1 > 7) & v
		}
		if out != 0 {
			for j, k := range kinds {
				if sz := binary.LittleEndian.Uint32(sv[4*j:]); sz-1 > 7 && sizes.ok(j) && checkSize(Kind(k+1), sz) != nil {
					return false
				}
			}
		}
	}
	return true
}

func b2u32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// SWAR constants: one bit in each byte of a word.
const (
	swarLow  = 0x0101010101010101
	swarHigh = 0x8080808080808080
	swar7F   = 0x7F7F7F7F7F7F7F7F
)

// zeroBytes has the high bit of each byte of x that is zero set, and no
// other bit.
func zeroBytes(x uint64) uint64 { return ^((x & swar7F) + swar7F | x | swar7F) }

// nonzeroBytes has the high bit of each byte of x that is not zero set,
// and no other bit.
func nonzeroBytes(x uint64) uint64 { return ((x & swar7F) + swar7F | x) & swarHigh }

// highBits packs the high bits of x's bytes into a byte (byte i's to bit
// i).
func highBits(x uint64) uint8 { return uint8(((x >> 7) * 0x0102040810204080) >> 56) }

// insnLensFine reports whether every insn row of kinds has a length of 1
// to 15 that is not null (valid: the length column's bitmap, nil when
// none is null), eight rows to a word.
func insnLensFine(kinds, lens, valid []byte) bool {
	n := len(kinds)
	j := 0
	for ; j+8 <= n; j += 8 {
		insn := zeroBytes(binary.LittleEndian.Uint64(kinds[j:]) ^ swarLow*uint64(KindInsn-1))
		l := binary.LittleEndian.Uint64(lens[j:])
		if insn&(zeroBytes(l)|nonzeroBytes(l&0xF0F0F0F0F0F0F0F0)) != 0 {
			return false
		}
		if valid != nil && highBits(insn)&^valid[j>>3] != 0 {
			return false
		}
	}
	for ; j < n; j++ {
		if Kind(kinds[j]+1) == KindInsn && (lens[j]-1 > 14 || valid != nil && valid[j>>3]&(1<<(j&7)) == 0) {
			return false
		}
	}
	return true
}

// u16sBelow reports whether every little-endian uint16 in b is below
// limit: when the OR of them all is (every value then is), else by the
// largest.
func u16sBelow(b []byte, limit int) bool {
	if limit > 0xFFFF {
		return true
	}
	var or uint64
	j := 0
	for ; j+32 <= len(b); j += 32 {
		or |= binary.LittleEndian.Uint64(b[j:]) | binary.LittleEndian.Uint64(b[j+8:]) |
			binary.LittleEndian.Uint64(b[j+16:]) | binary.LittleEndian.Uint64(b[j+24:])
	}
	for ; j+8 <= len(b); j += 8 {
		or |= binary.LittleEndian.Uint64(b[j:])
	}
	m := uint16(or | or>>16 | or>>32 | or>>48)
	for ; j+1 < len(b); j += 2 {
		m |= uint16(b[j]) | uint16(b[j+1])<<8
	}
	return int(m) < limit || maxU16(b) < limit
}

// maxU16 returns the largest little-endian uint16 in b.
func maxU16(b []byte) int {
	m := uint16(0)
	for j := 0; j+1 < len(b); j += 2 {
		m = max(m, uint16(b[j])|uint16(b[j+1])<<8)
	}
	return int(m)
}

// dictNames returns (and on first use records and checks) a dictionary
// column's values.
func (r *Reader) dictNames(col int, d arrow.ArrayData) ([]string, error) {
	if d == nil {
		return nil, fmt.Errorf("missing")
	}
	var cv colView
	if err := checkData(d, arrow.BinaryTypes.String, d.Len(), &cv); err != nil {
		return nil, err
	}
	if r.names[col] != nil {
		if len(r.names[col]) != d.Len() {
			return nil, fmt.Errorf("%d values, the first batch had %d", d.Len(), len(r.names[col]))
		}
		return r.names[col], nil
	}
	names := make([]string, d.Len())
	for j := range names {
		if !cv.ok(j) {
			return nil, fmt.Errorf("value %d is null", j)
		}
		names[j] = string(cv.varAt(j))
	}
	var want []string
	switch col {
	case ColKind:
		want = enumNames(kindNames())[:numKindsIn(r.version)]
	case ColCause:
		want = enumNames(Causes)
	case ColService:
		want = enumNames(Services)[:numServicesIn(r.version)]
	}
	if want != nil && !slices.Equal(names, want) {
		return nil, fmt.Errorf("values %q, want %q", names, want)
	}
	r.names[col] = names
	return names, nil
}

// checkData checks that d has the buffers an array of type t and length n
// needs, and fills cv.
func checkData(d arrow.ArrayData, t arrow.DataType, n int, cv *colView) error {
	if n < 0 || d.Len() != n || d.Offset() != 0 {
		return fmt.Errorf("length %d offset %d, want %d rows", d.Len(), d.Offset(), n)
	}
	if !arrow.TypeEqual(d.DataType(), t) {
		return fmt.Errorf("type %s, want %s", d.DataType(), t)
	}
	bufs := d.Buffers()
	blen := func(i int) int {
		if i >= len(bufs) || bufs[i] == nil {
			return 0
		}
		return bufs[i].Len()
	}
	bytesOf := func(i int, m int) []byte {
		if m == 0 {
			return nil
		}
		return bufs[i].Bytes()[:m]
	}
	bm := (n + 7) / 8
	*cv = colView{}
	if blen(0) > 0 {
		if blen(0) < bm {
			return fmt.Errorf("validity bitmap of %d bytes for %d rows", blen(0), n)
		}
		cv.valid = bytesOf(0, bm)
	} else if d.NullN() > 0 && n > 0 {
		return fmt.Errorf("%d nulls without a validity bitmap", d.NullN())
	}
	switch t := t.(type) {
	case *arrow.DictionaryType:
		w := t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
		if blen(1) < n*w {
			return fmt.Errorf("index buffer of %d bytes for %d rows", blen(1), n)
		}
		cv.vals = bytesOf(1, n*w)
	case *arrow.BooleanType:
		if blen(1) < bm {
			return fmt.Errorf("value bitmap of %d bytes for %d rows", blen(1), n)
		}
		cv.vals = bytesOf(1, bm)
	case *arrow.BinaryType, *arrow.StringType:
		if blen(1) < 4*(n+1) && !(n == 0 && blen(1) == 0) {
			return fmt.Errorf("offset buffer of %d bytes for %d rows", blen(1), n)
		}
		if n == 0 {
			return nil
		}
		cv.offs = bytesOf(1, 4*(n+1))
		cv.data = bytesOf(2, blen(2))
		prev := int32(binary.LittleEndian.Uint32(cv.offs))
		if prev < 0 {
			return fmt.Errorf("negative offset")
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
		cv.vals = bytesOf(1, n*w)
	default:
		return fmt.Errorf("unsupported type %s", t)
	}
	return nil
}

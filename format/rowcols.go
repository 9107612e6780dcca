package format

import (
	"fmt"
	"strconv"
)

// Which columns a row stores, and what they hold, follow from the column
// table alone: [Columns] says which kinds fill a column and on what
// condition; rowFields below says which Row field is the column. Stored,
// StoredRow, CopyStored and Field are built from the two, so a new column or kind is
// declared once, in [Columns], plus its field here (TestRowFields checks
// that every column has one and that StoredRow is what a reader returns).

// rowField binds column i of [Columns] to the Row: copy sets dst's field
// (and its presence flag: HasAddr, HasVector, HasErrCode, Percpu) from src;
// val is an integer column's value; text formats the others (kind, bytes,
// alias, the dictionary enums and strings).
type rowField struct {
	copy func(dst, src *Row)
	val  func(*Row) uint64
	text func(*Row) string
}

var rowFields = func() (f [NumColumns]rowField) {
	f = baseRowFields
	for i := range NumRegs {
		bit := uint32(1) << i
		f[ColRegRAX+i] = rowField{func(d, s *Row) { d.Regs[i], d.RegMask = s.Regs[i], d.RegMask|bit },
			func(r *Row) uint64 { return r.Regs[i] }, nil}
	}
	return f
}()

var baseRowFields = [NumColumns]rowField{
	ColSeq:   {func(d, s *Row) { d.Seq = s.Seq }, func(r *Row) uint64 { return r.Seq }, nil},
	ColKind:  {func(d, s *Row) { d.Kind = s.Kind }, nil, func(r *Row) string { return r.Kind.String() }},
	ColCPU:   {func(d, s *Row) { d.CPU = s.CPU }, func(r *Row) uint64 { return uint64(r.CPU) }, nil},
	ColTask:  {func(d, s *Row) { d.Task = s.Task }, func(r *Row) uint64 { return uint64(r.Task) }, nil},
	ColDepth: {func(d, s *Row) { d.Depth = s.Depth }, func(r *Row) uint64 { return uint64(r.Depth) }, nil},
	ColRIP:   {func(d, s *Row) { d.RIP = s.RIP }, func(r *Row) uint64 { return r.RIP }, nil},
	ColLen:   {func(d, s *Row) { d.Len = s.Len }, func(r *Row) uint64 { return uint64(r.Len) }, nil},
	ColBytes: {func(d, s *Row) { d.Bytes = [15]byte{}; copy(d.Bytes[:], s.Instruction()) }, nil,
		func(r *Row) string { return fmt.Sprintf("% x", r.Instruction()) }},
	ColOp:        {func(d, s *Row) { d.Op = s.Op }, func(r *Row) uint64 { return uint64(r.Op) }, nil},
	ColRSP:       {func(d, s *Row) { d.RSP = s.RSP }, func(r *Row) uint64 { return r.RSP }, nil},
	ColRFlags:    {func(d, s *Row) { d.RFlags = s.RFlags }, func(r *Row) uint64 { return r.RFlags }, nil},
	ColAddr:      {func(d, s *Row) { d.Addr, d.HasAddr = s.Addr, true }, func(r *Row) uint64 { return r.Addr }, nil},
	ColSize:      {func(d, s *Row) { d.Size = s.Size }, func(r *Row) uint64 { return uint64(r.Size) }, nil},
	ColOld:       {func(d, s *Row) { d.Old = s.Old }, func(r *Row) uint64 { return r.Old }, nil},
	ColNew:       {func(d, s *Row) { d.New = s.New }, func(r *Row) uint64 { return r.New }, nil},
	ColAlias:     {func(d, s *Row) { d.Alias = s.Alias }, nil, func(r *Row) string { return strconv.FormatBool(r.Alias) }},
	ColAliasAddr: {func(d, s *Row) { d.AliasAddr = s.AliasAddr }, func(r *Row) uint64 { return r.AliasAddr }, nil},
	ColPercpuCPU: {func(d, s *Row) { d.PercpuCPU, d.Percpu = s.PercpuCPU, true }, func(r *Row) uint64 { return uint64(r.PercpuCPU) }, nil},
	ColPercpuOff: {func(d, s *Row) { d.PercpuOff = s.PercpuOff }, func(r *Row) uint64 { return uint64(r.PercpuOff) }, nil},
	ColPercpuVar: {func(d, s *Row) { d.PercpuVar = s.PercpuVar }, nil, func(r *Row) string { return r.PercpuVar }},
	ColVector:    {func(d, s *Row) { d.Vector, d.HasVector = s.Vector, true }, func(r *Row) uint64 { return uint64(r.Vector) }, nil},
	ColHandler:   {func(d, s *Row) { d.Handler = s.Handler }, func(r *Row) uint64 { return r.Handler }, nil},
	ColIST:       {func(d, s *Row) { d.IST = s.IST }, func(r *Row) uint64 { return uint64(r.IST) }, nil},
	ColErrCode:   {func(d, s *Row) { d.ErrCode, d.HasErrCode = s.ErrCode, true }, func(r *Row) uint64 { return r.ErrCode }, nil},
	ColPermOld:   {func(d, s *Row) { d.PermOld = s.PermOld }, func(r *Row) uint64 { return uint64(r.PermOld) }, nil},
	ColPermNew:   {func(d, s *Row) { d.PermNew = s.PermNew }, func(r *Row) uint64 { return uint64(r.PermNew) }, nil},
	ColCause:     {func(d, s *Row) { d.Cause = s.Cause }, nil, func(r *Row) string { return r.Cause.String() }},
	ColService:   {func(d, s *Row) { d.Service = s.Service }, nil, func(r *Row) string { return r.Service.String() }},
	ColArg0:      {func(d, s *Row) { d.Args[0] = s.Args[0] }, func(r *Row) uint64 { return r.Args[0] }, nil},
	ColArg1:      {func(d, s *Row) { d.Args[1] = s.Args[1] }, func(r *Row) uint64 { return r.Args[1] }, nil},
	ColArg2:      {func(d, s *Row) { d.Args[2] = s.Args[2] }, func(r *Row) uint64 { return r.Args[2] }, nil},
	ColArg3:      {func(d, s *Row) { d.Args[3] = s.Args[3] }, func(r *Row) uint64 { return r.Args[3] }, nil},
	ColRet:       {func(d, s *Row) { d.Ret = s.Ret }, func(r *Row) uint64 { return r.Ret }, nil},
	ColMsg:       {func(d, s *Row) { d.Msg = s.Msg }, nil, func(r *Row) string { return strconv.Quote(r.Msg) }},
}

// conds are the conditions [Use.Cond] may name, as functions of the Row.
var conds = withRegConds(map[string]func(*Row) bool{
	"HasAddr":                   func(r *Row) bool { return r.HasAddr },
	"HasErrCode":                func(r *Row) bool { return r.HasErrCode },
	"HasVector":                 func(r *Row) bool { return r.HasVector },
	"Alias":                     func(r *Row) bool { return r.Alias },
	"Percpu":                    func(r *Row) bool { return r.Percpu },
	`Percpu && PercpuVar != ""`: func(r *Row) bool { return r.Percpu && r.PercpuVar != "" },
	`PercpuVar != ""`:           func(r *Row) bool { return r.PercpuVar != "" },
	`Msg != ""`:                 func(r *Row) bool { return r.Msg != "" },
	"Service != 0":              func(r *Row) bool { return r.Service != 0 },
})

// withRegConds adds the register columns' conditions to m.
func withRegConds(m map[string]func(*Row) bool) map[string]func(*Row) bool {
	for i := range NumRegs {
		bit := uint32(1) << i
		m[regCond(i)] = func(r *Row) bool { return r.RegMask&bit != 0 }
	}
	return m
}

// never is the condition of a Use whose Cond is not in conds (TestRowFields
// fails on one): such a column is treated as not stored.
func never(*Row) bool { return false }

// kindCond[k][i] is column i's condition for kind k (nil: stored whenever
// kindMask[k] has bit i).
var kindCond = func() (m [numKinds][NumColumns]func(*Row) bool) {
	for i, c := range Columns {
		for _, u := range c.Uses {
			if u.Cond == "" {
				continue
			}
			if f, ok := conds[u.Cond]; ok {
				m[u.Kind][i] = f
			} else {
				m[u.Kind][i] = never
			}
		}
	}
	return m
}()

// Stored reports whether column col (a Col* index) of r is stored: written
// by a [Writer] and non-null when read back. It is what [Columns] says:
// common columns always; others when r's kind is among the column's Uses and
// the use's condition holds.
func (r *Row) Stored(col int) bool {
	if !r.Kind.Valid() || col < 0 || col >= NumColumns || kindMask[r.Kind]&(1<<col) == 0 {
		return false
	}
	f := kindCond[r.Kind][col]
	return f == nil || f(r)
}

// StoredRow returns r as a [Reader] gives it back once written: the columns
// r stores (see [Row.Stored]) with their presence flags set, every other
// field zero, and the instruction bytes past Len zero. A row of an unknown
// kind keeps only the common columns. [Row.CopyStored] does the same
// without allocating.
func (r *Row) StoredRow() Row {
	var o Row
	r.CopyStored(&o)
	return o
}

// CopyStored sets *dst to [Row.StoredRow] of r (dst must not be r).
func (r *Row) CopyStored(dst *Row) {
	*dst = Row{Seq: r.Seq, Kind: r.Kind, CPU: r.CPU, Task: r.Task, Depth: r.Depth, RIP: r.RIP}
	if !r.Kind.Valid() {
		return
	}
	for _, c := range kindCopies[r.Kind] {
		if c.cond == nil || c.cond(r) {
			c.copy(dst, r)
		}
	}
}

// kindCopies[k] lists, in column order, how to copy each non-common column
// kind k fills, with its condition (nil: always).
var kindCopies = func() (m [numKinds][]struct {
	cond func(*Row) bool
	copy func(dst, src *Row)
}) {
	for k := Kind(1); k < numKinds; k++ {
		for i, c := range Columns {
			if !c.Common && kindMask[k]&(1<<i) != 0 {
				m[k] = append(m[k], struct {
					cond func(*Row) bool
					copy func(dst, src *Row)
				}{kindCond[k][i], rowFields[i].copy})
			}
		}
	}
	return m
}()

// Field formats column col of r as text: "null" when r does not store it;
// otherwise addresses and register or memory values in hex ([Column].Hex),
// counts and numbers in decimal, enums by name, the instruction bytes as
// space-separated hex and msg quoted.
func (r *Row) Field(col int) string {
	if !r.Stored(col) {
		return "null"
	}
	f := rowFields[col]
	if f.text != nil {
		return f.text(r)
	}
	if Columns[col].Hex {
		return "0x" + strconv.FormatUint(f.val(r), 16)
	}
	return strconv.FormatUint(f.val(r), 10)
}

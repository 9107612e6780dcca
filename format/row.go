package format

// Row is one event: a flat struct mirroring the columns. Which fields are
// stored (non-null) follows from Kind and the conditions in [Columns]:
// a column is null for kinds that do not use it, and an optional column is
// non-null exactly when its condition holds (Alias, Percpu, HasAddr,
// HasErrCode, HasVector, a non-empty PercpuVar or Msg). Fields that are not
// stored are ignored by the writer and zero when read back ([Row.Stored],
// [Row.StoredRow]).
type Row struct {
	Seq   uint64
	Kind  Kind
	CPU   uint16
	Task  uint32
	Depth uint8
	RIP   uint64

	Len    uint8
	Bytes  [15]byte // the first Len bytes are the instruction
	Op     uint16   // index into Meta.OpNames
	RSP    uint64
	RFlags uint64

	Addr      uint64
	HasAddr   bool // trap, fault: Addr is stored
	Size      uint32
	Old, New  uint64
	Alias     bool
	AliasAddr uint64
	Percpu    bool // write: the store hit a per-CPU area (PercpuCPU, PercpuOff, PercpuVar)
	PercpuCPU uint16
	PercpuOff uint32
	PercpuVar string // a name from Meta.PercpuVars, or "" (null)

	Vector     uint8
	HasVector  bool // fault: Vector is stored
	Handler    uint64
	IST        uint8
	ErrCode    uint64
	HasErrCode bool // trap, fault: ErrCode is stored

	PermOld, PermNew uint8
	Cause            Cause
	Service          Service
	Args             [4]uint64
	Ret              uint64
	Msg              string

	// Register deltas (version 4): bit i of RegMask set means register
	// RegNames[i] changed and Regs[i] is its value after the event
	// (column "reg_" + RegNames[i]); Regs[i] is ignored (zero when read
	// back) when the bit is clear.
	RegMask uint32
	Regs    [NumRegs]uint64
}

// Reg reports register i's delta (an index into [RegNames]): its value
// after the event, and whether the event changed it.
func (r *Row) Reg(i int) (uint64, bool) {
	if i < 0 || i >= NumRegs || r.RegMask&(1<<i) == 0 {
		return 0, false
	}
	return r.Regs[i], true
}

// Instruction returns the instruction bytes (insn rows).
func (r *Row) Instruction() []byte {
	n := int(r.Len)
	if n > len(r.Bytes) {
		n = len(r.Bytes)
	}
	return r.Bytes[:n]
}

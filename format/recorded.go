package format

import (
	"fmt"
	"strings"
)

// RecordedCheck checks a trace's rows against what its metadata says it
// records ([Meta].Loads and Regs, [KeyRecorded]): a trace whose metadata
// was rewritten claims content its rows do not hold (and a consumer that
// believes it judges loads or registers that are not there), or holds
// content its metadata denies.
//
// The evidence is the RET instruction, which always reads memory and
// moves the stack pointer (SDM Vol. 2 RET: it pops the return address,
// then releases imm16 more bytes). A recorder emits an instruction's
// loads right after its insn row, on its CPU, and the instruction's
// register deltas (rsp among them) on that row. A RET that completed is
// one whose next row on its CPU, after its loads, is the next
// instruction (a faulting RET is followed by its trap, and an interrupt
// taken after it by that; neither is judged). So when loads are
// recorded every completed RET has a load row, and when registers are,
// its rsp delta.
//
// Feed it every row in order (Add): the kind, cpu and seq of every row,
// and the op and reg_rsp columns of insn rows
// ([RecordedColumns]). Then Problem says what is wrong, if anything.
type RecordedCheck struct {
	md    *Meta
	retOp int // the op dictionary's index of RET, -1 when it has none
	cpus  []retPending

	loadRows, regRows uint64 // rows holding what the metadata may deny
	firstLoad         uint64 // seq of the first load row
	firstReg          uint64 // seq of the first row with register deltas

	noLoad, noRSP          uint64 // completed RETs without a load row, without an rsp delta
	firstNoLoad, firstNoRS uint64 // seq of the first of each
}

// retPending is a CPU's last RET while its rows are not yet judged.
type retPending struct {
	on, load, rsp bool
	seq           uint64
}

// RecordedColumns is what [RecordedCheck] reads beyond the common
// columns (of insn rows): the op, and reg_rsp (whether the metadata claims
// register deltas or denies them).
func RecordedColumns() []int { return []int{ColOp, ColRegRSP} }

// NewRecordedCheck starts a check of a trace described by md.
func NewRecordedCheck(md *Meta) *RecordedCheck {
	c := &RecordedCheck{md: md, retOp: -1, cpus: make([]retPending, max(md.CPUs, 0))}
	for i, n := range md.OpNames {
		if n == "RET" {
			c.retOp = i
			break
		}
	}
	return c
}

// rspBit is reg_rsp's bit in Row.RegMask.
const rspBit = 1 << (ColRegRSP - ColRegRAX)

// Add checks one row (rows in trace order).
func (c *RecordedCheck) Add(r *Row) {
	switch {
	case r.Kind == KindLoad:
		if c.loadRows == 0 {
			c.firstLoad = r.Seq
		}
		c.loadRows++
	case r.RegMask != 0:
		if c.regRows == 0 {
			c.firstReg = r.Seq
		}
		c.regRows++
	}
	cpu := int(r.CPU)
	if cpu >= len(c.cpus) { // past md.CPUs: CheckRow refuses such a row
		return
	}
	p := &c.cpus[cpu]
	if p.on {
		if r.Kind == KindLoad {
			p.load = true
			return
		}
		if r.Kind == KindInsn { // the RET completed: judge it
			if c.md.Loads && !p.load {
				if c.noLoad == 0 {
					c.firstNoLoad = p.seq
				}
				c.noLoad++
			}
			if c.md.Regs && !p.rsp {
				if c.noRSP == 0 {
					c.firstNoRS = p.seq
				}
				c.noRSP++
			}
		}
		p.on = false
	}
	if r.Kind == KindInsn && c.retOp >= 0 && int(r.Op) == c.retOp {
		*p = retPending{on: true, rsp: r.RegMask&rspBit != 0, seq: r.Seq}
	}
}

// Problem says how the rows contradict the metadata ("" when they do
// not, as far as the check sees).
func (c *RecordedCheck) Problem() string {
	var p []string
	rec := fmt.Sprintf("%s %q", KeyRecorded, recordedValue(c.md.Loads, c.md.Regs))
	if !c.md.Loads && c.loadRows > 0 {
		p = append(p, fmt.Sprintf("the trace holds %d load rows (the first at seq %d) but its metadata %s says it records no loads", c.loadRows, c.firstLoad, rec))
	}
	if !c.md.Regs && c.regRows > 0 {
		p = append(p, fmt.Sprintf("the trace holds %d rows with register deltas (the first at seq %d) but its metadata %s says it records none", c.regRows, c.firstReg, rec))
	}
	if c.noLoad > 0 {
		p = append(p, fmt.Sprintf("its metadata %s says it holds a load row for every data read, but %d RETs that completed have no load row of the return address they popped (the first at seq %d): loads are missing", rec, c.noLoad, c.firstNoLoad))
	}
	if c.noRSP > 0 {
		p = append(p, fmt.Sprintf("its metadata %s says it holds register deltas, but %d RETs that completed have no rsp delta though they moved the stack pointer (the first at seq %d): register deltas are missing", rec, c.noRSP, c.firstNoRS))
	}
	return strings.Join(p, "; ")
}

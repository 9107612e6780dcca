package replay

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/patchtrace/patchtrace/format"
)

// RegFile is one CPU's general registers, RSP and RFLAGS as the trace's
// register deltas say (format version 4), indexed like format.RegNames.
// Known has bit i set once register i's value is known (the CPU's start
// row sets them all).
type RegFile struct {
	Vals  [format.NumRegs]uint64
	Known uint32
}

// Apply folds r's register deltas: each register r changed takes its
// value after r (the fold rule of docs/trace-format.md).
func (f *RegFile) Apply(r *format.Row) {
	m := r.RegMask
	if m == 0 {
		return
	}
	m &= 1<<format.NumRegs - 1
	for b := m; b != 0; b &= b - 1 {
		i := bits.TrailingZeros32(b)
		f.Vals[i] = r.Regs[i]
	}
	f.Known |= m
}

// Get returns register i (an index into format.RegNames) and whether its
// value is known.
func (f *RegFile) Get(i int) (uint64, bool) {
	if i < 0 || i >= len(f.Vals) || f.Known&(1<<i) == 0 {
		return 0, false
	}
	return f.Vals[i], true
}

// regChanges renders r's register deltas against the CPU's registers
// before r: "rax 0x0 -> 0x1, rsp ..." ("rax = 0x1" when the previous value
// is not known).
func (e *EventText) regChanges(r *format.Row) string {
	if r.RegMask == 0 {
		return ""
	}
	var prev RegFile
	if int(r.CPU) < len(e.regs) {
		prev = e.regs[r.CPU]
	}
	var sb strings.Builder
	for i, name := range format.RegNames {
		v, ok := r.Reg(i)
		if !ok {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		if old, known := prev.Get(i); known {
			fmt.Fprintf(&sb, "%s %#x -> %#x", name, old, v)
		} else {
			fmt.Fprintf(&sb, "%s = %#x", name, v)
		}
	}
	return sb.String()
}

// regMaps returns r's register deltas (new values) and the previous
// values known, by register name, for JSON.
func (e *EventText) regMaps(r *format.Row) (map[string]string, map[string]string) {
	if r.RegMask == 0 {
		return nil, nil
	}
	var prev RegFile
	if int(r.CPU) < len(e.regs) {
		prev = e.regs[r.CPU]
	}
	regs, old := map[string]string{}, map[string]string{}
	for i, name := range format.RegNames {
		if v, ok := r.Reg(i); ok {
			regs[name] = hex(v)
			if o, known := prev.Get(i); known {
				old[name] = hex(o)
			}
		}
	}
	if len(old) == 0 {
		old = nil
	}
	return regs, old
}

func isLoad(r *format.Row) bool { return r.Kind == format.KindLoad }

package rerun

import (
	"encoding/binary"
	"fmt"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
	"golang.org/x/arch/x86/x86asm"
)

// FromCursor returns the state `patchtrace replay --until` prints, read
// from the trace alone at the cursor's position (after its event; no
// re-execution): every CPU's registers folded from the trace's register
// deltas, its next rip (the rip of its next event), task and trap depth,
// the top of its stack, the bytes at each must_call site and the per-CPU
// return slots, from the reconstructed memory. The trace must record
// registers (format version 4, not --no-regs). GSBase and a text_poke in
// progress are not in a trace: they are left out.
func FromCursor(c *replay.Cursor) (*State, error) {
	row, ok := c.Row()
	if !ok {
		return nil, fmt.Errorf("rerun: the cursor is before the first event")
	}
	st := c.State()
	if !st.Meta.Regs {
		return nil, fmt.Errorf("rerun: the trace does not record registers (format version %d%s)", st.Meta.Version,
			map[bool]string{true: ", recorded with --no-regs"}[st.Meta.Version >= 4])
	}
	out := &State{Events: row.Seq + 1, Stop: fmt.Sprintf("after event %d, reconstructed from the trace", row.Seq), FromTrace: true}
	syms := st.Syms
	code := func(v uint64) string {
		if st.Mem.Perm(v)&replay.PermX != 0 {
			if _, ok := syms.At(v); ok {
				return syms.Describe(v)
			}
		}
		return ""
	}
	for cpu := range st.CPUs {
		rf := c.Regs(cpu)
		var regs emu.Regs
		for i := range format.RegNames {
			v, _ := rf.Get(i)
			if i == emu.RegFlags {
				regs.RFLAGS = v
			} else {
				regs.R[emu.RegIndex[i]] = v
			}
		}
		ctx, _ := c.CPU(cpu)
		cs := CPUState{CPU: cpu, Task: ctx.Task, Depth: ctx.Depth}
		pc, ok, err := c.NextPC(cpu)
		if err != nil {
			return nil, err
		}
		switch {
		case rf.Known == 0:
			cs.Where = "not started"
		case ok:
			regs.RIP, cs.Where = pc, syms.Describe(pc)
		default:
			regs.RIP, cs.Where = ctx.RIP, syms.Describe(ctx.RIP)+" (its last event: the CPU runs no further)"
		}
		cs.Regs = regs
		for i := 0; i < StackDepth && rf.Known != 0; i++ {
			a := regs.R[emu.RSP] + uint64(8*i)
			var b [8]byte
			if !c.ReadMemory(a, b[:]) {
				break
			}
			v := binary.LittleEndian.Uint64(b[:])
			cs.Stack = append(cs.Stack, StackWord{Addr: a, Value: v, Sym: code(v)})
		}
		out.CPUs = append(out.CPUs, cs)
	}
	if st.Spec != nil {
		for _, mc := range st.Spec.Contract.MustCall {
			a, err := syms.Resolve(mc.Site)
			if err != nil {
				continue
			}
			b := make([]byte, 5)
			if !c.ReadMemory(a, b) {
				continue
			}
			ss := SiteState{Site: mc.Site, Addr: a, Bytes: b, Insn: "?"}
			if in, err := x86asm.Decode(b, 64); err == nil {
				ss.Insn = x86asm.GNUSyntax(in, a, func(t uint64) (string, uint64) {
					if s, ok := syms.At(t); ok {
						return s.Name, s.Addr
					}
					return "", 0
				})
			}
			out.Sites = append(out.Sites, ss)
		}
		for _, name := range st.Spec.Contract.ReturnSlots {
			sl := SlotState{Name: name}
			for cpu := range st.CPUs {
				var v uint64
				if a, ok := st.PercpuAddr(cpu, name); ok {
					v = st.Mem.U64(a)
				}
				sl.Values = append(sl.Values, v)
				sl.Syms = append(sl.Syms, code(v))
			}
			out.Slots = append(out.Slots, sl)
		}
	}
	return out, nil
}

package rerun

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenario"
	"golang.org/x/arch/x86/x86asm"
)

// StackDepth is how many 8-byte words of each CPU's stack a State shows.
const StackDepth = 12

// State is a snapshot of a machine: what `patchtrace replay --until`
// prints.
type State struct {
	Events uint64      `json:"events"` // events emitted up to the snapshot
	Stop   string      `json:"stop"`
	CPUs   []CPUState  `json:"cpus"`
	Sites  []SiteState `json:"must_call_sites"`
	Slots  []SlotState `json:"return_slots"`
	// FromTrace: the state was reconstructed from the trace (FromCursor),
	// not taken from a re-executed machine.
	FromTrace bool `json:"from_trace"`
}

// CPUState is one CPU's registers and the top of its stack.
type CPUState struct {
	CPU   int      `json:"cpu"`
	Task  uint32   `json:"task"`  // from the trace (FromTrace only)
	Depth uint8    `json:"depth"` // trap depth, from the trace (FromTrace only)
	Regs  emu.Regs `json:"regs"`
	Where string   `json:"where"` // RIP as symbol+offset
	// Poking says where the CPU is in a byte-granular text_poke (torn
	// fetch model), "" when it is not in one.
	Poking string      `json:"poking,omitempty"`
	Stack  []StackWord `json:"stack"`
}

// StackWord is one word on a stack; Sym is set when the value is an
// address in the slice's code (a return address, most likely).
type StackWord struct {
	Addr  uint64 `json:"addr"`
	Value uint64 `json:"value"`
	Sym   string `json:"sym,omitempty"`
}

// SiteState is the bytes at a must_call site and their decoding.
type SiteState struct {
	Site  string `json:"site"`
	Addr  uint64 `json:"addr"`
	Bytes []byte `json:"bytes"`
	Insn  string `json:"insn"`
}

// SlotState is a per-CPU return slot on every CPU.
type SlotState struct {
	Name   string   `json:"name"`
	Values []uint64 `json:"values"` // per CPU
	Syms   []string `json:"syms"`   // per CPU: the value as symbol+offset, if code
}

// Snapshot reads m's state: registers and stack per CPU, the bytes at each
// must_call site of spec's contract, and its per-CPU return slots.
func Snapshot(m *emu.Machine, spec *scenario.Spec, events uint64) *State {
	img := m.Image()
	stop, msg := m.Stopped()
	st := &State{Events: events, Stop: stop.String()}
	if msg != "" {
		st.Stop += ": " + msg
	}
	for c := 0; c < m.CPUs(); c++ {
		r := m.Regs(c)
		cs := CPUState{CPU: c, Regs: r, Where: img.Describe(r.RIP)}
		if addr, stored, n, ok := m.Poke(c); ok {
			cs.Poking = fmt.Sprintf("text_poke of %d bytes at %s: %d stored", n, img.Describe(addr), stored)
		}
		for i := 0; i < StackDepth; i++ {
			a := r.R[emu.RSP] + uint64(8*i)
			var b [8]byte
			if !m.ReadMem(a, b[:]) {
				break
			}
			v := binary.LittleEndian.Uint64(b[:])
			cs.Stack = append(cs.Stack, StackWord{Addr: a, Value: v, Sym: codeSym(img, v)})
		}
		st.CPUs = append(st.CPUs, cs)
	}
	for _, mc := range spec.Contract.MustCall {
		a, err := img.Resolve(mc.Site)
		if err != nil {
			continue
		}
		b := make([]byte, 5)
		if !m.ReadMem(a, b) {
			continue
		}
		ss := SiteState{Site: mc.Site, Addr: a, Bytes: b, Insn: "?"}
		if in, err := x86asm.Decode(b, 64); err == nil {
			ss.Insn = x86asm.GNUSyntax(in, a, func(t uint64) (string, uint64) {
				if s := img.SymbolAt(t); s != nil {
					return s.Name, s.Addr
				}
				return "", 0
			})
		}
		st.Sites = append(st.Sites, ss)
	}
	for _, name := range spec.Contract.ReturnSlots {
		sl := SlotState{Name: name}
		for c := 0; c < m.CPUs(); c++ {
			v, _ := m.PercpuU64(c, name)
			sl.Values = append(sl.Values, v)
			sl.Syms = append(sl.Syms, codeSym(img, v))
		}
		st.Slots = append(st.Slots, sl)
	}
	return st
}

// codeSym describes v when it points into the slice's executable sections.
func codeSym(img *emu.Image, v uint64) string {
	for _, s := range img.Sections {
		if s.Perm&emu.PermX != 0 && v >= s.Addr && v < s.Addr+s.Size {
			if img.SymbolAt(v) != nil {
				return img.Describe(v)
			}
		}
	}
	return ""
}

var regNames = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

// WriteText prints st for people.
func (st *State) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "state after %d events: %s\n", st.Events, st.Stop)
	for _, c := range st.CPUs {
		if st.FromTrace {
			fmt.Fprintf(w, "\ncpu%d  task %d  depth %d  rip %s  rflags %#x%s\n", c.CPU, c.Task, c.Depth, c.Where, c.Regs.RFLAGS, flagString(c.Regs.RFLAGS))
		} else {
			fmt.Fprintf(w, "\ncpu%d  rip %s  rflags %#x%s  gs %#x\n", c.CPU, c.Where, c.Regs.RFLAGS, flagString(c.Regs.RFLAGS), c.Regs.GSBase)
		}
		if c.Poking != "" {
			fmt.Fprintf(w, "  in %s\n", c.Poking)
		}
		for i := 0; i < 16; i += 4 {
			fmt.Fprintf(w, " ")
			for j := i; j < i+4; j++ {
				fmt.Fprintf(w, " %-3s %016x", regNames[j], c.Regs.R[j])
			}
			fmt.Fprintln(w)
		}
		if len(c.Stack) > 0 {
			fmt.Fprintf(w, "  stack:\n")
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, s := range c.Stack {
				fmt.Fprintf(tw, "    %#x\t%016x\t%s\n", s.Addr, s.Value, s.Sym)
			}
			tw.Flush()
		}
	}
	if len(st.Sites) > 0 {
		fmt.Fprintf(w, "\nmust_call sites:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range st.Sites {
			fmt.Fprintf(tw, "  %s\t%#x\t% x\t%s\n", s.Site, s.Addr, s.Bytes, s.Insn)
		}
		tw.Flush()
	}
	if len(st.Slots) > 0 {
		fmt.Fprintf(w, "\nper-CPU return slots:\n")
		for _, s := range st.Slots {
			var parts []string
			for c, v := range s.Values {
				p := fmt.Sprintf("cpu%d=%#x", c, v)
				if s.Syms[c] != "" {
					p += " " + s.Syms[c]
				}
				parts = append(parts, p)
			}
			fmt.Fprintf(w, "  %s: %s\n", s.Name, strings.Join(parts, ", "))
		}
	}
	return nil
}

func flagString(f uint64) string {
	var s []string
	for _, b := range []struct {
		bit  uint64
		name string
	}{{emu.FlagIF, "IF"}, {emu.FlagZF, "ZF"}, {emu.FlagCF, "CF"}, {emu.FlagSF, "SF"}, {emu.FlagOF, "OF"}, {emu.FlagDF, "DF"}} {
		if f&b.bit != 0 {
			s = append(s, b.name)
		}
	}
	if len(s) == 0 {
		return ""
	}
	return " [" + strings.Join(s, " ") + "]"
}

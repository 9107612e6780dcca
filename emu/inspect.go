package emu

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Regs is a copy of one CPU's architectural state.
type Regs struct {
	R      [16]uint64
	RIP    uint64
	RFLAGS uint64
	GSBase uint64
}

// Regs returns a copy of cpu's registers.
func (m *Machine) Regs(cpu int) Regs {
	c := m.cpus[cpu]
	return Regs{R: c.R, RIP: c.RIP, RFLAGS: c.RFLAGS, GSBase: c.GSBase}
}

// PercpuU64 reads the 8-byte per-CPU variable name in cpu's area.
func (m *Machine) PercpuU64(cpu int, name string) (uint64, bool) {
	s, ok := m.img.syms.Lookup(name)
	if !ok || !s.PerCPU || cpu < 0 || cpu >= len(m.cpus) {
		return 0, false
	}
	var b [8]byte
	if !m.mem.peek(m.cpus[cpu].GSBase+s.Addr, b[:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

// ReadMem copies memory at addr into buf without events or permission
// checks; it reports whether every byte was mapped.
func (m *Machine) ReadMem(addr uint64, buf []byte) bool { return m.mem.peek(addr, buf) }

// ReportCounters returns the per-CPU variables names lists (a scenario's
// [report] counters), in that order: each must be an 8-byte per-CPU data
// symbol of the slice.
func (img *Image) ReportCounters(names []string) ([]Symbol, error) {
	var out []Symbol
	for _, n := range names {
		s, ok := img.syms.Lookup(n)
		switch {
		case !ok:
			return nil, fmt.Errorf("report.counters: %q: no such symbol in the slice", n)
		case !s.PerCPU || s.Func:
			return nil, fmt.Errorf("report.counters: %q: not a per-CPU variable (declare it with the slice ABI's per-CPU section, docs/slice-abi.md)", n)
		case s.Size != 8:
			return nil, fmt.Errorf("report.counters: %q: %d bytes, want an 8-byte per-CPU variable", n, s.Size)
		}
		out = append(out, *s)
	}
	return out, nil
}

// Counters returns the slice's per-CPU counters: 8-byte per-CPU variables
// named *_calls, *_count or *_ticks, in address order.
func (img *Image) Counters() []Symbol {
	var out []Symbol
	for _, s := range img.Symbols {
		counter := strings.HasSuffix(s.Name, "_calls") || strings.HasSuffix(s.Name, "_count") || strings.HasSuffix(s.Name, "_ticks")
		if s.PerCPU && s.Size == 8 && !s.Func && counter {
			out = append(out, s)
		}
	}
	return out
}

// Runnable reports whether stepping cpu can do anything now: it is not
// halted, or it is halted with an NMI or an enabled interrupt to take. A
// DecisionSource outside emu uses it to choose among CPUs (explore).
func (m *Machine) Runnable(cpu int) bool { return m.cpus[cpu].runnable() }

// Poke reports cpu's byte-granular text_poke in progress (the TornWrites
// quirk): its target, how many of its n bytes are stored. The CPU's RIP is
// the text_poke stub until the last byte is stored and it returns.
func (m *Machine) Poke(cpu int) (addr uint64, stored, n int, ok bool) {
	p := m.cpus[cpu].poke
	if p == nil {
		return 0, 0, 0, false
	}
	return p.addr, p.i, len(p.buf), true
}

// QuantumCut reports whether the last decision was a step quantum that
// ended early because its CPU stored a byte of a byte-granular text_poke
// with more to come (the TornWrites quirk): the rest of the quantum was
// dropped. A source
// that replays a quantum one step at a time must drop it too to rerun the
// same run.
func (m *Machine) QuantumCut() bool { return m.cut }

// Insns returns the number of instructions retired so far, all CPUs
// together (what the instruction budget counts).
func (m *Machine) Insns() uint64 { return m.insns }

// Seq returns the number of events emitted so far.
func (m *Machine) Seq() uint64 { return m.seq }

// StateHash digests the whole machine state: every CPU's registers and
// interrupt state and every mapped page's permission and contents (FNV-1a,
// in address order). Equal runs give equal hashes.
func (m *Machine) StateHash() uint64 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	for _, c := range m.cpus {
		for _, r := range c.R {
			mix(r)
		}
		mix(c.RIP)
		mix(c.RFLAGS)
		mix(uint64(b2u(c.nmiPend)) | uint64(c.irqs)<<8 | uint64(b2u(c.nmiBlock))<<16 | uint64(b2u(c.halted))<<24 | uint64(b2u(c.done))<<32)
		mix(uint64(c.task))
		if c.SS != selKernelSS || c.DR6 != dr6Init || c.DR7 != dr7Init || c.DR != [4]uint64{} || c.dbPend || c.ssShadow {
			// Segment and debug state, mixed only when it left its reset
			// values so that hashes of runs that never touch it stay as
			// they were.
			mix(uint64(c.SS) | uint64(b2u(c.dbPend))<<16 | uint64(b2u(c.ssShadow))<<24)
			mix(c.DR6)
			mix(c.DR7)
			for _, d := range c.DR {
				mix(d)
			}
		}
	}
	for _, vpn := range m.mem.sortedVPNs() {
		p := m.mem.pages[vpn]
		mix(vpn)
		mix(uint64(p.perm))
		for _, b := range p.f.data {
			h ^= uint64(b)
			h *= 1099511628211
		}
	}
	return h
}

// PercpuSize is the size of the per-CPU section (each CPU's area).
func (img *Image) PercpuSize() uint64 { return uint64(len(img.percpu)) }

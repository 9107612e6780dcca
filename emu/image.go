package emu

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/patchtrace/patchtrace/internal/slice"
)

// Address-space layout (docs/slice-abi.md; internal/slice holds the ABI).
const (
	percpuBase   = slice.PercpuBase
	bootStackTop = slice.BootStackTop
	moduleBase   = slice.ModuleBase
	aliasBase    = slice.AliasBase
)

// GateType is an IDT gate type (SDM Vol. 3 §6.11).
type GateType uint8

const (
	GateInterrupt GateType = 0 // clears IF on delivery
	GateTrap      GateType = 1 // leaves IF alone
)

// Gate is one vector-table entry of a slice.
type Gate struct {
	Vector  Vector
	Type    GateType
	IST     uint8
	Handler uint64
}

// Section is one allocated section of the slice (the slice ABI's
// section: its pages' permission and contents).
type Section = slice.Section

// Symbol is one slice symbol. Per-CPU symbols have zero-based addresses
// (offsets into the per-CPU section). It is the slice ABI's one symbol
// type, shared with replay.
type Symbol = slice.Symbol

// Image is a parsed slice ELF, ready to be loaded into any number of
// machines. It is immutable.
type Image struct {
	Raw      []byte
	Sections []Section
	Symbols  []Symbol // sorted by (PerCPU, Addr)
	Entry    uint64   // pt_start
	gates    [256]*Gate
	percpu   []byte       // per-CPU template
	syms     *slice.Table // the symbol table (Symbols is its list)
}

// FormatError is a problem with a slice ELF.
type FormatError struct {
	File string
	Msg  string
}

func (e *FormatError) Error() string { return "slice " + e.File + ": " + e.Msg }

// ErrNotX8664 is returned (wrapped in a FormatError) for an ELF that is not
// a 64-bit x86-64 executable.
var ErrNotX8664 = slice.ErrNotX8664

// Limits on a slice ELF (RATIONALE.md, resource limits; slice.Open checks
// them before anything is allocated).
const (
	// MaxImageBytes bounds the ELF file.
	MaxImageBytes = slice.MaxImageBytes
	// MaxMappedBytes bounds the memory the loaded sections occupy, in
	// whole pages (NOBITS sections included: the machine maps them).
	MaxMappedBytes = slice.MaxMappedBytes
	// MaxPercpuBytes bounds the per-CPU section (the machine maps one copy
	// per CPU).
	MaxPercpuBytes = slice.MaxPercpuBytes
)

const percpuSection = slice.PercpuSection
const vectorSection = slice.VectorSection

// LoadImage parses a slice ELF. name is used in error messages. Any
// malformed or oversized input is a *FormatError, never a panic.
func LoadImage(name string, raw []byte) (*Image, error) {
	bad := func(format string, a ...any) error {
		return &FormatError{File: name, Msg: fmt.Sprintf(format, a...)}
	}
	e, err := slice.Open(raw)
	if err != nil {
		return nil, bad("%v", err)
	}
	img := &Image{Raw: raw, Sections: e.Sections, percpu: e.Percpu}
	syms, err := e.Symbols()
	if err != nil {
		return nil, bad("%v", err)
	}
	img.syms = slice.NewTable(syms).WithLines(e.Lines())
	img.Symbols = img.syms.Symbols()
	start, ok := img.syms.Lookup("pt_start")
	if !ok || start.PerCPU {
		return nil, bad("no pt_start symbol (the boot entry every CPU starts at)")
	}
	img.Entry = start.Addr
	if err := img.parseVectors(e, name); err != nil {
		return nil, err
	}
	return img, nil
}

func (img *Image) parseVectors(e *slice.ELF, name string) error {
	if !e.HasVectors {
		return &FormatError{File: name, Msg: "no " + vectorSection + " section (the vector table)"}
	}
	data := e.Vectors
	if len(data)%slice.VectorEntrySize != 0 {
		return &FormatError{File: name, Msg: fmt.Sprintf("%s: %d bytes, want a multiple of %d", vectorSection, len(data), slice.VectorEntrySize)}
	}
	for i := 0; i < len(data); i += slice.VectorEntrySize {
		g := &Gate{Vector: Vector(data[i]), Type: GateType(data[i+1]), IST: data[i+2], Handler: binary.LittleEndian.Uint64(data[i+8:])}
		if g.Type > GateTrap || g.IST > slice.MaxIST {
			return &FormatError{File: name, Msg: fmt.Sprintf("%s entry %d (vector %d): bad type %d or IST %d", vectorSection, i/16, g.Vector, g.Type, g.IST)}
		}
		if img.gates[g.Vector] != nil {
			return &FormatError{File: name, Msg: fmt.Sprintf("%s: vector %d defined twice", vectorSection, g.Vector)}
		}
		img.gates[g.Vector] = g
	}
	return nil
}

// Gate returns the vector-table entry for v, or nil.
func (img *Image) Gate(v Vector) *Gate { return img.gates[v] }

// Bytes returns the image's bytes at [addr, addr+n) as loaded, before any
// run, or nil when no section with contents holds all of them.
func (img *Image) Bytes(addr, n uint64) []byte {
	for _, s := range img.Sections {
		if s.Data != nil && addr >= s.Addr && n <= s.Size && addr-s.Addr <= s.Size-n {
			return s.Data[addr-s.Addr : addr-s.Addr+n]
		}
	}
	return nil
}

// Lookup returns the symbol named name.
func (img *Image) Lookup(name string) (*Symbol, bool) { return img.syms.Lookup(name) }

// Resolve evaluates "file.c:LINE" (the line's first instruction, from the
// slice's DWARF line table), "symbol", "symbol+off" or a number to an
// address (slice.Table.Resolve).
func (img *Image) Resolve(expr string) (uint64, error) { return img.syms.Resolve(expr) }

// Describe renders addr as "symbol+0xoff", or hex when no symbol contains
// it (slice.Table.Describe: the form Resolve reads back, and the one the
// analyzers print from a trace).
func (img *Image) Describe(addr uint64) string { return img.syms.Describe(addr) }

// Line names addr as "file:line" from the slice's DWARF line table, or ""
// when the table does not cover it (or the slice has none).
func (img *Image) Line(addr uint64) string { return img.syms.Line(addr) }

// SymbolAt returns the non-per-CPU symbol containing addr (or the nearest
// label below it, slice.Table.At), or nil.
func (img *Image) SymbolAt(addr uint64) *Symbol {
	s, _ := img.syms.At(addr)
	return s
}

// pagesHint estimates the pages a machine of cpus CPUs maps at boot: the
// sections, each CPU's per-CPU area and boot stack.
func (img *Image) pagesHint(cpus int) int {
	n := 0
	for _, s := range img.Sections {
		if s.Size == 0 {
			continue
		}
		n += int((s.Addr+s.Size-1)>>pageShift-s.Addr>>pageShift) + 1
	}
	lo, top := slice.BootStack(0)
	per := int((uint64(len(img.percpu))+pageMask)>>pageShift) + int((top-lo)>>pageShift)
	return n + cpus*per
}

// load maps the image into m and prepares every CPU's boot state.
func (m *Machine) load() error {
	img := m.img
	for _, s := range img.Sections {
		first, last := s.Addr>>pageShift, (s.Addr+s.Size-1)>>pageShift
		var ps []page // one allocation for the section's mappings
		for vpn := first; vpn <= last; vpn++ {
			if m.mem.page(vpn) == nil {
				if ps == nil {
					ps = make([]page, last-vpn+1)
				}
				p := &ps[vpn-(last+1-uint64(len(ps)))]
				*p = page{f: &zeroFrame, vpn: vpn, perm: s.Perm, cow: true}
				if s.Perm&PermX != 0 {
					p.own()
				}
				m.mem.pages[vpn] = p
				m.mem.gen++
			}
		}
		if s.Data != nil {
			m.mem.poke(s.Addr, s.Data)
		}
	}
	for sv := SvcTextPoke; sv < maxServices; sv++ {
		if s, ok := img.syms.Lookup(serviceSymbols[sv]); ok && !s.PerCPU {
			m.natives[s.Addr] = sv
		}
	}
	// Per-CPU areas.
	m.percpuSize = uint64(len(img.percpu))
	if m.percpuSize > 0 {
		m.percpuStrd = slice.PercpuStride(m.percpuSize)
		for i, c := range m.cpus {
			base := percpuBase + uint64(i)*m.percpuStrd
			m.bootMap(c, base, int((m.percpuSize+pageMask)>>pageShift), PermRW)
			m.bootPoke(c, base, img.percpu)
			c.GSBase = base
			if s, ok := img.syms.Lookup("this_cpu_off"); ok && s.PerCPU {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], base)
				m.bootPoke(c, base+s.Addr, b[:])
			}
		}
		m.percpuLo = percpuBase
		m.percpuSpan = uint64(len(m.cpus)) * m.percpuStrd
	}
	// Boot stacks and registers.
	for i, c := range m.cpus {
		lo, top := slice.BootStack(i)
		m.bootMap(c, lo, int((top-lo)>>pageShift), PermRW)
		c.R[RSP] = top
		c.R[RDI] = uint64(i)
		c.R[RSI] = uint64(len(m.cpus))
		c.RIP = img.Entry
		c.RFLAGS = flagRes1
	}
	if err := m.writeBootParams(); err != nil {
		return err
	}
	// Declared per-CPU slots whose loads are recorded.
	if len(m.cfg.PercpuSlots) > 0 {
		m.percpuSlots = make([]bool, m.percpuSize)
		for _, name := range m.cfg.PercpuSlots {
			s, ok := img.syms.Lookup(name)
			if !ok || !s.PerCPU {
				return fmt.Errorf("per-CPU slot %q: no such per-CPU symbol in the slice", name)
			}
			size := s.Size
			if size == 0 {
				size = 8
			}
			for o := s.Addr; o < s.Addr+size && o < m.percpuSize; o++ {
				m.percpuSlots[o] = true
			}
		}
		// With every load recorded, a read of a slot is a load event
		// (with the per-CPU fields): percpu_read is for runs without.
		m.watchReads = m.percpuSize > 0 && !m.loads
	}
	// Injection rules.
	m.hits = make([]uint64, len(m.cfg.Inject))
	for i := range m.cfg.Inject {
		r := &m.cfg.Inject[i]
		if r.CPU < 0 || r.CPU >= len(m.cpus) {
			return fmt.Errorf("inject rule %d: cpu %d: the machine has %d CPUs", i+1, r.CPU, len(m.cpus))
		}
		a, err := img.Resolve(r.At)
		if err != nil {
			return fmt.Errorf("inject rule %d: %w", i+1, err)
		}
		r.addr = a
		m.watches[a] = append(m.watches[a], i)
	}
	return nil
}

// writeBootParams fills pt_ncpus, pt_boot_tasks and the scenario's params.
func (m *Machine) writeBootParams() error {
	img := m.img
	put := func(name string, off uint64, v uint64) error {
		s, ok := img.syms.Lookup(name)
		if !ok || s.PerCPU {
			return fmt.Errorf("slice has no symbol %q", name)
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if !m.bootPoke(m.cpus[0], s.Addr+off, b[:]) {
			return fmt.Errorf("symbol %q at %#x is not mapped", name, s.Addr)
		}
		return nil
	}
	if _, ok := img.syms.Lookup("pt_ncpus"); ok {
		if err := put("pt_ncpus", 0, uint64(len(m.cpus))); err != nil {
			return err
		}
	}
	if len(m.cfg.Tasks) > 0 {
		s, ok := img.syms.Lookup("pt_boot_tasks")
		if !ok {
			return fmt.Errorf("scenario has tasks but the slice has no pt_boot_tasks symbol")
		}
		if s.Size != 0 && uint64(len(m.cfg.Tasks))*32 > s.Size {
			return fmt.Errorf("scenario has %d tasks; pt_boot_tasks holds %d", len(m.cfg.Tasks), s.Size/32)
		}
		for i, t := range m.cfg.Tasks {
			if t.CPU < 0 || t.CPU >= len(m.cpus) {
				return fmt.Errorf("task %d (%s): cpu %d: the machine has %d CPUs", t.ID, t.Entry, t.CPU, len(m.cpus))
			}
			entry, err := img.Resolve(t.Entry)
			if err != nil {
				return fmt.Errorf("task %d: %w", t.ID, err)
			}
			base := uint64(i) * 32
			for j, v := range []uint64{t.ID, uint64(t.CPU), entry, t.Arg} {
				if err := put("pt_boot_tasks", base+uint64(j)*8, v); err != nil {
					return err
				}
			}
		}
		if err := put("pt_boot_ntasks", 0, uint64(len(m.cfg.Tasks))); err != nil {
			return err
		}
	}
	for _, p := range m.cfg.Params {
		s, ok := img.syms.Lookup(p.Name)
		if !ok {
			return fmt.Errorf("param %q: no such symbol in the slice", p.Name)
		}
		if s.PerCPU || (s.Size != 0 && s.Size != 8) {
			return fmt.Errorf("param %q: symbol is %d bytes%s; params must be 8-byte globals", p.Name, s.Size, map[bool]string{true: " (per-CPU)"}[s.PerCPU])
		}
		if pg := m.mem.page(s.Addr >> pageShift); pg == nil || pg.perm&PermW == 0 {
			return fmt.Errorf("param %q: symbol at %#x is not in a writable section", p.Name, s.Addr)
		}
		if err := put(p.Name, 0, p.Value); err != nil {
			return err
		}
	}
	return nil
}

// istTop reads IST pointer n from c's per-CPU cpu_tss_ist array.
func (m *Machine) istTop(c *CPU, n uint8) (uint64, bool) {
	s, ok := m.img.syms.Lookup(slice.ISTSymbol)
	if !ok || !s.PerCPU {
		return 0, false
	}
	var b [8]byte
	if !m.mem.peek(c.GSBase+s.Addr+8*uint64(n), b[:]) {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(b[:])
	return v, v != 0
}

// Error is an emulator failure at a point in the guest: the run cannot go
// on (an unsupported instruction, a broken slice).
type Error struct {
	CPU   int
	RIP   uint64
	Where string // symbol+offset
	Bytes []byte
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("cpu%d at %s: %v", e.CPU, e.Where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func (m *Machine) wrapErr(c *CPU, err error) error {
	e := &Error{CPU: c.ID, RIP: c.RIP, Where: m.img.Describe(c.RIP), Err: err}
	var u *UnsupportedError
	if errors.As(err, &u) {
		e.Bytes = u.Bytes
	}
	return e
}

// bootWrite and bootMapping are what the machine does to memory before the
// first instruction; Run records them as the first events of a trace, so a
// replay of the trace alone reconstructs memory exactly.
type bootWrite struct {
	cpu  *CPU
	addr uint64
	data []byte
}

type bootMapping struct {
	cpu   *CPU
	addr  uint64
	pages int
	perm  Perm
}

func (m *Machine) bootPoke(c *CPU, addr uint64, data []byte) bool {
	if !m.mem.poke(addr, data) {
		return false
	}
	m.boot = append(m.boot, bootWrite{c, addr, append([]byte(nil), data...)})
	return true
}

func (m *Machine) bootMap(c *CPU, addr uint64, pages int, perm Perm) {
	m.mem.mapNew(addr, pages, perm)
	m.bootMaps = append(m.bootMaps, bootMapping{c, addr, pages, perm})
}

// emitBoot records the boot mappings (perm events) and the non-zero boot
// stores (write events, 8 bytes at a time).
func (m *Machine) emitBoot() {
	for _, bm := range m.bootMaps {
		e := bm.cpu.event(EvPerm)
		e.Addr, e.Size, e.PermOld, e.PermNew = bm.addr, uint32(bm.pages), 0, bm.perm
		m.emit(bm.cpu, e)
	}
	for _, bw := range m.boot {
		for off := 0; off < len(bw.data); off += 8 {
			chunk := bw.data[off:min(off+8, len(bw.data))]
			var v uint64
			for i, b := range chunk {
				v |= uint64(b) << (8 * i)
			}
			if v == 0 {
				continue
			}
			e := bw.cpu.event(EvWrite)
			e.Addr, e.Size, e.New = bw.addr+uint64(off), uint32(len(chunk)), v
			m.tagPercpu(e, e.Addr)
			m.emit(bw.cpu, e)
		}
	}
	m.boot, m.bootMaps = nil, nil
}

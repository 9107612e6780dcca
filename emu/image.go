package emu

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/internal/slice"
)

// Address-space layout (docs/slice-abi.md).
const (
	percpuBase   uint64 = 0xffff888000000000
	bootStackTop uint64 = 0xffffc90000000000
	bootStackGap uint64 = 0x10000
	bootStackLen uint64 = 0x4000
	moduleBase   uint64 = 0xffffffffa0000000
	aliasBase    uint64 = 0xffffe00000000000
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

// Section is one allocated section of the slice.
type Section struct {
	Name string
	Addr uint64
	Size uint64
	Perm Perm
	Data []byte // nil for NOBITS
}

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
var ErrNotX8664 = errors.New("not an x86-64 ELF executable")

// Limits on a slice ELF (RATIONALE.md, resource limits). They are checked
// before anything is allocated, so a small hostile file (a 1 TiB NOBITS
// per-CPU section, a 1 GiB .bss) costs nothing; the built-in slices are
// ~35 KB files mapping ~3 MiB.
const (
	// MaxImageBytes bounds the ELF file.
	MaxImageBytes = 64 << 20
	// MaxMappedBytes bounds the memory the loaded sections occupy, in
	// whole pages (NOBITS sections included: the machine maps them).
	MaxMappedBytes = 64 << 20
	// MaxPercpuBytes bounds the per-CPU section (the machine maps one copy
	// per CPU).
	MaxPercpuBytes = 1 << 20
)

// reserved are the address ranges the machine itself maps (docs/slice-abi.md,
// Memory layout): a slice section there would be mapped over.
var reserved = []struct {
	name   string
	lo, hi uint64 // [lo, hi)
}{
	{"the per-CPU areas", percpuBase, percpuBase + MaxCPUs*(MaxPercpuBytes+2*pageSize)},
	{"the boot stacks", bootStackTop, bootStackTop + MaxCPUs*bootStackGap},
	{"the text-poke alias", aliasBase, aliasBase + 4*pageSize},
	{"the module_alloc area", moduleBase, 0xffffffffff000000},
}

const percpuSection = slice.PercpuSection
const vectorSection = ".pt.vectors"

// LoadImage parses a slice ELF. name is used in error messages. Any
// malformed or oversized input is a *FormatError, never a panic.
func LoadImage(name string, raw []byte) (img *Image, err error) {
	bad := func(format string, a ...any) error {
		return &FormatError{File: name, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case len(raw) == 0:
		return nil, bad("empty file (0 bytes): not an ELF file")
	case len(raw) > MaxImageBytes:
		return nil, bad("%d bytes: a slice may have at most %d", len(raw), MaxImageBytes)
	}
	defer func() {
		// debug/elf is not promised to be panic-free on hostile input.
		if r := recover(); r != nil {
			img, err = nil, bad("malformed ELF (the parser failed: %v)", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, bad("not an ELF file: %v", err)
	}
	switch {
	case f.Class != elf.ELFCLASS64:
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("%v: a 32-bit ELF (class %v, machine %v); slices are 64-bit x86-64 executables", ErrNotX8664, f.Class, f.Machine)}
	case f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC:
		return nil, &FormatError{File: name, Msg: fmt.Sprintf("%v (class %v, machine %v, type %v)", ErrNotX8664, f.Class, f.Machine, f.Type)}
	}
	if err := checkSections(f); err != nil {
		return nil, bad("%v", err)
	}
	img = &Image{Raw: raw}
	var percpuIdx = -1
	for i, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if s.Name == percpuSection {
			percpuIdx = i
			if s.Type == elf.SHT_NOBITS {
				img.percpu = make([]byte, s.Size)
			} else if img.percpu, err = s.Data(); err != nil {
				return nil, bad("section %s: %v", s.Name, err)
			}
			continue
		}
		perm := PermR
		if s.Flags&elf.SHF_WRITE != 0 {
			perm |= PermW
		}
		if s.Flags&elf.SHF_EXECINSTR != 0 {
			perm |= PermX
		}
		sec := Section{Name: s.Name, Addr: s.Addr, Size: s.Size, Perm: perm}
		if s.Type != elf.SHT_NOBITS {
			if sec.Data, err = s.Data(); err != nil {
				return nil, bad("section %s: %v", s.Name, err)
			}
		}
		img.Sections = append(img.Sections, sec)
	}
	// No page may be shared by sections with different permissions
	// (checkSections bounded the pages).
	pagePerm := map[uint64]Perm{}
	for _, s := range img.Sections {
		for vpn := s.Addr >> pageShift; vpn <= (s.Addr+s.Size-1)>>pageShift; vpn++ {
			if p, ok := pagePerm[vpn]; ok && p != s.Perm {
				return nil, bad("section %s shares page %#x with a section of different permissions (%v vs %v): align sections to 4 KiB", s.Name, vpn<<pageShift, s.Perm, p)
			}
			pagePerm[vpn] = s.Perm
		}
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, bad("no symbol table: %v", err)
	}
	for _, s := range syms {
		if s.Name == "" || elf.ST_TYPE(s.Info) == elf.STT_SECTION || elf.ST_TYPE(s.Info) == elf.STT_FILE {
			continue
		}
		if s.Section == elf.SHN_UNDEF || s.Section == elf.SHN_ABS && !strings.HasPrefix(s.Name, "__") {
			continue
		}
		sym := Symbol{Name: s.Name, Addr: s.Value, Size: s.Size, Func: elf.ST_TYPE(s.Info) == elf.STT_FUNC}
		if int(s.Section) < len(f.Sections) && s.Section < elf.SHN_LORESERVE {
			sym.Section = f.Sections[s.Section].Name
			sym.PerCPU = int(s.Section) == percpuIdx
		}
		img.Symbols = append(img.Symbols, sym)
	}
	img.syms = slice.NewTable(img.Symbols)
	img.Symbols = img.syms.Symbols()
	start, ok := img.syms.Lookup("pt_start")
	if !ok || start.PerCPU {
		return nil, bad("no pt_start symbol (the boot entry every CPU starts at)")
	}
	img.Entry = start.Addr
	if err := img.parseVectors(f, name); err != nil {
		return nil, err
	}
	return img, nil
}

// checkSections bounds and places the allocated sections before any is
// read or mapped: sizes within the limits, no address range wrapping or
// overlapping another section (the later one's bytes silently replaced the
// earlier's, and the guest panicked far from the cause) or a range the
// machine maps itself.
func checkSections(f *elf.File) error {
	type span struct {
		name   string
		lo, hi uint64 // [lo, hi)
	}
	var spans []span
	var pages uint64
	percpu := false
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if s.Name == percpuSection {
			if percpu {
				return fmt.Errorf("two %s sections", percpuSection)
			}
			percpu = true
			if s.Size > MaxPercpuBytes {
				return fmt.Errorf("section %s: %d bytes; a per-CPU section may have at most %d (the machine maps one per CPU)", s.Name, s.Size, MaxPercpuBytes)
			}
			continue
		}
		if s.Size > MaxMappedBytes {
			return fmt.Errorf("section %s: %d bytes; the loaded sections may occupy at most %d", s.Name, s.Size, MaxMappedBytes)
		}
		if s.Addr+s.Size < s.Addr || s.Addr+s.Size == 0 {
			return fmt.Errorf("section %s at %#x, %d bytes: wraps past the end of the address space", s.Name, s.Addr, s.Size)
		}
		hi := s.Addr + s.Size
		pages += (hi-1)>>pageShift - s.Addr>>pageShift + 1
		if pages > MaxMappedBytes>>pageShift {
			return fmt.Errorf("the loaded sections occupy more than %d bytes (at section %s)", MaxMappedBytes, s.Name)
		}
		for _, r := range reserved {
			if s.Addr < r.hi && r.lo < hi {
				return fmt.Errorf("section %s [%#x, %#x) overlaps %s [%#x, %#x) the machine maps itself (docs/slice-abi.md)", s.Name, s.Addr, hi, r.name, r.lo, r.hi)
			}
		}
		spans = append(spans, span{s.Name, s.Addr, hi})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if a, b := spans[i-1], spans[i]; b.lo < a.hi {
			return fmt.Errorf("sections %s [%#x, %#x) and %s [%#x, %#x) overlap", a.name, a.lo, a.hi, b.name, b.lo, b.hi)
		}
	}
	return nil
}

func (img *Image) parseVectors(f *elf.File, name string) error {
	s := f.Section(vectorSection)
	if s == nil {
		return &FormatError{File: name, Msg: "no " + vectorSection + " section (the vector table)"}
	}
	data, err := s.Data()
	if err != nil || len(data)%16 != 0 {
		return &FormatError{File: name, Msg: fmt.Sprintf("%s: %d bytes, want a multiple of 16 (%v)", vectorSection, len(data), err)}
	}
	for i := 0; i < len(data); i += 16 {
		g := &Gate{Vector: Vector(data[i]), Type: GateType(data[i+1]), IST: data[i+2], Handler: binary.LittleEndian.Uint64(data[i+8:])}
		if g.Type > GateTrap || g.IST > 7 {
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

// Resolve evaluates "symbol", "symbol+off" or a number to an address
// (slice.Table.Resolve).
func (img *Image) Resolve(expr string) (uint64, error) { return img.syms.Resolve(expr) }

// Describe renders addr as "symbol+0xoff", or hex when no symbol contains
// it (slice.Table.Describe: the form Resolve reads back, and the one the
// analyzers print from a trace).
func (img *Image) Describe(addr uint64) string { return img.syms.Describe(addr) }

// SymbolAt returns the non-per-CPU symbol containing addr (or the nearest
// label below it, slice.Table.At), or nil.
func (img *Image) SymbolAt(addr uint64) *Symbol {
	s, _ := img.syms.At(addr)
	return s
}

// load maps the image into m and prepares every CPU's boot state.
func (m *Machine) load() error {
	img := m.img
	for _, s := range img.Sections {
		first, last := s.Addr>>pageShift, (s.Addr+s.Size-1)>>pageShift
		for vpn := first; vpn <= last; vpn++ {
			if m.mem.page(vpn) == nil {
				m.mem.mapFrame(vpn, new(frame), s.Perm, false)
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
		m.percpuStrd = (m.percpuSize+pageMask)&^pageMask + pageSize
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
		top := bootStackTop + uint64(i)*bootStackGap + bootStackLen
		m.bootMap(c, top-bootStackLen, int(bootStackLen>>pageShift), PermRW)
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
		m.watchReads = m.percpuSize > 0
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
	s, ok := m.img.syms.Lookup("cpu_tss_ist")
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

// Package replay reads a trace back as an ordered event stream and keeps the
// machine state the events imply: memory contents (the slice image plus every
// recorded store), page permissions, per-CPU context (task, trap depth, last
// serialization), and the symbol table. Memory grows with the pages a run
// touches, never with the number of events, so a trace of any length is
// replayed in bounded memory.
//
// The stream is format.Row values, whether they come from a trace file
// (FromReader) or straight from a running machine (the recorder's rows):
// analyzers see the same thing in both cases.
//
// # Random access: Cursor
//
// A [Cursor] is a seekable position in a trace file with the state there,
// reconstructed from the trace alone (no re-execution, no scenario
// directory): what a debugger over a recorded run needs.
//
//	c, err := replay.NewCursor(r, nil)   // r: a *format.Reader; before the first event
//	err = c.Seek(seq)                    // after the last event with Seq <= seq
//	row, ok := c.Row()                   // that event
//	rf := c.Regs(cpu)                    // registers: rf.Get(i), i indexing format.RegNames
//	pc, ok, err := c.NextPC(cpu)         // where cpu executes next
//	cpuCtx, _ := c.CPU(cpu)              // task, trap depth, rip of its last event
//	ok = c.ReadMemory(addr, buf)         // memory as it was there (text as patched)
//	ok, err = c.Next() / c.Prev()        // one event forwards / backwards
//	err = c.Scan(fn) / c.ScanBack(fn)    // watchpoint and breakpoint searches,
//	                                     // batch by batch, without moving
//	err = c.Index(progress)              // take every snapshot up front
//
// Seeking costs the events between the target and the nearest earlier
// snapshot: the cursor keeps the state at batch boundaries (memory pages
// shared copy-on-write between snapshots), within a memory bound
// ([CursorLimit], SetLimit) that thins them as a trace grows. Register
// values come from the register deltas of format version 4 (RegFile.Known
// says which are known; a trace recorded with --no-regs has none).
// EventText renders events as `patchtrace events` prints them.
package replay

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/scenario"
)

// Permission bits as the trace stores them (slice.Perm's).
const (
	PermR = uint8(slice.PermR)
	PermW = uint8(slice.PermW)
	PermX = uint8(slice.PermX)
)

const pageShift = slice.PageShift
const pageSize = slice.PageSize

// Symbols is a trace's symbol table: the slice ABI's one table
// (slice.Table), over the symbols the trace carries.
type Symbols struct {
	t *slice.Table
}

// IsEntry reports whether addr is the first byte of a sized symbol.
func (s *Symbols) IsEntry(addr uint64) bool { return s.t.IsEntry(addr) }

// NewSymbols indexes syms (per-CPU symbols are those of the per-CPU
// section).
func NewSymbols(syms []format.Symbol) *Symbols {
	ss := make([]slice.Symbol, len(syms))
	for i, sym := range syms {
		ss[i] = slice.Symbol{Name: format.Printable(sym.Name), Addr: sym.Addr, Size: sym.Size, Section: sym.Section, PerCPU: sym.Section == slice.PercpuSection}
	}
	return &Symbols{t: slice.NewTable(ss)}
}

// MetaSymbols is the symbol table of a trace's metadata together with
// the DWARF line table of the slice ELF it carries (Line names addresses
// file:line; without a readable ELF or line table it names none).
func MetaSymbols(md *format.Meta) *Symbols {
	s := NewSymbols(md.Symbols)
	if e, err := slice.Open(md.ELF); err == nil {
		s = &Symbols{t: s.t.WithLines(e.Lines())}
	}
	return s
}

func toFormat(s *slice.Symbol) format.Symbol {
	return format.Symbol{Name: s.Name, Addr: s.Addr, Size: s.Size, Section: s.Section}
}

// Lookup finds a symbol by name.
func (s *Symbols) Lookup(name string) (format.Symbol, bool) {
	if sym, ok := s.t.Lookup(name); ok {
		return toFormat(sym), true
	}
	return format.Symbol{}, false
}

// Resolve evaluates "file.c:LINE", "symbol", "symbol+off" or a number
// (slice.Table.Resolve; a file:line needs the line table of the trace's
// ELF, which NewState reads).
func (s *Symbols) Resolve(expr string) (uint64, error) { return s.t.Resolve(expr) }

// At returns the symbol containing addr, or false (slice.Table.At).
func (s *Symbols) At(addr uint64) (format.Symbol, bool) {
	if sym, ok := s.t.At(addr); ok {
		return toFormat(sym), true
	}
	return format.Symbol{}, false
}

// PercpuAt returns the per-CPU variable containing offset off of a per-CPU
// area, or false (slice.Table.PercpuAt).
func (s *Symbols) PercpuAt(off uint64) (format.Symbol, bool) {
	if sym, ok := s.t.PercpuAt(off); ok {
		return toFormat(sym), true
	}
	return format.Symbol{}, false
}

// Describe renders addr as "symbol+0xoff", or hex when no symbol covers it
// (slice.Table.Describe).
func (s *Symbols) Describe(addr uint64) string { return s.t.Describe(addr) }

// Line names addr as "file:line" from the line table of the trace's slice
// ELF, or "" when it does not cover addr (or the slice has none). The file
// name comes from the trace: it is kept printable (format.Printable), as
// symbol names are.
func (s *Symbols) Line(addr uint64) string { return format.Printable(s.t.Line(addr)) }

// Page is one page of reconstructed memory.
type Page struct {
	Data [pageSize]byte
	// shared marks a Template's page: States made from the template read
	// it in place and copy it on their first store (Memory.page).
	shared bool
}

// Memory is the reconstructed address space: the contents of the pages
// loaded or written (a page exists once a byte of it is), and the page
// permissions as ranges, so that mapping or protecting a large range (a
// NOBITS section, a perm event of many pages) costs nothing per page.
type Memory struct {
	pages   map[uint64]*Page
	perms   []permSpan // sorted, not overlapping; pages outside have no permissions
	scratch *Page      // where stores go beyond MaxPages (see State.Err)
	// The last pages looked up (direct-mapped by page number) and the
	// last two permission spans hit (the code an instruction runs from
	// and the data it reads or writes), so that the run of accesses to
	// one stack or code page costs no map lookup or search. A Memory shared between
	// goroutines (a Template's Image) keeps none (noCache).
	cache    [pageCacheN]cachedPage
	lastSpan [2]int
	noCache  bool
	copies   int // pages copied on write so far (Cursor's memory bound)
}

// pageCacheN is the number of cached page lookups (a power of two).
const pageCacheN = 8

// cachedPage is a page number with its entry in pages (p nil: none).
type cachedPage struct {
	vpn uint64
	p   *Page
}

// freeze makes m's current contents immutable and returns a copy of it
// that shares every page: later stores to m, or to a copy made by
// thaw, copy the page first.
func (m *Memory) freeze() *Memory {
	for _, p := range m.pages {
		p.shared = true
	}
	return m.thaw()
}

// thaw returns a memory sharing m's pages (which must be frozen).
func (m *Memory) thaw() *Memory {
	return &Memory{pages: maps.Clone(m.pages), perms: slices.Clone(m.perms), scratch: m.scratch}
}

// permSpan gives the pages [lo, hi) the permissions perm.
type permSpan struct {
	lo, hi uint64
	perm   uint8
}

// Page returns the page holding addr, or nil if none of its bytes was
// loaded or written.
func (m *Memory) Page(addr uint64) *Page { return m.lookup(addr >> pageShift) }

// lookup returns page vpn, or nil.
func (m *Memory) lookup(vpn uint64) *Page {
	c := &m.cache[vpn&(pageCacheN-1)]
	if c.p != nil && c.vpn == vpn {
		return c.p
	}
	p := m.pages[vpn]
	if p != nil && !m.noCache {
		*c = cachedPage{vpn, p}
	}
	return p
}

// Perm returns the permission of addr's page (0 if unmapped).
func (m *Memory) Perm(addr uint64) uint8 {
	vpn := addr >> pageShift
	if i := m.lastSpan[0]; i < len(m.perms) && m.perms[i].lo <= vpn && vpn < m.perms[i].hi {
		return m.perms[i].perm
	}
	if i := m.lastSpan[1]; i < len(m.perms) && m.perms[i].lo <= vpn && vpn < m.perms[i].hi {
		return m.perms[i].perm
	}
	lo, hi := 0, len(m.perms) // the first span that ends above vpn
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if m.perms[h].hi > vpn {
			hi = h
		} else {
			lo = h + 1
		}
	}
	if lo < len(m.perms) && m.perms[lo].lo <= vpn {
		if !m.noCache {
			m.lastSpan[0], m.lastSpan[1] = lo, m.lastSpan[0]
		}
		return m.perms[lo].perm
	}
	return 0
}

// Mapped calls fn for each range of n pages from vpn that have the same
// permissions perm (non-zero), in address order.
func (m *Memory) Mapped(fn func(vpn, n uint64, perm uint8)) {
	for _, s := range m.perms {
		fn(s.lo, s.hi-s.lo, s.perm)
	}
}

// setPerm gives the n pages from vpn the permissions perm.
func (m *Memory) setPerm(vpn, n uint64, perm uint8) {
	hi := vpn + n
	if hi < vpn {
		hi = ^uint64(0)
	}
	i := sort.Search(len(m.perms), func(i int) bool { return m.perms[i].hi > vpn })
	j := i
	for j < len(m.perms) && m.perms[j].lo < hi {
		j++
	}
	var repl []permSpan
	if i < j && m.perms[i].lo < vpn {
		repl = append(repl, permSpan{m.perms[i].lo, vpn, m.perms[i].perm})
	}
	if perm != 0 {
		repl = append(repl, permSpan{vpn, hi, perm})
	}
	if i < j && m.perms[j-1].hi > hi {
		repl = append(repl, permSpan{hi, m.perms[j-1].hi, m.perms[j-1].perm})
	}
	m.perms = append(m.perms[:i], append(repl, m.perms[j:]...)...)
	m.lastSpan = [2]int{}
}

// Read copies memory at addr into buf; unmapped bytes read as zero and ok
// is false.
func (m *Memory) Read(addr uint64, buf []byte) bool {
	ok := true
	for len(buf) > 0 {
		off := addr & (pageSize - 1)
		n := min(uint64(len(buf)), pageSize-off) // the bytes on this page
		if p := m.lookup(addr >> pageShift); p != nil {
			copy(buf[:n], p.Data[off:])
		} else {
			clear(buf[:n])
			ok = false
		}
		buf, addr = buf[n:], addr+n
	}
	return ok
}

// U64 reads a little-endian u64.
func (m *Memory) U64(addr uint64) uint64 {
	if off := addr & (pageSize - 1); off <= pageSize-8 {
		if p := m.lookup(addr >> pageShift); p != nil {
			return binary.LittleEndian.Uint64(p.Data[off:])
		}
	}
	var b [8]byte
	m.Read(addr, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (m *Memory) page(vpn uint64) *Page {
	c := &m.cache[vpn&(pageCacheN-1)]
	if c.p != nil && c.vpn == vpn && !c.p.shared {
		return c.p
	}
	p := m.pages[vpn]
	if p == nil {
		if len(m.pages) >= MaxPages {
			// Beyond what a run can touch: stores land in a scratch
			// page and Err reports the trace.
			if m.scratch == nil {
				m.scratch = &Page{}
			}
			return m.scratch
		}
		p = &Page{}
		m.pages[vpn] = p
	} else if p.shared {
		p = &Page{Data: p.Data} // copy on write: the template's stays as loaded
		m.pages[vpn] = p
		m.copies++
	}
	if !m.noCache {
		*c = cachedPage{vpn, p}
	}
	return p
}

// MaxPages bounds the pages of memory a replay holds (256 MiB): a run's
// memory is bounded by the emulator's limits (64 MiB of slice sections, at
// most 1 MiB of per-CPU area for each of at most 64 CPUs, 16 KiB boot
// stacks, the module area), below it, while a hostile trace of small rows each storing to a new page
// would otherwise cost 4 KiB per row.
const MaxPages = 1 << 16

// Overflowed reports whether stores touched more than MaxPages pages
// (State.Err says so as an error).
func (m *Memory) Overflowed() bool { return m.scratch != nil }

// Err reports a trace whose stores touched more than MaxPages pages.
func (st *State) Err() error {
	if st.Mem.scratch != nil {
		return st.err()
	}
	return nil
}

func (st *State) err() error {
	return fmt.Errorf("replay: the trace stores to more than %d pages (%d MiB), more than a run can touch", MaxPages, MaxPages>>8)
}

func (m *Memory) store(addr uint64, size int, v uint64) {
	if off := addr & (pageSize - 1); off <= pageSize-8 && size <= 8 {
		// Within one page (every store but one that straddles two).
		d := m.page(addr >> pageShift).Data[off : off+8]
		if size == 8 {
			binary.LittleEndian.PutUint64(d, v)
			return
		}
		for i := 0; i < size; i++ {
			d[i] = byte(v >> (8 * i))
		}
		return
	}
	for i := 0; i < size; i++ {
		a := addr + uint64(i)
		m.page(a >> pageShift).Data[a&(pageSize-1)] = byte(v >> (8 * i))
	}
}

// CPU is the replayed context of one CPU.
type CPU struct {
	Task          uint32
	Depth         uint8
	LastSerialize uint64 // seq of the CPU's last serialize event
	Serialized    bool   // it has serialized at least once
	// The CPU's last event: its kind and seq, and the task it named
	// (for a switch, the task switched from). Last is 0 before any.
	Last     format.Kind
	LastSeq  uint64
	LastTask uint32
	// RIP is the rip column of the CPU's last event (the instruction's
	// address for an insn row).
	RIP uint64
}

// State is the machine state implied by the events applied so far.
type State struct {
	Meta  *format.Meta
	Spec  *scenario.Spec // the scenario recorded in the trace (nil if it does not parse)
	Syms  *Symbols
	Mem   *Memory
	Image *Memory // the slice image as loaded, before any event
	CPUs  []CPU
	// Regs is each CPU's register file, folded from the register deltas
	// of its events (format version 4; nothing is Known before).
	Regs []RegFile
	// percpuSize is the slice's per-CPU section size (0: none).
	percpuSize uint64
	Seq        uint64 // seq of the last applied event
	Applied    uint64
	Warnings   []string
}

// Limits on the slice ELF a trace carries: the emulator's (slice.Open
// checks them), so every recorded trace replays and nothing else is
// built: the sections loaded, NOBITS included, map at most MaxMappedBytes,
// and the ELF has at most MaxSections sections. A trace beyond them is
// refused before any memory is built.
const (
	MaxMappedBytes = slice.MaxMappedBytes
	MaxSections    = slice.MaxSections
)

// NewState builds the state at the start of a run from a trace's metadata:
// the slice image is loaded from the ELF the trace carries. The metadata a
// verdict depends on is required: the scenario text, and a 64-bit x86-64
// ELF with a symbol table (an empty ELF gave bogus trap findings, an empty
// scenario text a clean verdict without the scenario's contract).
func NewState(md *format.Meta) (*State, error) {
	st := &State{Meta: md, Syms: NewSymbols(md.Symbols), Mem: &Memory{pages: make(map[uint64]*Page)}, Image: &Memory{pages: make(map[uint64]*Page)}}
	if md.CPUs < 1 || md.CPUs > slice.MaxCPUs {
		return nil, fmt.Errorf("replay: trace says %d CPUs", md.CPUs)
	}
	if strings.TrimSpace(md.ScenarioText) == "" {
		return nil, fmt.Errorf("replay: the trace has no scenario text (%s is empty)", format.KeyScenarioText)
	}
	if len(md.ELF) == 0 {
		return nil, fmt.Errorf("replay: the trace carries no slice ELF (%s is empty)", format.KeyELF)
	}
	if len(md.Symbols) == 0 {
		return nil, fmt.Errorf("replay: the trace has no symbols (%s is empty)", format.KeySymbols)
	}
	for _, sym := range md.Symbols {
		if sym.Size > MaxMappedBytes {
			return nil, fmt.Errorf("replay: the trace's symbol %s has %d bytes, more than a slice maps (%d MiB)", sym.Name, sym.Size, MaxMappedBytes>>20)
		}
	}
	st.CPUs = make([]CPU, md.CPUs)
	st.Regs = make([]RegFile, md.CPUs)
	if md.ScenarioText != "" {
		spec, err := scenario.Parse(md.Scenario+"/scenario.toml", []byte(md.ScenarioText))
		if err != nil {
			st.Warnings = append(st.Warnings, "scenario text does not parse: "+err.Error())
		} else {
			st.Spec = spec
		}
	}
	e, err := slice.Open(md.ELF)
	if err != nil {
		return nil, fmt.Errorf("replay: the trace's slice ELF: %w", err)
	}
	// The line table names addresses file:line; a slice without one (or
	// with one that does not parse) still replays, by symbol+offset.
	lines, lerr := e.Lines()
	if lerr != nil {
		st.Warnings = append(st.Warnings, "the slice's line table cannot be read (findings are placed by symbol only): "+lerr.Error())
	}
	st.Syms = &Symbols{t: st.Syms.t.WithLines(lines, lerr)}
	st.percpuSize = uint64(len(e.Percpu))
	st.Image = &Memory{pages: make(map[uint64]*Page)}
	for _, s := range e.Sections {
		perm := uint8(s.Perm)
		lo, hi := s.Pages()
		st.Mem.setPerm(lo, hi-lo+1, perm)
		st.Image.setPerm(lo, hi-lo+1, perm)
		for i, b := range s.Data {
			a := s.Addr + uint64(i)
			st.Mem.page(a >> pageShift).Data[a&(pageSize-1)] = b
		}
		if s.Perm&slice.PermX != 0 {
			for vpn := lo; vpn <= hi; vpn++ {
				p := *st.Mem.page(vpn)
				st.Image.pages[vpn] = &p
			}
		}
	}
	return st, nil
}

// Template is the state at the start of every run with one metadata (a
// run's setup: the scenario text parsed, the symbols indexed, the slice
// image loaded), built once so that a caller judging many runs of one
// machine (explore) makes each run's State without parsing or copying
// memory: State shares the template's pages and copies one on its first
// store to it. A Template is read-only, and safe for concurrent use.
type Template struct {
	st  *State
	key startKey
}

// startKey is what of a Meta the start state is built from: the strings
// and sizes by value, the ELF and symbols by their backing arrays (a
// template does not detect bytes changed in place; see NewTemplate).
type startKey struct {
	scenario, text string
	cpus           int
	elf            *byte
	elfLen         int
	syms           *format.Symbol
	symsLen        int
}

func keyOf(md *format.Meta) startKey {
	k := startKey{scenario: md.Scenario, text: md.ScenarioText, cpus: md.CPUs, elfLen: len(md.ELF), symsLen: len(md.Symbols)}
	if len(md.ELF) > 0 {
		k.elf = &md.ELF[0]
	}
	if len(md.Symbols) > 0 {
		k.syms = &md.Symbols[0]
	}
	return k
}

// NewTemplate builds the start state for metadata md (see NewState); md
// must not change while the template is used.
func NewTemplate(md *format.Meta) (*Template, error) {
	st, err := NewState(md)
	if err != nil {
		return nil, err
	}
	for _, p := range st.Mem.pages {
		p.shared = true
	}
	// Every State made from the template reads its Image, from any
	// goroutine: no lookup caches there.
	st.Image.noCache = true
	st.Mem.noCache = true
	return &Template{st: st, key: keyOf(md)}, nil
}

// For reports whether t is the start state of md: md is the Meta t was
// built from, and its scenario, CPU count, ELF and symbols were not
// replaced since.
func (t *Template) For(md *format.Meta) bool { return t.st.Meta == md && t.key == keyOf(md) }

// State returns a fresh start state, equal to what NewState returns for
// the template's metadata. The metadata, scenario, symbols and Image are the template's
// (read-only); memory is copy on write.
func (t *Template) State() *State {
	st := *t.st
	st.Mem = &Memory{pages: maps.Clone(t.st.Mem.pages), perms: slices.Clone(t.st.Mem.perms)}
	st.CPUs = make([]CPU, len(t.st.CPUs))
	st.Regs = make([]RegFile, len(t.st.CPUs))
	st.Warnings = slices.Clone(t.st.Warnings)
	return &st
}

// Apply updates the state with one event. Call it in sequence order.
func (st *State) Apply(r *format.Row) {
	st.Seq = r.Seq
	st.Applied++
	if int(r.CPU) < len(st.CPUs) {
		c := &st.CPUs[r.CPU]
		c.Task, c.Depth, c.RIP = r.Task, r.Depth, r.RIP
		c.Last, c.LastSeq, c.LastTask = r.Kind, r.Seq, r.Task
		st.Regs[r.CPU].Apply(r)
		switch r.Kind {
		case format.KindSerialize:
			c.LastSerialize, c.Serialized = r.Seq, true
		case format.KindSwitch:
			c.Task = uint32(r.New)
		}
	}
	switch r.Kind {
	case format.KindWrite:
		st.Mem.store(r.Addr, int(r.Size), r.New)
	case format.KindPerm:
		if !r.Alias {
			st.Mem.setPerm(r.Addr>>pageShift, uint64(max(r.Size, 1)), r.PermNew)
		}
	}
}

// PercpuAddr returns the address of the per-CPU variable name (a per-CPU
// symbol, optionally +off) in cpu's per-CPU area (docs/slice-abi.md,
// Memory layout).
func (st *State) PercpuAddr(cpu int, name string) (uint64, bool) {
	if st.percpuSize == 0 || cpu < 0 || cpu >= len(st.CPUs) {
		return 0, false
	}
	sym, ok := st.Syms.t.Lookup(name)
	if !ok || !sym.PerCPU {
		return 0, false
	}
	return slice.PercpuBase + uint64(cpu)*slice.PercpuStride(st.percpuSize) + sym.Addr, true
}

// Rows iterates a trace file's events.
func Rows(r *format.Reader) iter.Seq2[*format.Row, error] { return r.Events() }

// VPNs returns the known page numbers in address order.
func (m *Memory) VPNs() []uint64 {
	v := make([]uint64, 0, len(m.pages))
	for k := range m.pages {
		v = append(v, k)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v
}

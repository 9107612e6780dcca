package slice

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PercpuSection is the per-CPU template section: its symbols are
// zero-based offsets into a CPU's per-CPU area (docs/slice-abi.md, Memory
// layout).
const PercpuSection = ".data..percpu"

// Symbol is one slice symbol. Per-CPU symbols have zero-based addresses
// (offsets into the per-CPU area).
type Symbol struct {
	Name    string
	Addr    uint64
	Size    uint64
	Section string // "" for an absolute symbol
	Func    bool
	PerCPU  bool
}

// MaxSizelessSpan bounds how far past a sizeless label (an assembly symbol
// without .size) an address is still described relative to it: further on
// it is not the label's code.
const MaxSizelessSpan = 0x10000

// maxEntrySpan bounds the address span the entry bitmap covers (a slice's
// image is a few MiB); a table spanning more has no bitmap and IsEntry
// reports false.
const maxEntrySpan = 64 << 20

// Table is a slice's symbol table. It is immutable once built.
type Table struct {
	syms   []Symbol // sorted by (PerCPU, Addr, Name)
	byName map[string]*Symbol
	text   []*Symbol // non-per-CPU symbols in a section, by address
	percpu []*Symbol // sized per-CPU symbols, by address
	// entries is a bitmap of sized code-symbol starts over
	// [entryLo, entryLo+len(entries)*64).
	entryLo uint64
	entries []uint64
	// lines is the slice's line table (nil: none); linesErr why it could
	// not be read, when it could not.
	lines    *Lines
	linesErr error
}

// WithLines returns a copy of t that also knows the slice's line table
// (nil when it has none; err, when not nil, says why it could not be read,
// and is what resolving a file:line then reports).
func (t *Table) WithLines(l *Lines, err error) *Table {
	c := *t
	c.lines, c.linesErr = l, err
	return &c
}

// Lines returns the table's line table, nil when it has none.
func (t *Table) Lines() *Lines { return t.lines }

// Line names addr as "file:line" from the line table, or "" when it does
// not cover addr (or there is none). Code of a sized function before its
// first row (the fentry nop -pg emits, which the table leaves to the
// previous function's last line) is named by that first row: the
// function's opening line.
func (t *Table) Line(addr uint64) string {
	if t.lines == nil {
		return ""
	}
	r, ok := t.lines.row(addr)
	if sym, in := t.At(addr); in && sym.Size > 0 && (!ok || r.addr < sym.Addr) {
		if s := t.lines.firstIn(addr, sym.Addr+sym.Size); s != "" {
			return s
		}
	}
	if !ok {
		return ""
	}
	return t.lines.files[r.file] + ":" + strconv.Itoa(int(r.line))
}

// NewTable indexes syms, in any order. When several symbols have one name
// (static functions of different files), Lookup and Resolve find the first
// in (per-CPU last, address, name) order, whatever the input order.
func NewTable(syms []Symbol) *Table {
	t := &Table{syms: append([]Symbol(nil), syms...), byName: make(map[string]*Symbol, len(syms))}
	sort.SliceStable(t.syms, func(i, j int) bool {
		a, b := t.syms[i], t.syms[j]
		if a.PerCPU != b.PerCPU {
			return !a.PerCPU
		}
		if a.Addr != b.Addr {
			return a.Addr < b.Addr
		}
		return a.Name < b.Name
	})
	for i := range t.syms {
		s := &t.syms[i]
		if _, dup := t.byName[s.Name]; !dup {
			t.byName[s.Name] = s
		}
		if !s.PerCPU && s.Section != "" {
			t.text = append(t.text, s)
		}
		if s.PerCPU && s.Size > 0 {
			t.percpu = append(t.percpu, s)
		}
	}
	if n := len(t.text); n > 0 {
		lo, hi := t.text[0].Addr, t.text[n-1].Addr
		if hi-lo < maxEntrySpan {
			t.entryLo = lo
			t.entries = make([]uint64, (hi-lo)/64+1)
			for _, s := range t.text {
				if s.Size > 0 {
					i := s.Addr - lo
					t.entries[i/64] |= 1 << (i % 64)
				}
			}
		}
	}
	return t
}

// Symbols returns every symbol, sorted by (per-CPU last, address, name).
// The slice is the table's own: do not modify it.
func (t *Table) Symbols() []Symbol { return t.syms }

// Lookup returns the symbol named name.
func (t *Table) Lookup(name string) (*Symbol, bool) {
	s, ok := t.byName[name]
	return s, ok
}

// Resolve evaluates "file.c:LINE" (the line's first instruction, from the
// line table: Lines.Addr; for the line of a function's first row, the
// function's entry, bytes before that row included), "symbol", "symbol+off" or a number (any base
// strconv.ParseUint accepts with base 0) to an address. A symbol is a
// function, a variable or an assembly label (not a .L local one); a
// per-CPU symbol resolves to its zero-based offset.
func (t *Table) Resolve(expr string) (uint64, error) {
	expr = strings.TrimSpace(expr)
	if file, line, ok := ParseFileLine(expr); ok {
		if t.lines == nil && t.linesErr != nil {
			return 0, fmt.Errorf("address %q: the slice's line table: %w", expr, t.linesErr)
		}
		a, err := t.lines.Addr(file, line)
		if err != nil {
			return 0, fmt.Errorf("address %q: %w", expr, err)
		}
		// The line a function's first row names also owns the bytes
		// before that row (the fentry nop -pg emits): its first
		// instruction is the function's (Line names it so too).
		if sym, ok := t.At(a); ok && sym.Size > 0 && sym.Addr < a {
			if r, ok := t.lines.firstRowIn(sym.Addr, sym.Addr+sym.Size); ok && r.addr == a {
				if before, in := t.lines.row(sym.Addr); !in || before.addr < sym.Addr {
					a = sym.Addr
				}
			}
		}
		return a, nil
	}
	name, off := expr, uint64(0)
	if i := strings.LastIndex(expr, "+"); i > 0 {
		o, err := strconv.ParseUint(strings.TrimSpace(expr[i+1:]), 0, 64)
		if err != nil {
			return 0, fmt.Errorf("address %q: bad offset: %w", expr, err)
		}
		name, off = strings.TrimSpace(expr[:i]), o
	}
	base, err := strconv.ParseUint(name, 0, 64)
	if err != nil {
		s, ok := t.byName[name]
		if !ok {
			return 0, fmt.Errorf("address %q: no symbol %q in the slice", expr, name)
		}
		base = s.Addr
	}
	if base+off < base {
		return 0, fmt.Errorf("address %q: %#x + %#x wraps past the end of the address space", expr, base, off)
	}
	return base + off, nil
}

// At returns the non-per-CPU symbol containing addr: the sized symbol
// covering it, or the nearest sizeless label at or below it, less than
// MaxSizelessSpan before it, with no sized symbol in between. Of several
// symbols at one address, a sized one is preferred to a label.
func (t *Table) At(addr uint64) (*Symbol, bool) {
	i := sort.Search(len(t.text), func(i int) bool { return t.text[i].Addr > addr }) - 1
	for ; i >= 0; i-- {
		s := t.text[i]
		if s.Size == 0 && i > 0 && t.text[i-1].Addr == s.Addr {
			continue
		}
		if s.Size != 0 && addr >= s.Addr+s.Size {
			return nil, false
		}
		if s.Size == 0 && addr-s.Addr >= MaxSizelessSpan {
			return nil, false // far past a sizeless label: not its code
		}
		return s, true
	}
	return nil, false
}

// PercpuAt returns the per-CPU variable containing offset off of a per-CPU
// area: the first sized per-CPU symbol, by address, whose bytes include it.
func (t *Table) PercpuAt(off uint64) (*Symbol, bool) {
	for _, s := range t.percpu {
		if s.Addr > off {
			break
		}
		if off-s.Addr < s.Size {
			return s, true
		}
	}
	return nil, false
}

// Describe renders addr as "symbol" or "symbol+0xoff", the form Resolve
// reads back, or as hex when no symbol contains it (At).
func (t *Table) Describe(addr uint64) string {
	if s, ok := t.At(addr); ok {
		if addr == s.Addr {
			return s.Name
		}
		return fmt.Sprintf("%s+%#x", s.Name, addr-s.Addr)
	}
	return fmt.Sprintf("%#x", addr)
}

// IsEntry reports whether addr is the first byte of a sized non-per-CPU
// symbol.
func (t *Table) IsEntry(addr uint64) bool {
	i := addr - t.entryLo
	if addr < t.entryLo || i/64 >= uint64(len(t.entries)) {
		return false
	}
	return t.entries[i/64]&(1<<(i%64)) != 0
}

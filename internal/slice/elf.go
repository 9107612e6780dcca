package slice

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Limits on a slice ELF (RATIONALE.md, resource limits). They are checked
// before anything is allocated, so a small hostile file (a 1 TiB NOBITS
// per-CPU section, a 1 GiB .bss) costs nothing; the built-in slices are
// 30-50 KB files (a third of it the DWARF line table) mapping ~3 MiB. The emulator refuses a slice beyond them,
// so no recorded trace carries one, and replay refuses the same.
const (
	// MaxImageBytes bounds the ELF file.
	MaxImageBytes = 64 << 20
	// MaxMappedBytes bounds the memory the loaded sections occupy, in
	// whole pages (NOBITS sections included: the machine maps them).
	MaxMappedBytes = 64 << 20
	// MaxPercpuBytes bounds the per-CPU section (the machine maps one copy
	// per CPU).
	MaxPercpuBytes = 1 << 20
	// MaxSections bounds the ELF's section headers.
	MaxSections = 4096
)

// ErrNotX8664 is returned (wrapped) for an ELF that is not a 64-bit x86-64
// executable.
var ErrNotX8664 = errors.New("not an x86-64 ELF executable")

// Section is one allocated section of a slice, with the permission its
// pages get: r, plus w for SHF_WRITE, plus x for SHF_EXECINSTR.
type Section struct {
	Name string
	Addr uint64
	Size uint64
	Perm Perm
	Data []byte // nil for NOBITS
}

// Pages returns the page numbers the section covers, [first, last].
func (s *Section) Pages() (first, last uint64) {
	return s.Addr >> PageShift, (s.Addr + s.Size - 1) >> PageShift
}

// ELF is a checked slice ELF: its loadable sections and per-CPU template.
type ELF struct {
	// Sections are the allocated non-empty sections but the per-CPU
	// template, in ELF order; no two overlap or share a page with
	// different permissions, none wraps or lies in a Reserved range.
	Sections []Section
	// Percpu is the per-CPU template (zeros for NOBITS), nil without one.
	Percpu []byte
	// Vectors is the VectorSection's contents; HasVectors says whether
	// the ELF has that section.
	Vectors    []byte
	HasVectors bool

	f        *elf.File
	percpuIx int // the template's section index, or -1
}

// Open parses and checks a slice ELF: a 64-bit x86-64 executable within
// the limits, its sections placed as the machine maps them. Any malformed
// or oversized input is an error saying what and where, never a panic.
func Open(raw []byte) (e *ELF, err error) {
	switch {
	case len(raw) == 0:
		return nil, errors.New("empty file (0 bytes): not an ELF file")
	case len(raw) > MaxImageBytes:
		return nil, fmt.Errorf("%d bytes: a slice may have at most %d", len(raw), MaxImageBytes)
	}
	defer func() {
		// debug/elf is not promised to be panic-free on hostile input.
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("malformed ELF (the parser failed: %v)", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	switch {
	case f.Class != elf.ELFCLASS64:
		return nil, fmt.Errorf("%w: a 32-bit ELF (class %v, machine %v); slices are 64-bit x86-64 executables", ErrNotX8664, f.Class, f.Machine)
	case f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC:
		return nil, fmt.Errorf("%w (class %v, machine %v, type %v)", ErrNotX8664, f.Class, f.Machine, f.Type)
	case len(f.Sections) > MaxSections:
		return nil, fmt.Errorf("%d sections: a slice may have at most %d", len(f.Sections), MaxSections)
	}
	if err := checkSections(f); err != nil {
		return nil, err
	}
	e = &ELF{f: f, percpuIx: -1}
	for i, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		if s.Name == PercpuSection {
			e.percpuIx = i
			if s.Type == elf.SHT_NOBITS {
				e.Percpu = make([]byte, s.Size)
			} else if e.Percpu, err = s.Data(); err != nil {
				return nil, fmt.Errorf("section %s: %w", s.Name, err)
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
				return nil, fmt.Errorf("section %s: %w", s.Name, err)
			}
		}
		e.Sections = append(e.Sections, sec)
	}
	// No page may be shared by sections with different permissions
	// (checkSections bounded the pages).
	pagePerm := map[uint64]Perm{}
	for _, s := range e.Sections {
		first, last := s.Pages()
		for vpn := first; vpn <= last; vpn++ {
			if p, ok := pagePerm[vpn]; ok && p != s.Perm {
				return nil, fmt.Errorf("section %s shares page %#x with a section of different permissions (%v vs %v): align sections to 4 KiB", s.Name, vpn<<PageShift, s.Perm, p)
			}
			pagePerm[vpn] = s.Perm
		}
	}
	if s := f.Section(VectorSection); s != nil {
		e.HasVectors = true
		if e.Vectors, err = s.Data(); err != nil {
			return nil, fmt.Errorf("section %s: %w", VectorSection, err)
		}
	}
	return e, nil
}

// Symbols reads the ELF's symbol table: named symbols of a section (per-CPU
// ones marked), and absolute ones named "__*" (linker-script markers);
// section, file and undefined symbols are left out.
func (e *ELF) Symbols() (out []Symbol, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed symbol table (the parser failed: %v)", r)
		}
	}()
	syms, err := e.f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("no symbol table: %w", err)
	}
	for _, s := range syms {
		if s.Name == "" || elf.ST_TYPE(s.Info) == elf.STT_SECTION || elf.ST_TYPE(s.Info) == elf.STT_FILE {
			continue
		}
		if s.Section == elf.SHN_UNDEF || s.Section == elf.SHN_ABS && !strings.HasPrefix(s.Name, "__") {
			continue
		}
		sym := Symbol{Name: s.Name, Addr: s.Value, Size: s.Size, Func: elf.ST_TYPE(s.Info) == elf.STT_FUNC}
		if int(s.Section) < len(e.f.Sections) && s.Section < elf.SHN_LORESERVE {
			sym.Section = e.f.Sections[s.Section].Name
			sym.PerCPU = int(s.Section) == e.percpuIx
		}
		out = append(out, sym)
	}
	return out, nil
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
		if s.Name == PercpuSection {
			if percpu {
				return fmt.Errorf("two %s sections", PercpuSection)
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
		pages += (hi-1)>>PageShift - s.Addr>>PageShift + 1
		if pages > MaxMappedBytes>>PageShift {
			return fmt.Errorf("the loaded sections occupy more than %d bytes (at section %s)", MaxMappedBytes, s.Name)
		}
		for _, r := range Reserved {
			if s.Addr < r.Hi && r.Lo < hi {
				return fmt.Errorf("section %s [%#x, %#x) overlaps %s [%#x, %#x) the machine maps itself (docs/slice-abi.md)", s.Name, s.Addr, hi, r.Name, r.Lo, r.Hi)
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

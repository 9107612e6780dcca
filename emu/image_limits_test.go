package emu

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// builtinELF returns a copy of a built-in slice's bytes.
func builtinELF(t testing.TB) []byte {
	t.Helper()
	raw, err := scenarios.FS.ReadFile("text-poke-bp/text-poke-bp.elf")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(raw)
}

// patchSection rewrites fields of the named section's header in raw
// (ELF64 little-endian: sh_type at +4, sh_addr at +0x10, sh_size at +0x20).
func patchSection(t testing.TB, raw []byte, name string, typ elf.SectionType, addr, size *uint64) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	shoff := binary.LittleEndian.Uint64(raw[0x28:])
	for i, s := range f.Sections {
		if s.Name != name {
			continue
		}
		h := raw[shoff+uint64(i)*64:]
		if typ != 0 {
			binary.LittleEndian.PutUint32(h[4:], uint32(typ))
		}
		if addr != nil {
			binary.LittleEndian.PutUint64(h[0x10:], *addr)
		}
		if size != nil {
			binary.LittleEndian.PutUint64(h[0x20:], *size)
		}
		return
	}
	t.Fatalf("no section %s", name)
}

func u64p(v uint64) *uint64 { return &v }

// elf32Header is a minimal 32-bit i386 executable header without sections.
func elf32Header() []byte {
	h := make([]byte, 52)
	copy(h, "\x7fELF\x01\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(elf.EM_386))
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[40:], 52)
	return h
}

// TestLoadImageHostile: each input used to exhaust memory, load silently
// wrong or fail late; each is now a *FormatError saying what is wrong,
// before anything is allocated (issue 17).
func TestLoadImageHostile(t *testing.T) {
	text := uint64(0xffffffff81000000)
	for _, tc := range []struct {
		name  string
		build func([]byte) []byte
		want  string
	}{
		{"empty", func([]byte) []byte { return nil }, "empty file (0 bytes)"},
		{"32-bit", func([]byte) []byte { return elf32Header() }, "a 32-bit ELF"},
		{"truncated header", func(b []byte) []byte { return b[:20] }, "not an ELF file"},
		{"1 TiB NOBITS per-CPU section", func(b []byte) []byte {
			patchSection(t, b, percpuSection, elf.SHT_NOBITS, nil, u64p(1<<40))
			return b
		}, "a per-CPU section may have at most"},
		{"1 GiB .bss", func(b []byte) []byte {
			patchSection(t, b, ".bss", 0, nil, u64p(1<<30))
			return b
		}, "the loaded sections may occupy at most"},
		{"sections adding up past the limit", func(b []byte) []byte {
			patchSection(t, b, ".bss", 0, u64p(text+0x100000), u64p(MaxMappedBytes-0x1000))
			return b
		}, "occupy more than"},
		{"overlapping sections", func(b []byte) []byte {
			patchSection(t, b, ".data", 0, u64p(text+0x800), nil)
			return b
		}, "overlap"},
		{"section wraps", func(b []byte) []byte {
			patchSection(t, b, ".bss", 0, u64p(0xfffffffffffff000), u64p(0x2000))
			return b
		}, "wraps past the end of the address space"},
		{"section on the per-CPU areas", func(b []byte) []byte {
			patchSection(t, b, ".bss", 0, u64p(percpuBase+0x3000), nil)
			return b
		}, "overlaps the per-CPU areas"},
		{"section on the boot stacks", func(b []byte) []byte {
			patchSection(t, b, ".data", 0, u64p(bootStackTop), nil)
			return b
		}, "overlaps the boot stacks"},
		{"too large a file", func(b []byte) []byte { return append(b, make([]byte, MaxImageBytes)...) }, "a slice may have at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := LoadImage("x.elf", tc.build(builtinELF(t)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "slice x.elf: ") {
				t.Fatalf("image %v, error %v: want a slice error containing %q", img != nil, err, tc.want)
			}
		})
	}
}

// TestResolveOffsetWraps: "f+0xffff..." used to wrap to a low address.
func TestResolveOffsetWraps(t *testing.T) {
	img, err := LoadImage("x.elf", builtinELF(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := img.Resolve("pt_start+0xffffffffffffffff"); err == nil || !strings.Contains(err.Error(), "wraps") {
		t.Errorf("resolved to %#x, %v", a, err)
	}
	if a, err := img.Resolve("0xfffffffffffffff0+0x10"); err == nil {
		t.Errorf("resolved to %#x", a)
	}
	if a, err := img.Resolve("pt_start+0x10"); err != nil || a != img.Entry+0x10 {
		t.Errorf("pt_start+0x10: %#x, %v", a, err)
	}
}

// TestContractResolvedAtSetup: a typo in a must_call site or handler, or a
// return slot, names the missing symbol when the run is set up, not at
// analysis.
func TestContractResolvedAtSetup(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*scenario.Spec)
		want string
	}{
		{"site", func(s *scenario.Spec) { s.Contract.MustCall[0].Site = "ftrace_no_such_fn" }, `site: address "ftrace_no_such_fn": no symbol "ftrace_no_such_fn"`},
		{"handler", func(s *scenario.Spec) {
			s.Contract.MustCall[0].Handlers = append(s.Contract.MustCall[0].Handlers, "no_such_handler")
		}, `handler: address "no_such_handler": no symbol`},
		{"return slot", func(s *scenario.Spec) { s.Contract.ReturnSlots = []string{"no_such_slot"} }, `"no_such_slot": no such per-CPU symbol`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := loadBuiltin(t, "ftrace-int3-skip")
			if len(spec.Contract.MustCall) == 0 {
				t.Fatal("the scenario has no must_call contract")
			}
			tc.edit(spec)
			if _, _, err := Setup(spec, Options{Seed: 1}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestScenarioCPULimitIsTheMachines(t *testing.T) {
	if scenario.MaxCPUs != MaxCPUs {
		t.Fatalf("scenario.MaxCPUs %d, emu.MaxCPUs %d", scenario.MaxCPUs, MaxCPUs)
	}
}

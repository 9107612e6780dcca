package replay_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestReplayLimitsMatchEmu: replay refuses exactly what the emulator
// refuses to load, so every recorded trace replays.
func TestReplayLimitsMatchEmu(t *testing.T) {
	if replay.MaxMappedBytes != emu.MaxMappedBytes {
		t.Fatalf("replay.MaxMappedBytes %d, emu.MaxMappedBytes %d", replay.MaxMappedBytes, emu.MaxMappedBytes)
	}
}

// TestHostileCarriedELF: the metadata a trace carries is checked before
// replay builds memory from it (issue 17: a 1 TiB NOBITS section OOMed
// replay, a 1 GiB one cost 1.1 GB; an empty ELF gave 33 bogus trap
// findings; a 32-bit ELF and an empty scenario text were accepted).
func TestHostileCarriedELF(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	clean := record.Meta(spec, img, spec.CPUs, 1)
	if _, err := replay.NewState(&clean); err != nil {
		t.Fatal(err)
	}
	// bssSize returns the ELF with its .bss size set to n.
	bssSize := func(n uint64) []byte {
		b := bytes.Clone(clean.ELF)
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		shoff := binary.LittleEndian.Uint64(b[0x28:])
		shentsize := uint64(binary.LittleEndian.Uint16(b[0x3a:]))
		for i, s := range f.Sections {
			if s.Type == elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 {
				binary.LittleEndian.PutUint64(b[shoff+uint64(i)*shentsize+32:], n)
				return b
			}
		}
		t.Fatal("no NOBITS section")
		return nil
	}
	// dataOnText returns the ELF with .data moved onto .text.
	dataOnText := func() []byte {
		b := bytes.Clone(clean.ELF)
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		shoff := binary.LittleEndian.Uint64(b[0x28:])
		shentsize := uint64(binary.LittleEndian.Uint16(b[0x3a:]))
		for i, s := range f.Sections {
			if s.Name == ".data" {
				binary.LittleEndian.PutUint64(b[shoff+uint64(i)*shentsize+16:], f.Section(".text").Addr)
				return b
			}
		}
		t.Fatal("no .data section")
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func(md *format.Meta)
		want string
	}{
		{"1 TiB .bss", func(md *format.Meta) { md.ELF = bssSize(1 << 40) }, "the loaded sections may occupy at most"},
		{"1 GiB .bss", func(md *format.Meta) { md.ELF = bssSize(1 << 30) }, "the loaded sections may occupy at most"},
		{"empty ELF", func(md *format.Meta) { md.ELF = nil }, "no slice ELF"},
		// The emulator refuses to load it, so no trace carries it: the
		// later section's bytes would replace the earlier's.
		{"overlapping sections", func(md *format.Meta) { md.ELF = dataOnText() }, "overlap"},
		{"32-bit ELF", func(md *format.Meta) {
			md.ELF = bytes.Clone(md.ELF)
			md.ELF[elf.EI_CLASS] = byte(elf.ELFCLASS32)
		}, "ELF"},
		{"i386 machine", func(md *format.Meta) {
			md.ELF = bytes.Clone(md.ELF)
			binary.LittleEndian.PutUint16(md.ELF[0x12:], uint16(elf.EM_386))
		}, "not an x86-64 ELF executable"},
		{"empty scenario text", func(md *format.Meta) { md.ScenarioText = "" }, "no scenario text"},
		{"no symbols", func(md *format.Meta) { md.Symbols = nil }, "no symbols"},
		{"a 1 TiB symbol", func(md *format.Meta) {
			md.Symbols = append([]format.Symbol{{Name: "huge", Addr: 0xffffffff81000000, Size: 1 << 40, Section: ".text"}}, md.Symbols...)
		}, "symbol huge has 1099511627776 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := clean
			tc.edit(&md)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			st, err := replay.NewState(&md)
			runtime.ReadMemStats(&after)
			if st != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewState = %v, %v; want an error with %q", st, err, tc.want)
			}
			if a := after.TotalAlloc - before.TotalAlloc; a > 64<<20 {
				t.Fatalf("refusing it allocated %d MiB", a>>20)
			}
		})
	}
}

// TestReplayMemoryBounded: stores to ever new pages (a small hostile trace
// of write rows, 4 KiB of replayed memory each) stop at MaxPages with an
// error instead of growing without bound.
func TestReplayMemoryBounded(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	st, err := replay.NewState(&md)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := uint64(0); i < replay.MaxPages+1000; i++ {
		st.Apply(&format.Row{Seq: i, Kind: format.KindWrite, Addr: 0x100000000 + i<<12, HasAddr: true, Size: 8, New: i})
	}
	runtime.ReadMemStats(&after)
	if st.Err() == nil {
		t.Fatal("no error after storing to MaxPages+1000 pages")
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > (replay.MaxPages+1<<14)*4096+256<<20 {
		t.Fatalf("allocated %d MiB", a>>20)
	}
}

// TestHostileSourceFileName: a file name in the line table of the ELF a
// trace carries comes from whoever wrote the file; Line prints it escaped
// (as symbol names are), so a terminal escape or a newline in it cannot
// forge the lines of events --src, a finding's source or a story.
func TestHostileSourceFileName(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	target, ok := replay.NewSymbols(md.Symbols).Lookup("traced_fn")
	if !ok {
		t.Fatal("text-poke-bp has no traced_fn")
	}
	if got := replay.MetaSymbols(&md).Line(target.Addr); !strings.HasPrefix(got, "text-poke-bp/traced.fentry.c:") {
		t.Fatalf("traced_fn's line %q, want text-poke-bp/traced.fentry.c:N", got)
	}
	// Same length, so the DWARF stays well formed: only the name changes.
	const name, evil = "traced.fentry.c", "t\x1b[2J\nFAKE.c:99"
	if len(name) != len(evil) || bytes.Count(spec.ELF, []byte(name)) == 0 {
		t.Fatalf("test setup: %q not in the ELF or lengths differ", name)
	}
	md.ELF = bytes.ReplaceAll(bytes.Clone(spec.ELF), []byte(name), []byte(evil))
	got := replay.MetaSymbols(&md).Line(target.Addr)
	if got == "" || strings.ContainsAny(got, "\x1b\n") {
		t.Fatalf("line of traced_fn from a hostile line table: %q (want it escaped)", got)
	}
	if !strings.Contains(got, `\x1b`) || !strings.Contains(got, `\n`) {
		t.Fatalf("line %q does not show the escaped bytes", got)
	}
}

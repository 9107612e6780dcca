package analyze_test

import (
	"bytes"
	"debug/elf"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestTrapFindsInvalidOpcode runs text-poke-bp with handler_func's first
// bytes replaced by 1e 89 f8 (PUSH DS, invalid in 64-bit mode: the bytes a
// boosted int3 ran when it resumed inside a jmp's rel32). Once the call is
// patched in, the first caller takes #UD; the slice's do_invalid_op oopses
// and the trap analyzer reports it. Before #UD was modelled the run ended
// with an emulator error and the analysis said clean.
func TestTrapFindsInvalidOpcode(t *testing.T) {
	spec := testkit.Load(t, "text-poke-bp", nil)
	spec.ELF = patchELF(t, spec.ELF, "handler_func", []byte{0x1e, 0x89, 0xf8})
	res := analyzeRun(t, spec, emu.Options{Seed: 1})
	t.Logf("findings:\n%s", summary(res))
	for _, f := range res.Findings {
		if f.Analyzer == "trap" && f.Symbol == "handler_func" && strings.Contains(f.Message, "#UD") {
			return
		}
	}
	t.Fatalf("no trap finding for #UD in handler_func; got:\n%s", summary(res))
}

// patchELF returns a copy of the ELF image with code written at symbol.
func patchELF(t *testing.T, image []byte, symbol string, code []byte) []byte {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != symbol || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		off := sec.Offset + (s.Value - sec.Addr)
		out := append([]byte(nil), image...)
		copy(out[off:], code)
		return out
	}
	t.Fatalf("no symbol %s", symbol)
	return nil
}

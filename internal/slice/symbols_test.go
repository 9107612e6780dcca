package slice

import (
	"math/rand"
	"strings"
	"testing"
)

const text = 0xffffffff81000000

func testSyms() []Symbol {
	return []Symbol{
		{Name: "pt_start", Addr: text, Size: 0x20, Section: ".text", Func: true},
		{Name: "entry_label", Addr: text + 0x20, Section: ".text"}, // sizeless
		{Name: "fn", Addr: text + 0x100, Size: 0x10, Section: ".text", Func: true},
		{Name: "fn_alias", Addr: text + 0x100, Section: ".text"}, // label at a sized symbol
		{Name: "dup", Addr: text + 0x200, Size: 4, Section: ".text"},
		{Name: "dup", Addr: text + 0x300, Size: 4, Section: ".text"},
		{Name: "cpu_tss_ist", Addr: 0, Size: 64, Section: PercpuSection, PerCPU: true},
		{Name: "pcpu_label", Addr: 64, Section: PercpuSection, PerCPU: true}, // sizeless: no variable
		{Name: "counter", Addr: 64, Size: 8, Section: PercpuSection, PerCPU: true},
		{Name: "__abs", Addr: 0x1234}, // absolute: no section
	}
}

func TestResolve(t *testing.T) {
	tab := NewTable(testSyms())
	for _, tc := range []struct {
		expr string
		want uint64
		err  string
	}{
		{"fn", text + 0x100, ""},
		{" fn + 0x3 ", text + 0x103, ""},
		{"fn+8", text + 0x108, ""},
		{"0x10", 0x10, ""},
		{"0x10+1", 0x11, ""},
		{"cpu_tss_ist+8", 8, ""},
		{"dup", text + 0x200, ""}, // the first by address
		{"__abs", 0x1234, ""},
		{"nosuch", 0, `no symbol "nosuch" in the slice`},
		{"fn+x", 0, "bad offset"},
		{"0xffffffffffffffff+1", 0, "wraps"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := tab.Resolve(tc.expr)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Resolve(%q) = %#x, %v; want an error with %q", tc.expr, got, err, tc.err)
			case tc.err == "" && (err != nil || got != tc.want):
				t.Fatalf("Resolve(%q) = %#x, %v; want %#x", tc.expr, got, err, tc.want)
			}
		})
	}
}

func TestAtDescribe(t *testing.T) {
	tab := NewTable(testSyms())
	for _, tc := range []struct {
		addr uint64
		want string
	}{
		{text, "pt_start"},
		{text + 0x1f, "pt_start+0x1f"},
		{text + 0x20, "entry_label"},
		{text + 0xff, "entry_label+0xdf"},
		{text + 0x100, "fn"}, // the sized symbol, not the label
		{text + 0x10f, "fn+0xf"},
		{text + 0x110, "0xffffffff81000110"}, // past fn's end
		{text - 1, "0xffffffff80ffffff"},
		{8, "0x8"}, // per-CPU offsets are not code
		{0x1234, "0x1234"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tab.Describe(tc.addr); got != tc.want {
				t.Errorf("Describe(%#x) = %q, want %q", tc.addr, got, tc.want)
			}
			// Describe's output is an address expression Resolve reads back.
			if back, err := tab.Resolve(tab.Describe(tc.addr)); err != nil || back != tc.addr {
				t.Errorf("Resolve(Describe(%#x)) = %#x, %v", tc.addr, back, err)
			}
		})
	}
	t.Run("far past a label", func(t *testing.T) {
		tab := NewTable([]Symbol{{Name: "label", Addr: text, Section: ".text"}})
		if s, ok := tab.At(text + MaxSizelessSpan - 1); !ok || s.Name != "label" {
			t.Errorf("At(label+span-1) = %v, %v", s, ok)
		}
		if s, ok := tab.At(text + MaxSizelessSpan); ok {
			t.Errorf("At(label+span) = %v, want none", s)
		}
	})
}

// TestOrderIndependent: the table is the same whatever order the ELF or
// the trace lists the symbols in.
func TestOrderIndependent(t *testing.T) {
	want := NewTable(testSyms())
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		syms := testSyms()
		r.Shuffle(len(syms), func(i, j int) { syms[i], syms[j] = syms[j], syms[i] })
		got := NewTable(syms)
		for a := uint64(text - 1); a < text+0x400; a++ {
			if g, w := got.Describe(a), want.Describe(a); g != w {
				t.Fatalf("shuffle %d: Describe(%#x) = %q, want %q", i, a, g, w)
			}
		}
		if s, _ := got.Lookup("dup"); s.Addr != text+0x200 {
			t.Fatalf("shuffle %d: Lookup(dup) = %#x", i, s.Addr)
		}
		if g := got.Symbols(); !g[len(g)-1].PerCPU || g[len(g)-4].PerCPU {
			t.Fatalf("shuffle %d: per-CPU symbols not last: %v", i, g)
		}
	}
}

func TestIsEntry(t *testing.T) {
	tab := NewTable(testSyms())
	for _, tc := range []struct {
		addr uint64
		want bool
	}{
		{text, true}, {text + 1, false}, {text + 0x20, false}, // a label is not an entry
		{text + 0x100, true}, {text + 0x300, true}, {text + 0x301, false}, {0, false}, {text - 64, false},
	} {
		if got := tab.IsEntry(tc.addr); got != tc.want {
			t.Errorf("IsEntry(%#x) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if NewTable(nil).IsEntry(0) {
		t.Error("empty table: IsEntry(0)")
	}
}

func TestPercpuAt(t *testing.T) {
	tab := NewTable(testSyms())
	for _, tc := range []struct {
		off  uint64
		want string
	}{
		{0, "cpu_tss_ist"}, {63, "cpu_tss_ist"}, {64, "counter"}, {71, "counter"}, {72, ""},
		{text, ""}, // a code address is no per-CPU offset
	} {
		got := ""
		if s, ok := tab.PercpuAt(tc.off); ok {
			got = s.Name
		}
		if got != tc.want {
			t.Errorf("PercpuAt(%#x) = %q, want %q", tc.off, got, tc.want)
		}
	}
}

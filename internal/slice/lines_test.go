package slice

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func openTable(t *testing.T, file string) (*ELF, *Table) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := e.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	return e, NewTable(syms).WithLines(e.Lines())
}

// TestLines: a built-in slice's line table names its instructions by the
// staged source names, and file:line resolves back to the line's first
// instruction; a line without code, an unknown file and an ambiguous name
// are errors naming the file:line.
func TestLines(t *testing.T) {
	_, tab := openTable(t, "../../scenarios/exc-tramp/exc-tramp.elf")
	if tab.Lines() == nil {
		t.Fatal("exc-tramp.elf has no line table (built without -g1?)")
	}
	files := strings.Join(tab.Lines().Files(), " ")
	for _, f := range []string{"base/head.S", "base/traps.c", "lib/exc-tramp/tramp.S", "lib/traced/traced.fentry.c", "exc-tramp/tracer.c"} {
		if !strings.Contains(" "+files+" ", " "+f+" ") {
			t.Errorf("line table files %q lack %s", files, f)
		}
	}
	// The fentry nop before traced_fn's first row is its opening line.
	fn, _ := tab.Lookup("traced_fn")
	if got := tab.Line(fn.Addr); !strings.HasPrefix(got, "lib/traced/traced.fentry.c:") {
		t.Errorf("Line(traced_fn) = %q", got)
	}
	// Every row's line resolves to an address the table names that line.
	for _, r := range tab.Lines().rows {
		if r.end {
			continue
		}
		file, line := tab.Lines().files[r.file], int(r.line)
		a, err := tab.Lines().Addr(file, line)
		if err != nil {
			t.Fatalf("Addr(%s, %d): %v", file, line, err)
		}
		has := false // a row of that line at a (At names the last row there)
		for _, r2 := range tab.Lines().rows {
			has = has || !r2.end && r2.addr == a && r2.file == r.file && int(r2.line) == line
		}
		if !has {
			t.Fatalf("Addr(%s, %d) = %#x, where no row of that line starts", file, line, a)
		}
		if a > r.addr && r.stmt {
			t.Fatalf("Addr(%s, %d) = %#x, above a statement row at %#x", file, line, a, r.addr)
		}
	}
	// pt_start is the first instruction of its line in head.S.
	start, _ := tab.Lookup("pt_start")
	fl := tab.Line(start.Addr)
	file, _, ok := ParseFileLine(fl)
	if !ok || file != "base/head.S" {
		t.Fatalf("Line(pt_start) = %q", fl)
	}
	for _, expr := range []string{fl, "head.S:" + strings.TrimPrefix(fl, "base/head.S:"), " " + fl + " "} {
		if a, err := tab.Resolve(expr); err != nil || a != start.Addr {
			t.Errorf("Resolve(%q) = %#x, %v; want pt_start %#x", expr, a, err, start.Addr)
		}
	}
	for _, tc := range []struct{ expr, want string }{
		{"head.S:1", "head.S:1: no code at this line (the nearest line with code: "},
		{"nosuch.c:3", "nosuch.c:3: no such source file in the slice's line table (have "},
		{"traced.fentry.c:100000", "lib/traced/traced.fentry.c:100000: no code at this line (the nearest line with code: "},
	} {
		_, err := tab.Resolve(tc.expr)
		var le *LineError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &le) {
			t.Errorf("Resolve(%q) = %v, want an error with %q", tc.expr, err, tc.want)
		}
	}
}

// TestLinesAmbiguous: a bare file name two staged files end with is an
// error listing both; the staged name picks one.
func TestLinesAmbiguous(t *testing.T) {
	l := &Lines{files: []string{"lib/a/x.c", "lib/b/x.c"}, rows: []lineRow{
		{addr: 0x10, file: 0, line: 3, stmt: true}, {addr: 0x20, file: 1, line: 3, stmt: true}, {addr: 0x30, end: true},
	}}
	if _, err := l.Addr("x.c", 3); err == nil || !strings.Contains(err.Error(), "ambiguous: lib/a/x.c, lib/b/x.c") {
		t.Errorf("Addr(x.c, 3) = %v, want ambiguous", err)
	}
	if a, err := l.Addr("b/x.c", 3); err != nil || a != 0x20 {
		t.Errorf("Addr(b/x.c, 3) = %#x, %v", a, err)
	}
	if f, n, ok := l.At(0x30); ok {
		t.Errorf("At(end of sequence) = %s:%d", f, n)
	}
	var none *Lines
	if _, err := none.Addr("x.c", 3); err == nil || !strings.Contains(err.Error(), "no line table") {
		t.Errorf("no table: %v", err)
	}
}

func TestParseFileLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		file string
		line int
		ok   bool
	}{
		{"patch.c:42", "patch.c", 42, true},
		{"base/entry.S:7", "base/entry.S", 7, true},
		{"sym", "", 0, false},
		{"sym+0x10", "", 0, false},
		{"0xffffffff81000000", "", 0, false},
		{"patch.c:0", "", 0, false},
		{"patch.c:-1", "", 0, false},
		{"patch.c:+3", "", 0, false},
		{"patch.c:x", "", 0, false},
		{":3", "", 0, false},
		{"a b.c:3", "", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			f, n, ok := ParseFileLine(tc.in)
			if f != tc.file || n != tc.line || ok != tc.ok {
				t.Errorf("ParseFileLine(%q) = %q, %d, %v; want %q, %d, %v", tc.in, f, n, ok, tc.file, tc.line, tc.ok)
			}
		})
	}
}

// TestLineFunctionEntry: a function's fentry nop, which the line table
// leaves to the previous function's last row, is named by the function's
// own opening line (the source is the oracle: the line before names it).
func TestLineFunctionEntry(t *testing.T) {
	_, tab := openTable(t, "../../scenarios/ftrace-int3-skip/ftrace-int3-skip.elf")
	src, err := os.ReadFile("../../scenarios/lib/ftrace/sites.fentry.c")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for _, fn := range []string{"lp_fn1", "lp_fn2"} {
		s, ok := tab.Lookup(fn)
		if !ok {
			t.Fatalf("no %s", fn)
		}
		file, n, ok := ParseFileLine(tab.Line(s.Addr))
		if !ok || file != "lib/ftrace/sites.fentry.c" || n < 2 || n > len(lines) || !strings.Contains(lines[n-2], fn+"(") {
			t.Errorf("Line(%s) = %q: not its opening", fn, tab.Line(s.Addr))
		}
	}
}

// TestResolveFunctionLine: the line a function's first row names resolves
// to the function's entry, its fentry nop included (a must_call site
// written as file:line is the site), and Line names that entry the same
// line back.
func TestResolveFunctionLine(t *testing.T) {
	_, tab := openTable(t, "../../scenarios/ftrace-int3-skip/ftrace-int3-skip.elf")
	for _, fn := range []string{"lp_fn1", "lp_fn2"} {
		s, _ := tab.Lookup(fn)
		fl := tab.Line(s.Addr)
		a, err := tab.Resolve(fl)
		if err != nil || a != s.Addr {
			t.Errorf("Resolve(%q) = %#x, %v; want %s at %#x", fl, a, err, fn, s.Addr)
		}
	}
	// A line inside a function is its own first instruction.
	s, _ := tab.Lookup("lp_fn1")
	_, n, _ := ParseFileLine(tab.Line(s.Addr))
	next := fmt.Sprintf("sites.fentry.c:%d", n+1)
	if a, err := tab.Resolve(next); err != nil || a <= s.Addr || a >= s.Addr+s.Size {
		t.Errorf("Resolve(%q) = %#x, %v: not inside lp_fn1 past its entry", next, a, err)
	}
}

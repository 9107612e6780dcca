package slice

import (
	"debug/dwarf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// MaxLineRows bounds the rows of a slice's line table (the built-in slices
// have a few hundred to a few thousand).
const MaxLineRows = 1 << 20

// Lines is a slice's DWARF line table (.debug_line, docs/slice-abi.md,
// Source locations): which source line each instruction was built from,
// and back. File names are the build's staged names ("base/entry.S",
// "lib/ftrace/ftrace.c", "ID/patch.c"). It is immutable once built.
type Lines struct {
	files []string
	rows  []lineRow // by address; an end row closes the range before it
}

type lineRow struct {
	addr       uint64
	file, line int32
	stmt, end  bool
}

// LineError is a file:line that names no code of the slice.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Lines reads the ELF's line table: nil and no error when the slice has
// no .debug_line (built without -g).
func (e *ELF) Lines() (l *Lines, err error) {
	defer func() {
		// debug/dwarf is not promised to be panic-free on hostile input.
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("malformed DWARF line table (the parser failed: %v)", r)
		}
	}()
	if e.f.Section(".debug_line") == nil {
		return nil, nil
	}
	d, err := e.f.DWARF()
	if err != nil {
		return nil, fmt.Errorf("DWARF: %w", err)
	}
	l = &Lines{}
	fileIx := map[string]int32{}
	r := d.Reader()
	for {
		cu, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("DWARF: %w", err)
		}
		if cu == nil {
			break
		}
		if cu.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		r.SkipChildren()
		lr, err := d.LineReader(cu)
		if err != nil {
			return nil, fmt.Errorf("DWARF line table: %w", err)
		}
		if lr == nil {
			continue
		}
		var le dwarf.LineEntry
		for {
			if err := lr.Next(&le); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("DWARF line table: %w", err)
			}
			if len(l.rows) >= MaxLineRows {
				return nil, fmt.Errorf("DWARF line table: more than %d rows", MaxLineRows)
			}
			name := ""
			if le.File != nil {
				name = strings.TrimPrefix(path.Clean(le.File.Name), "./")
			}
			fi, ok := fileIx[name]
			if !ok {
				fi = int32(len(l.files))
				fileIx[name] = fi
				l.files = append(l.files, name)
			}
			l.rows = append(l.rows, lineRow{addr: le.Address, file: fi, line: int32(min(le.Line, 1<<30)), stmt: le.IsStmt, end: le.EndSequence})
		}
	}
	// By address; at one address an end row (closing the sequence before)
	// sorts before the rows that start there, and rows keep their order.
	sort.SliceStable(l.rows, func(i, j int) bool {
		a, b := l.rows[i], l.rows[j]
		if a.addr != b.addr {
			return a.addr < b.addr
		}
		return a.end && !b.end
	})
	return l, nil
}

// At returns the source line addr was built from: the last row at or below
// it, unless a sequence ended in between.
func (l *Lines) At(addr uint64) (file string, line int, ok bool) {
	r, ok := l.row(addr)
	if !ok {
		return "", 0, false
	}
	return l.files[r.file], int(r.line), true
}

func (l *Lines) row(addr uint64) (lineRow, bool) {
	if l == nil {
		return lineRow{}, false
	}
	i := sort.Search(len(l.rows), func(i int) bool { return l.rows[i].addr > addr }) - 1
	if i < 0 || l.rows[i].end {
		return lineRow{}, false
	}
	return l.rows[i], true
}

// firstIn returns the line of the first row in [addr, end), for code the
// table leaves out before a function's first row (the fentry nop gcc's
// -pg emits before the function's first line).
func (l *Lines) firstIn(addr, end uint64) string {
	if r, ok := l.firstRowIn(addr, end); ok {
		return l.files[r.file] + ":" + strconv.Itoa(int(r.line))
	}
	return ""
}

// firstRowIn returns the first row in [addr, end).
func (l *Lines) firstRowIn(addr, end uint64) (lineRow, bool) {
	if l == nil {
		return lineRow{}, false
	}
	i := sort.Search(len(l.rows), func(i int) bool { return l.rows[i].addr >= addr })
	for ; i < len(l.rows) && l.rows[i].addr < end; i++ {
		if r := l.rows[i]; !r.end {
			return r, true
		}
	}
	return lineRow{}, false
}

// Name returns addr as "file:line", or "" when the table does not cover it.
func (l *Lines) Name(addr uint64) string {
	if f, n, ok := l.At(addr); ok {
		return f + ":" + strconv.Itoa(n)
	}
	return ""
}

// Files returns the source files the table names, sorted.
func (l *Lines) Files() []string {
	if l == nil {
		return nil
	}
	out := append([]string(nil), l.files...)
	sort.Strings(out)
	return out
}

// Addr returns the first instruction of file:line: the lowest address of a
// statement row of that line (any row when none is a statement). file is
// a staged name ("ID/patch.c", "base/traps.c") or its tail after a '/'
// ("patch.c") when that names one file. An error (a *LineError) names the
// file:line when no code is there, or the file when it is unknown or
// ambiguous.
func (l *Lines) Addr(file string, line int) (uint64, error) {
	if l == nil {
		return 0, &LineError{file, line, "the slice has no line table (build it with patchtrace build, which compiles with -g1)"}
	}
	var match []int32
	for i, f := range l.files {
		if f == file {
			match = []int32{int32(i)}
			break
		}
		if strings.HasSuffix(f, "/"+file) {
			match = append(match, int32(i))
		}
	}
	switch {
	case len(match) == 0:
		return 0, &LineError{file, line, "no such source file in the slice's line table (have " + strings.Join(l.Files(), ", ") + ")"}
	case len(match) > 1:
		var names []string
		for _, m := range match {
			names = append(names, l.files[m])
		}
		sort.Strings(names)
		return 0, &LineError{file, line, "ambiguous: " + strings.Join(names, ", ") + " (name one)"}
	}
	fi := match[0]
	best, found, stmt := uint64(0), false, false
	var near []int
	for _, r := range l.rows {
		if r.end || r.file != fi {
			continue
		}
		if int(r.line) != line {
			near = append(near, int(r.line))
			continue
		}
		// A statement row wins over a non-statement one; then the lowest
		// address.
		if !found || (r.stmt && !stmt) || (r.stmt == stmt && r.addr < best) {
			best, found, stmt = r.addr, true, r.stmt
		}
	}
	if !found {
		return 0, &LineError{l.files[fi], line, "no code at this line" + nearest(near, line)}
	}
	return best, nil
}

// nearest says which lines around line have code.
func nearest(lines []int, line int) string {
	below, above := 0, 0
	for _, n := range lines {
		if n < line && n > below {
			below = n
		}
		if n > line && (above == 0 || n < above) {
			above = n
		}
	}
	switch {
	case below > 0 && above > 0:
		return fmt.Sprintf(" (the nearest lines with code: %d and %d)", below, above)
	case below > 0:
		return fmt.Sprintf(" (the nearest line with code: %d)", below)
	case above > 0:
		return fmt.Sprintf(" (the nearest line with code: %d)", above)
	}
	return ""
}

// ParseFileLine splits "file.c:LINE" (the file part has no spaces, the
// line is a positive decimal number); ok is false for anything else
// ("symbol", "symbol+0x10", a number).
func ParseFileLine(expr string) (file string, line int, ok bool) {
	i := strings.LastIndexByte(expr, ':')
	if i <= 0 || i == len(expr)-1 || strings.ContainsAny(expr[:i], " \t+") {
		return "", 0, false
	}
	n, err := strconv.Atoi(expr[i+1:])
	if err != nil || n <= 0 || expr[i+1] == '+' {
		return "", 0, false
	}
	return expr[:i], n, true
}

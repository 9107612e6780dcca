package format

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/ipc"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"one batch", nil},
		{"batches of 1", []Option{WithBatchRows(1)}},
		{"batches of 7", []Option{WithBatchRows(7)}},
		{"serial batches of 4", []Option{WithBatchRows(4), WithSerial()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedAlloc(t)
			want := fixtureRows()
			data := writeTrace(t, want, tc.opts...)
			r, got := readAll(t, data, WithReadAllocator(mem))
			defer r.Close()
			if r.Truncated() {
				t.Fatalf("complete file reads as truncated: %v", r.TruncatedError())
			}
			compareRows(t, got, want)
			checkMeta(t, r.Meta(), uint64(len(want)))
		})
	}
}

func compareRows(t *testing.T, got, want []Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("read %d rows, wrote %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func checkMeta(t *testing.T, m *Meta, events uint64) {
	t.Helper()
	want := fixtureMeta()
	f := fixtureFinal()
	if m.Version != FormatVersion || m.Scenario != want.Scenario || m.ScenarioText != want.ScenarioText ||
		!bytes.Equal(m.ELF, want.ELF) || m.CPUs != want.CPUs || m.Seed != want.Seed || m.ToolVersion != want.ToolVersion ||
		!reflect.DeepEqual(m.Quirks, want.Quirks) {
		t.Errorf("metadata: got %+v", m)
	}
	syms := slices.Clone(want.Symbols)
	slices.SortFunc(syms, func(a, b Symbol) int { return int(a.Addr>>1) - int(b.Addr>>1) })
	if !reflect.DeepEqual(m.Symbols, []Symbol{want.Symbols[1], want.Symbols[0], want.Symbols[2]}) {
		t.Errorf("symbols: got %+v", m.Symbols)
	}
	if !slices.Equal(m.OpNames, want.OpNames) || !slices.Equal(m.PercpuVars, want.PercpuVars) {
		t.Errorf("dictionaries: got %q %q", m.OpNames, m.PercpuVars)
	}
	if m.Status != StatusComplete || m.Events != events || !reflect.DeepEqual(m.Final, f) {
		t.Errorf("final metadata: got status %q events %d %+v", m.Status, m.Events, m.Final)
	}
}

func TestDeterministic(t *testing.T) {
	rows := fixtureRows()
	a := writeTrace(t, rows, WithBatchRows(5))
	b := writeTrace(t, rows, WithBatchRows(5))
	c := writeTrace(t, rows, WithBatchRows(5), WithSerial())
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatal("the same rows gave different files")
	}
	if d := writeTrace(t, rows[1:], WithBatchRows(5)); bytes.Equal(a, d) {
		t.Fatal("different rows gave the same file")
	}
}

// TestHeaderAndFooter checks the late-metadata design: the header carries
// placeholders, the footer the final values.
func TestHeaderAndFooter(t *testing.T) {
	rows := fixtureRows()
	data := writeTrace(t, rows, WithBatchRows(8))
	fr, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	footer := fr.Schema().Metadata()
	sr, err := ipc.NewReader(bytes.NewReader(data[8:]))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Release()
	header := sr.Schema().Metadata()
	for _, k := range MetaKeys {
		h, f := header.Values()[header.FindKey(k.Key)], footer.Values()[footer.FindKey(k.Key)]
		switch {
		case k.Key == KeyStatus:
			if h != StatusWriting || f != StatusComplete {
				t.Errorf("%s: header %q footer %q", k.Key, h, f)
			}
		case k.Late:
			if h != "" || f == "" {
				t.Errorf("%s: header %q footer %q", k.Key, h, f)
			}
		case h != f:
			t.Errorf("%s: header %q footer %q", k.Key, h, f)
		}
	}
	var want []string
	for i := 0; i < len(rows); i += 8 {
		j := min(len(rows), i+8)
		want = append(want, fmt.Sprintf("[%d,%d,%d]", rows[i].Seq, rows[j-1].Seq, j-i))
	}
	if got, want := footer.Values()[footer.FindKey(KeyBatchIndex)], "["+strings.Join(want, ",")+"]"; got != want {
		t.Errorf("batch index %s, want %s", got, want)
	}
}

func TestEmptyTrace(t *testing.T) {
	mem := checkedAlloc(t)
	data := writeTrace(t, nil)
	r, rows := readAll(t, data, WithReadAllocator(mem))
	defer r.Close()
	if len(rows) != 0 || r.NumEvents() != 0 || r.Truncated() {
		t.Fatalf("empty trace: %d rows, %d events, truncated %v", len(rows), r.NumEvents(), r.Truncated())
	}
	checkMeta(t, r.Meta(), 0)
}

// TestEmptyTraceAfterRows: an empty trace written after others (whose
// batches the writers pool) was indexed with a pooled batch's old seq range,
// and the reader rejected it as corrupt.
func TestEmptyTraceAfterRows(t *testing.T) {
	writeTrace(t, loopRows(83044))
	writeTrace(t, fixtureRows())
	data := writeTrace(t, nil)
	r, rows := readAll(t, data)
	defer r.Close()
	if len(rows) != 0 || r.NumEvents() != 0 {
		t.Fatalf("empty trace: %d rows, %d events", len(rows), r.NumEvents())
	}
}

func TestNulls(t *testing.T) {
	data := writeTrace(t, fixtureRows(), WithBatchRows(1000))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := r.Batch(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	rec := b.Record()
	var row Row
	for i := 0; i < b.Len(); i++ {
		b.Row(i, &row)
		for c, col := range Columns {
			stored := !rec.Column(c).IsNull(i)
			if want := row.Stored(c); stored != want {
				t.Errorf("row %d (%s) column %s: stored %v, the column table says %v", i, row.Kind, col.Name, stored, want)
			}
		}
	}
}

func TestAppendRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		row   Row
		undec bool // the writer's Meta declares no loads and no register deltas
	}{
		{"kind 0", Row{Seq: 100}, false},
		{"kind 15", Row{Seq: 100, Kind: 15}, false},
		{"register mask past the registers", Row{Seq: 100, Kind: KindInsn, Op: 1, Len: 1, RegMask: 1 << NumRegs}, false},
		{"write register mask past the registers", Row{Seq: 100, Kind: KindWrite, Size: 1, RegMask: 1 << NumRegs}, false},
		{"load of an unknown percpu var", Row{Seq: 100, Kind: KindLoad, Size: 8, Percpu: true, PercpuVar: "nope"}, false},
		{"load not declared", Row{Seq: 100, Kind: KindLoad, Size: 8}, true},
		{"insn registers not declared", Row{Seq: 100, Kind: KindInsn, Op: 1, Len: 1, RegMask: 1}, true},
		{"trap registers not declared", Row{Seq: 100, Kind: KindTrap, RegMask: 1 << 7}, true},
		{"seq not increasing", Row{Seq: 5, Kind: KindHalt}, false},
		{"insn length 0", Row{Seq: 100, Kind: KindInsn, Op: 1}, false},
		{"insn length 16", Row{Seq: 100, Kind: KindInsn, Op: 1, Len: 16}, false},
		{"op without name", Row{Seq: 100, Kind: KindInsn, Op: uint16(len(fixtureOps)), Len: 1}, false},
		{"service 0", Row{Seq: 100, Kind: KindService}, false},
		{"service 15", Row{Seq: 100, Kind: KindPerm, Service: 15}, false},
		{"cause 4", Row{Seq: 100, Kind: KindSerialize, Cause: 4}, false},
		{"rflags upper bits", Row{Seq: 100, Kind: KindInsn, Op: 1, Len: 1, RFlags: 1 << 32}, false},
		{"trap rflags upper bits", Row{Seq: 100, Kind: KindTrap, RFlags: 1 << 40}, false},
		{"unknown percpu var", Row{Seq: 100, Kind: KindPercpuRead, PercpuVar: "nope"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			meta := fixtureMeta()
			if tc.undec {
				meta.Loads, meta.Regs = false, false
			}
			w, err := NewWriter(&buf, meta)
			if err != nil {
				t.Fatal(err)
			}
			ok := Row{Seq: 5, Kind: KindHalt}
			if err := w.Append(&ok); err != nil {
				t.Fatal(err)
			}
			err = w.Append(&tc.row)
			var fe *Error
			if !errors.As(err, &fe) || fe.Batch != 0 || fe.Row != 1 {
				t.Fatalf("Append(%+v) = %v, want a positional error at batch 0 row 1", tc.row, err)
			}
			// The writer stays usable and the row was not written.
			next := Row{Seq: 200, Kind: KindHalt}
			if err := w.Append(&next); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_, rows := readAll(t, buf.Bytes())
			if len(rows) != 2 {
				t.Fatalf("read %d rows, want 2", len(rows))
			}
		})
	}
}

// TestAppendInsn checks that AppendInsn stores what Append stores for the
// same fields (bytes past the length ignored) and rejects what Append
// rejects.
func TestAppendInsn(t *testing.T) {
	rows := fixtureRows()
	var a, b bytes.Buffer
	wa, err := NewWriter(&a, fixtureMeta(), WithBatchRows(3))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := NewWriter(&b, fixtureMeta(), WithBatchRows(3))
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		r := rows[i]
		if err := wa.Append(&r); err != nil {
			t.Fatal(err)
		}
		if r.Kind != KindInsn {
			if err := wb.Append(&r); err != nil {
				t.Fatal(err)
			}
			continue
		}
		by := r.Bytes
		for j := int(r.Len); j < len(by); j++ {
			by[j] = 0xee // garbage past the instruction
		}
		if err := wb.AppendInsn(r.Seq, r.CPU, r.Task, r.Depth, r.RIP, r.Len, &by, r.Op, r.RSP, r.RFlags, r.RegMask, &r.Regs); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []Row{
		{Seq: 1, Len: 1}, // seq not after the last
		{Seq: 1 << 40, Len: 0},
		{Seq: 1 << 40, Len: 16},
		{Seq: 1 << 40, Len: 1, Op: uint16(len(fixtureOps))},
		{Seq: 1 << 40, Len: 1, RFlags: 1 << 32},
		{Seq: 1 << 40, Len: 1, RegMask: 1 << NumRegs},
	} {
		bad.Kind = KindInsn
		errA := wa.Append(&bad)
		errB := wb.AppendInsn(bad.Seq, bad.CPU, bad.Task, bad.Depth, bad.RIP, bad.Len, &bad.Bytes, bad.Op, bad.RSP, bad.RFlags, bad.RegMask, &bad.Regs)
		if errA == nil || errB == nil || errA.Error() != errB.Error() {
			t.Errorf("%+v: Append: %v; AppendInsn: %v", bad, errA, errB)
		}
	}
	if err := wa.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("AppendInsn and Append wrote different files")
	}
}

func TestAppendAllocs(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, fixtureMeta(), WithBatchRows(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := fixtureRows()
	rows = rows[:len(rows)-1] // the last has the largest seq
	seq := uint64(0)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range rows {
			r := rows[i]
			r.Seq = seq
			seq++
			if err := w.Append(&r); err != nil {
				t.Fatal(err)
			}
		}
	})
	// Only the msg column may grow its buffer (amortized).
	if allocs > 0.1 {
		t.Errorf("Append allocates: %.2f allocations per %d rows", allocs, len(rows))
	}
}

func TestSeek(t *testing.T) {
	rows := fixtureRows()
	data := writeTrace(t, rows, WithBatchRows(3))
	for _, truncated := range []bool{false, true} {
		t.Run(fmt.Sprint("truncated=", truncated), func(t *testing.T) {
			d := data
			if truncated {
				d = cutBeforeFooter(t, data)
			}
			r, err := NewReader(bytes.NewReader(d), int64(len(d)))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Truncated() != truncated {
				t.Fatalf("Truncated() = %v", r.Truncated())
			}
			for _, seq := range []uint64{0, 1, 6, 7, 9, 10, 30, 32, 33, 1 << 40, ^uint64(0)} {
				var got []uint64
				for row, err := range r.EventsFrom(seq) {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, row.Seq)
				}
				var want []uint64
				for _, row := range rows {
					if row.Seq >= seq {
						want = append(want, row.Seq)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("EventsFrom(%d) = %v, want %v", seq, got, want)
				}
			}
		})
	}
}

func TestCreateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.arrow")
	rows := fixtureRows()
	write := func(force bool) error {
		f, err := CreateFile(path, fixtureMeta(), force)
		if err != nil {
			return err
		}
		if _, err := os.Stat(path); err == nil && !force {
			t.Error("the file exists before Close")
		}
		for i := range rows {
			if err := f.Append(&rows[i]); err != nil {
				f.Abort()
				return err
			}
		}
		return f.Close()
	}
	if err := write(false); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.NumEvents() != uint64(len(rows)) {
		t.Errorf("%d events", r.NumEvents())
	}
	r.Close()
	if err := write(false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateFile without force: %v, want fs.ErrExist", err)
	}
	if err := write(true); err != nil {
		t.Errorf("with force: %v", err)
	}
	// Abort leaves nothing behind.
	f, err := CreateFile(filepath.Join(dir, "aborted.arrow"), fixtureMeta(), false)
	if err != nil {
		t.Fatal(err)
	}
	f.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only trace.arrow", names)
	}
}

// TestPartialFile: a writer that never closes leaves a .partial file that
// reads as truncated with every batch it flushed.
func TestPartialFile(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateFile(filepath.Join(dir, "t.arrow"), fixtureMeta(), false, WithBatchRows(4), WithSerial())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	rows := fixtureRows()
	for i := 0; i < 10; i++ {
		if err := f.Append(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(f.TempName())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Truncated() || r.NumEvents() != 8 {
		t.Fatalf("truncated %v with %d events, want 8", r.Truncated(), r.NumEvents())
	}
	if got := r.TruncatedError().Error(); !bytes.Contains([]byte(got), []byte("truncated after 8 events")) {
		t.Errorf("message %q", got)
	}
}

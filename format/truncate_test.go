package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// footerStart returns the offset of a complete file's footer.
func footerStart(t testing.TB, data []byte) int {
	t.Helper()
	n := len(data)
	if !bytes.Equal(data[n-6:], arrowMagic) {
		t.Fatal("no trailing magic")
	}
	return n - 10 - int(binary.LittleEndian.Uint32(data[n-10:]))
}

func cutBeforeFooter(t testing.TB, data []byte) []byte {
	return data[:footerStart(t, data)]
}

// batchEnds returns the end offset of each record batch message.
func batchEnds(t testing.TB, data []byte) []int {
	t.Helper()
	msgs, _ := scanStream(bytes.NewReader(data), int64(footerStart(t, data)))
	var ends []int
	for _, m := range msgs {
		if m.typ == msgRecord {
			ends = append(ends, int(m.end()))
		}
	}
	return ends
}

// TestTruncation cuts a trace at every offset: every cut file gives a clear
// message and exactly the complete batches before the cut.
func TestTruncation(t *testing.T) {
	rows := fixtureRows()
	const per = 4
	data := writeTrace(t, rows, WithBatchRows(per))
	ends := batchEnds(t, data)
	if len(ends) != (len(rows)+per-1)/per {
		t.Fatalf("%d batches", len(ends))
	}
	foot := footerStart(t, data)
	header := 8 + int(mustBlock(t, data, 8).metaLen)
	for _, cut := range cutPoints(data, header, ends, foot) {
		d := data[:cut]
		r, err := NewReader(bytes.NewReader(d), int64(len(d)))
		switch {
		case cut == 0:
			if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "truncated after 0 events") {
				t.Fatalf("cut at 0: %v", err)
			}
			continue
		case cut < header:
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d (inside the header): %v, want ErrTruncated", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		complete := 0
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		want := rows[:min(len(rows), complete*per)]
		var got []Row
		for row, err := range r.Events() {
			if err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			got = append(got, *row)
		}
		if !r.Truncated() {
			t.Fatalf("cut at %d: not reported truncated", cut)
		}
		msg := r.TruncatedError().Error()
		if !errors.Is(r.TruncatedError(), ErrTruncated) || !strings.Contains(msg, fmt.Sprintf("truncated after %d events", len(want))) {
			t.Fatalf("cut at %d: message %q", cut, msg)
		}
		if cut >= foot && !strings.Contains(msg, "footer") {
			t.Errorf("cut at %d (inside the footer): message %q", cut, msg)
		}
		if len(got) != len(want) {
			t.Fatalf("cut at %d: %d rows, want %d", cut, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("cut at %d: row %d differs", cut, i)
			}
		}
		if m := r.Meta(); m.Status != StatusWriting || m.Scenario != "text_poke_bp" || len(m.ELF) == 0 {
			t.Fatalf("cut at %d: metadata %+v", cut, m)
		}
		r.Close()
	}
}

// cutPoints picks where to cut: every offset of the header, around every
// batch boundary and the footer start, through the footer, and a spread of
// offsets inside batches.
func cutPoints(data []byte, header int, ends []int, foot int) []int {
	set := map[int]bool{}
	add := func(lo, hi, step int) {
		for c := max(0, lo); c < min(len(data), hi); c += step {
			set[c] = true
		}
	}
	add(0, header+16, 1)
	for _, e := range ends {
		add(e-4, e+4, 1)
	}
	add(foot-4, foot+4, 1)
	add(foot, len(data), 13)
	add(len(data)-12, len(data), 1)
	add(header, foot, (foot-header)/97+1)
	cuts := make([]int, 0, len(set))
	for c := range set {
		cuts = append(cuts, c)
	}
	slices.Sort(cuts)
	return cuts
}

func mustBlock(t testing.TB, data []byte, off int64) block {
	b, err := readBlock(bytes.NewReader(data), off, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadFiles(t *testing.T) {
	trace := writeTrace(t, fixtureRows())
	for _, tc := range []struct {
		name string
		data []byte
		is   error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "truncated after 0 events"},
		{"text", []byte("hello, this is not a trace at all\n"), ErrNotTrace, "no ARROW1 magic"},
		{"parquet", append([]byte("PAR1"), make([]byte, 64)...), ErrNotTrace, "no ARROW1 magic"},
		{"magic only", []byte("ARROW1\x00\x00"), ErrTruncated, "before the schema"},
		{"short magic", []byte("ARR"), ErrTruncated, "inside the Arrow magic"},
		{"magic then junk", append([]byte("ARROW1\x00\x00"), bytes.Repeat([]byte{7}, 100)...), ErrNotTrace, "no schema"},
		{"plain arrow file", plainArrowFile(t, nil), ErrNotTrace, "without patchtrace metadata"},
		{"plain arrow stream", plainArrowStream(t), ErrNotTrace, "no ARROW1 magic"},
		{"newer version", withVersion(t, trace, FormatVersion+1), ErrNewerVersion, fmt.Sprintf("trace format version %d; this patchtrace reads versions up to %d", FormatVersion+1, FormatVersion)},
		{"newer version, truncated", cutBeforeFooter(t, withVersion(t, trace, FormatVersion+1)), ErrNewerVersion, "upgrade"},
		{"version zero", withVersion(t, trace, 0), ErrNotTrace, "bad patchtrace.format_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.data), int64(len(tc.data)), WithName("x.arrow"))
			if r != nil || err == nil {
				t.Fatalf("NewReader = %v, %v; want an error", r, err)
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "x.arrow") {
				t.Errorf("error %q; want %v containing %q and the file name", err, tc.is, tc.msg)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not positional", err)
			}
		})
	}
}

// plainArrowFile is an Arrow IPC file with no patchtrace metadata.
func plainArrowFile(t testing.TB, md *arrow.Metadata) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, md)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	rec := b.NewRecord()
	defer rec.Release()
	var buf seekBuf
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func plainArrowStream(t testing.TB) []byte {
	var buf bytes.Buffer
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type seekBuf struct{ bytes.Buffer }

func (s *seekBuf) Seek(off int64, whence int) (int64, error) { return int64(s.Len()), nil }

// withVersion rewrites the version in a trace's header and footer. The
// value has the same length, so offsets stay valid.
func withVersion(t testing.TB, data []byte, v int) []byte {
	t.Helper()
	old := []byte(fmt.Sprint(FormatVersion))
	nv := []byte(fmt.Sprint(v))
	if len(old) != len(nv) {
		t.Fatal("version length changed")
	}
	d := bytes.Clone(data)
	key := []byte(KeyFormatVersion)
	n := 0
	for i := 0; ; {
		j := bytes.Index(d[i:], key)
		if j < 0 {
			break
		}
		// flatbuffers: the value string is just before the key's.
		lo := max(0, i+j-24)
		k := bytes.Index(d[lo:i+j], append([]byte{byte(len(old)), 0, 0, 0}, old...))
		i += j + len(key)
		if k < 0 {
			continue
		}
		copy(d[lo+k+4:], nv)
		n++
	}
	if n != 2 {
		t.Fatalf("rewrote the version %d times, want 2 (header and footer)", n)
	}
	return d
}

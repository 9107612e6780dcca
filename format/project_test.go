package format

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// collect reads rows through it, returning their text (what each row
// stores: see Row.StoredRow) and the first error.
func collect(rows func(yield func(*Row, error) bool)) (out []string, err error) {
	for r, e := range rows {
		if e != nil {
			return out, e
		}
		out = append(out, fmt.Sprintf("%+v", r.StoredRow()))
	}
	return out, nil
}

// TestScanMatchesArrow: the reader's own batch decoder (Events, Scan)
// reads what the Arrow library's does (Batch), on a clean file and on
// copies with bytes flipped in batches after the first (the first is
// decoded by the Arrow library when the file is opened): the same rows
// (what each stores: a damaged file's value in a column the row's kind
// does not use may be read by one and not the other), or an error naming
// the same batch as corrupt.
func TestScanMatchesArrow(t *testing.T) {
	rows := fixtureRows()
	var many []Row
	for k := 0; k < 6; k++ {
		for _, r := range rows {
			r.Seq = uint64(len(many))
			many = append(many, r)
		}
	}
	for _, finished := range []bool{true, false} {
		clean := writeTrace(t, many, WithBatchRows(8))
		if !finished {
			clean = cutBeforeFooter(t, clean) // no checksums: damage reaches the decoders
		}
		open := func(d []byte) *Reader {
			r, err := NewReader(bytes.NewReader(d), int64(len(d)), WithName("t.arrow"))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		want, err := collect(open(clean).eventsArrow(0))
		if err != nil || len(want) != len(many) {
			t.Fatalf("arrow read: %d rows, %v", len(want), err)
		}
		got, err := collect(open(clean).Events())
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("clean file: Events read %d rows (%v), the Arrow decoder %d", len(got), err, len(want))
		}
		msgs, _ := scanStream(bytes.NewReader(clean), int64(len(clean)))
		var recs []block
		for _, m := range msgs {
			if m.typ == msgRecord {
				recs = append(recs, m)
			}
		}
		if len(recs) < 3 {
			t.Fatalf("%d batches", len(recs))
		}
		rng := rand.New(rand.NewPCG(1, 2))
		failed, stricter := 0, 0
		flips := 200
		if finished {
			flips = 30 // (the checksums catch every one)
		}
		if testing.Short() {
			flips /= 4
		}
		for n := 0; n < flips; n++ {
			blk := recs[1+rng.IntN(len(recs)-1)]
			d := bytes.Clone(clean)
			pos := blk.off + 8 + rng.Int64N(blk.metaLen+blk.bodyLen-8)
			d[pos] ^= byte(1 + rng.IntN(255))
			r, err := NewReader(bytes.NewReader(d), int64(len(d)), WithName("t.arrow"))
			if err != nil {
				continue // refused at open (a scan of a cut file)
			}
			want, werr := collect(r.eventsArrow(0))
			r2, _ := NewReader(bytes.NewReader(d), int64(len(d)), WithName("t.arrow"))
			got, gerr := collect(r2.Events())
			if werr == nil && gerr != nil && errors.Is(gerr, ErrCorrupt) && strings.Contains(gerr.Error(), ": decode: column ") {
				// A zstd frame that does not decode to its stated size:
				// the Arrow library reads the stated bytes and stops.
				stricter++
				continue
			}
			if (werr == nil) != (gerr == nil) || fmt.Sprint(got) != fmt.Sprint(want) {
				for k := range min(len(got), len(want)) {
					if got[k] != want[k] {
						t.Errorf("row %d: Events %s\nArrow %s", k, got[k], want[k])
						break
					}
				}
				t.Fatalf("finished %v, byte %d flipped: Events read %d rows, error %v; the Arrow decoder %d rows, error %v",
					finished, pos, len(got), gerr, len(want), werr)
			}
			if werr != nil {
				failed++
				var we, ge *Error
				if !errors.As(werr, &we) || !errors.As(gerr, &ge) || we.Batch != ge.Batch || !errors.Is(gerr, ErrCorrupt) {
					t.Fatalf("finished %v, byte %d flipped: Events error %v, the Arrow decoder's %v", finished, pos, gerr, werr)
				}
			}
		}
		if failed == 0 {
			t.Fatal("no flip was detected: the test damages nothing")
		}
		t.Logf("finished %v: %d flips detected by both decoders, %d by Events only (a zstd frame longer than stated)", finished, failed, stricter)
	}
}

// TestScanProjection: Scan decodes the columns asked for, for the kinds
// asked for; other rows have their common columns only.
func TestScanProjection(t *testing.T) {
	data := writeTrace(t, fixtureRows(), WithBatchRows(4))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	full, err := collect(r.eventsArrow(0))
	if err != nil {
		t.Fatal(err)
	}
	p := Projection{Columns: []int{ColAddr, ColNew, ColLen}, Kinds: []Kind{KindWrite}}
	i := 0
	sawWrite := false
	for row, err := range r.Scan(p) {
		if err != nil {
			t.Fatal(err)
		}
		var want Row
		all := fixtureRows()[i]
		want = Row{Seq: all.Seq, Kind: all.Kind, CPU: all.CPU, Task: all.Task, Depth: all.Depth, RIP: all.RIP}
		if all.Kind == KindWrite {
			want.Addr, want.HasAddr, want.New = all.Addr, true, all.New
			sawWrite = true
		}
		if *row != want {
			t.Fatalf("row %d: got %+v, want %+v (full row %s)", i, *row, want, full[i])
		}
		i++
	}
	if i != len(full) || !sawWrite {
		t.Fatalf("%d rows of %d, a write among them: %v", i, len(full), sawWrite)
	}
}

// TestScanStopsWorkers: a consumer that stops early (or meets an error)
// leaves no decoding goroutine behind.
func TestScanStopsWorkers(t *testing.T) {
	var many []Row
	for k := 0; k < 40; k++ {
		for _, r := range fixtureRows() {
			r.Seq = uint64(len(many))
			many = append(many, r)
		}
	}
	data := writeTrace(t, many, WithBatchRows(8))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for _, stop := range []int{0, 1, 50, 300} {
		n := 0
		for _, err := range r.Events() {
			if err != nil {
				t.Fatal(err)
			}
			if n == stop {
				break
			}
			n++
		}
	}
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines after the scans stopped, %d before", g, before)
	}
}

// TestScanLargeBatch: a batch whose decompressed buffers add up to more
// than the decoder's 64 MiB per-buffer limit (a 300 Ki-row batch holds
// ~100 MiB: record --batch-rows allows up to MaxBatchRows) reads through
// Events, Scan and the Arrow path. The reader's decoder counted the
// arena filled so far against the limit, so such a batch read as corrupt.
func TestScanLargeBatch(t *testing.T) {
	const n = 300 << 10
	body := fixtureRows()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, fixtureMeta(), WithBatchRows(n))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := body[i%len(body)]
		r.Seq = uint64(i)
		if err := w.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumBatches() != 1 {
		t.Fatalf("%d batches, want 1", r.NumBatches())
	}
	for name, rows := range map[string]func(yield func(*Row, error) bool){
		"Events": r.Events(), "Scan": r.Scan(Projection{Columns: []int{ColRegRAX, ColNew}, Kinds: []Kind{KindInsn, KindWrite}}),
	} {
		k := 0
		for row, err := range rows {
			if err != nil {
				t.Fatalf("%s: row %d: %v", name, k, err)
			}
			if want := body[k%len(body)]; name == "Events" && row.RegMask != want.RegMask {
				t.Fatalf("%s: row %d: register mask %#x, want %#x", name, k, row.RegMask, want.RegMask)
			}
			k++
		}
		if k != n {
			t.Errorf("%s read %d rows, want %d", name, k, n)
		}
	}
}

// TestScanReusedRow: Scan fills one Row for every row, clearing only what
// the previous row's kind filled; each row must read as if filled into a
// zero Row, whatever kinds come before it, for every projection (rows of
// every kind in a random order, register deltas present in some rows).
func TestScanReusedRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	fix := fixtureRows()
	var rows []Row
	for len(rows) < 600 {
		r := fix[rng.IntN(len(fix))]
		if rng.IntN(3) == 0 {
			r.RegMask = rng.Uint32() & (1<<NumRegs - 1)
			for k := range r.Regs {
				if r.RegMask&(1<<k) != 0 {
					r.Regs[k] = rng.Uint64()
				} else {
					r.Regs[k] = 0
				}
			}
		}
		r.Seq = uint64(len(rows))
		rows = append(rows, r)
	}
	data := writeTrace(t, rows, WithBatchRows(64))
	rd, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	projs := []Projection{
		AllColumns,
		{Columns: []int{ColAddr, ColNew, ColLen, ColBytes, ColRegRSP, ColRegRAX}, Kinds: []Kind{KindWrite, KindInsn, KindLoad}},
		{Columns: []int{}, Kinds: []Kind{KindInsn}},
		{Kinds: []Kind{KindTrap, KindWrite, KindService, KindMarker}},
	}
	for pi, proj := range projs {
		p := proj.compile()
		var want []Row
		for i := range rd.NumBatches() {
			b, err := rd.decodeBatch(i, p)
			if err != nil {
				t.Fatal(err)
			}
			for j := range b.Len() {
				var fresh Row
				b.rowProjected(j, &fresh, p)
				want = append(want, fresh)
			}
			b.Release()
		}
		n := 0
		for row, err := range rd.Scan(proj) {
			if err != nil {
				t.Fatal(err)
			}
			if *row != want[n] {
				t.Fatalf("projection %d, row %d (%s after %s): reused row %+v, fresh %+v", pi, n, want[n].Kind, want[max(n-1, 0)].Kind, *row, want[n])
			}
			n++
		}
		if n != len(rows) {
			t.Fatalf("projection %d: %d rows of %d", pi, n, len(rows))
		}
	}
	// Every column: what the Arrow library's decoder reads.
	arrowRows, err := collect(rd.eventsArrow(0))
	if err != nil {
		t.Fatal(err)
	}
	scanned, err := collect(rd.Scan(AllColumns))
	if err != nil || strings.Join(scanned, "\n") != strings.Join(arrowRows, "\n") {
		t.Fatalf("Scan(AllColumns) reads other rows than the Arrow decoder (%v)", err)
	}
}

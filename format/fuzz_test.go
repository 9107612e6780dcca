package format

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/internal/memstat"
)

// Fuzz limits: what reading one input may cost. Decoding a batch
// allocates its buffers (each at most maxAlloc, checked against the
// message before decoding) and the reader's copies of the input; an input
// a few KiB long cost 0.5-1 GB before the checks (issue 17).
const (
	fuzzReadAlloc   = 3 * maxAlloc // a few buffers' worth of one batch
	fuzzReadPerByte = 256
	fuzzTimeLimit   = 10 * time.Second
)

// fuzzSeeds are the reproducers of the hostile-file tests: each rewrites
// a field of a written trace.
func fuzzSeeds(f *testing.F) [][]byte {
	trace := writeTrace(f, fixtureRows(), WithBatchRows(8))
	cut := cutBeforeFooter(f, trace)
	msgs := messages(f, cut)
	rec, dict := firstRecord(f, msgs), msgs[1]
	edit := func(d []byte, fn func(d []byte)) []byte {
		d = bytes.Clone(d)
		fn(d)
		return d
	}
	seeds := [][]byte{
		trace, cut, trace[:len(trace)/2], writeTrace(f, nil), plainArrowFile(f, nil),
		[]byte("ARROW1\x00\x00"), {},
		// A negative field-node length, a negative dictionary length.
		edit(cut, func(d []byte) {
			rb, base, _ := msgTable(f, d, rec.off)
			put64(d, vecPos(f, rb, base, 1, 0, 0), -5)
		}),
		edit(cut, func(d []byte) {
			rb, base, _ := msgTable(f, d, dict.off)
			put64(d, vecPos(f, rb, base, 1, 0, 0), -1)
		}),
		// A zstd frame header asking for a 480 MiB window.
		edit(cut, func(d []byte) {
			rb, base, blk := msgTable(f, d, rec.off)
			n, _, _ := rb.vector(2, 16)
			for i := 0; i < n; i++ {
				off := int(binary.LittleEndian.Uint64(d[vecPos(f, rb, base, 2, i, 0):]))
				l := int(binary.LittleEndian.Uint64(d[vecPos(f, rb, base, 2, i, 1):]))
				fr := d[int(blk.off+blk.metaLen)+off:][:l]
				if l >= 14 && binary.LittleEndian.Uint32(fr[8:]) == zstdMagic && fr[12]&(1<<5) == 0 {
					fr[13] = (28-10)<<3 | 7
				}
			}
		}),
		// A flipped byte in column data; footer cpus 4 -> 2.
		edit(trace, func(d []byte) { d[batchEnds(f, d)[1]-24] ^= 0x10 }),
		edit(trace, func(d []byte) {
			p, _ := footerValue(f, d, KeyCPUs)
			d[p] = '2'
		}),
	}
	// A write of 0xffffffff bytes, and one on a CPU the trace does not have.
	for _, fn := range []func(rows []Row){
		func(rows []Row) { rows[3].Size = 0xffffffff },
		func(rows []Row) { rows[5].CPU = 7 },
	} {
		rows := fixtureRows()
		fn(rows)
		seeds = append(seeds, writeTrace(f, rows, WithBatchRows(8)))
	}
	return seeds
}

// FuzzReader: no input makes the reader panic, allocate more than a bound
// linear in its size or run long, and NewReader returns a reader exactly
// when it returns no error. CI runs it for 5 s (test.sh); a longer run:
// go test ./format -run '^$' -fuzz '^FuzzReader$' -fuzztime 30m.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		limit := uint64(fuzzReadAlloc + fuzzReadPerByte*len(data))
		alloc, ok := memstat.Within(limit, func() { readFuzzed(t, data) })
		if d := time.Since(start); d > fuzzTimeLimit {
			t.Fatalf("took %v on %d bytes", d, len(data))
		}
		if !ok {
			t.Fatalf("allocated %d bytes on %d bytes of input (limit %d)", alloc, len(data), limit)
		}
	})
}

func readFuzzed(t *testing.T, data []byte) {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if (r == nil) == (err == nil) {
		t.Fatalf("NewReader = %v, %v", r, err)
	}
	if r == nil {
		return
	}
	defer r.Close()
	m := r.Meta()
	for i := 0; i < r.NumBatches(); i++ {
		if _, err := r.BatchInfo(i); err != nil {
			break
		}
	}
	for row, err := range r.Events() {
		if (row == nil) == (err == nil) {
			t.Fatalf("Events yielded %v, %v", row, err)
		}
		if err != nil {
			break
		}
		if err := CheckRow(row, m.CPUs); err != nil {
			t.Fatalf("the reader returned a row that CheckRow refuses: %v", err)
		}
	}
	if _, err := r.Seek(5); err != nil {
		return
	}
}

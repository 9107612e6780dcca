package analyze_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/memstat"
	"github.com/patchtrace/patchtrace/internal/slice"
)

// Fuzz limits for analyzing rows: a row may add a few pages of replayed
// memory (a store straddles two), per-byte history in cmc and a finding;
// the state before the first row (the slice image) is a constant.
const (
	fuzzRowBytes      = 24
	fuzzAnalyzeBase   = 64 << 20
	fuzzAnalyzePerRow = 64 << 10
	fuzzAnalyzeTime   = 10 * time.Second
)

// fuzzRows decodes data into rows, fuzzRowBytes each: the kind, CPU,
// address (near a symbol of the slice, in the alias or per-CPU areas, or
// raw), size and the other fields from the bytes, with increasing seq.
func fuzzRows(md *format.Meta, data []byte) []format.Row {
	var rows []format.Row
	for i := 0; i+fuzzRowBytes <= len(data); i += fuzzRowBytes {
		b := data[i : i+fuzzRowBytes]
		v := binary.LittleEndian.Uint64(b[8:])
		r := format.Row{Seq: uint64(i / fuzzRowBytes), Kind: format.Kind(b[0] % 15), CPU: uint16(b[1] % uint8(md.CPUs+2)),
			Task: uint32(b[2] % 4), Depth: b[3] % 4, Len: b[4] % 17, Op: uint16(b[5] % 8)}
		sym := md.Symbols[int(b[6])%len(md.Symbols)]
		switch b[7] % 4 {
		case 0:
			r.RIP, r.Addr = sym.Addr+uint64(b[5]%64), sym.Addr+uint64(b[4])
		case 1:
			r.RIP, r.Addr = sym.Addr, v
		case 2:
			r.RIP, r.Addr = v, sym.Addr+v%4096
		default:
			r.RIP, r.Addr = v, v^slice.PercpuBase
		}
		r.HasAddr = true
		r.Size = uint32(b[16])
		if b[17]&0x80 != 0 {
			r.Size = binary.LittleEndian.Uint32(b[16:])
		}
		r.Old, r.New = v>>8, v^uint64(b[18])<<56
		r.Alias, r.AliasAddr = b[19]&1 != 0, v
		r.Vector, r.HasVector = b[20], b[19]&2 != 0
		r.PermOld, r.PermNew = b[21]&7, b[21]>>3&7
		r.Service = format.Service(b[22] % 14)
		r.Cause = format.Cause(b[22] % 5)
		r.Args = [4]uint64{sym.Addr, v, uint64(b[23]), uint64(b[20])}
		r.Ret = sym.Addr
		r.Percpu, r.PercpuCPU, r.PercpuOff = b[19]&4 != 0, uint16(b[23]%uint8(md.CPUs+1)), uint32(b[18])*8
		copy(r.Bytes[:], b[8:])
		if r.Kind == format.KindFault || r.Kind == format.KindMarker && b[23]&1 != 0 {
			r.Msg = "fuzz"
		}
		rows = append(rows, r)
	}
	return rows
}

// FuzzAnalyzeRows: no sequence of rows makes an analyzer (or the replayed
// state under it) panic, allocate more than a bound linear in the number
// of rows or run long. Rows with values out of range are refused by
// Append; the others are analyzed. CI runs it for 5 s (test.sh); a longer
// run: go test ./analyze -run '^$' -fuzz '^FuzzAnalyzeRows$' -fuzztime 30m.
func FuzzAnalyzeRows(f *testing.F) {
	md := hostileMeta(f)
	seed := make([]byte, 0, 64*fuzzRowBytes)
	for i := 0; i < 64; i++ {
		b := make([]byte, fuzzRowBytes)
		for j := range b {
			b[j] = byte(i*7 + j*13)
		}
		seed = append(seed, b...)
	}
	f.Add(seed)
	// The reproducers: a row on a CPU the trace does not have, a write of
	// 0xffffffff bytes to the text, a perm change of 2^32-1 pages.
	f.Add([]byte{1, byte(md.CPUs), 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{6, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x3f, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := fuzzRows(&md, data)
		start := time.Now()
		limit := uint64(fuzzAnalyzeBase + fuzzAnalyzePerRow*len(rows))
		alloc, ok := memstat.Within(limit, func() {
			live, err := analyze.NewLive(&md, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				r := rows[i]
				if err := live.Append(&r); err != nil && format.CheckRow(&r, md.CPUs) == nil {
					t.Fatalf("Append refused a valid row: %v", err)
				}
			}
			res := live.Finish()
			if res.Verdict == "" {
				t.Fatal("no verdict")
			}
		})
		if d := time.Since(start); d > fuzzAnalyzeTime {
			t.Fatalf("took %v on %d rows", d, len(rows))
		}
		if !ok {
			t.Fatalf("allocated %d bytes on %d rows (limit %d)", alloc, len(rows), limit)
		}
	})
}

package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// decodeHybrid decodes n values of the RLE/bit-packed hybrid at bit width
// bw as the Parquet format defines it (a reference for the tests: runs
// are decoded one by one, bit by bit).
func decodeHybrid(t *testing.T, data []byte, bw, n int) []uint64 {
	t.Helper()
	var out []uint64
	for len(out) < n {
		h, k := binary.Uvarint(data)
		if k <= 0 {
			t.Fatalf("bad run header after %d values", len(out))
		}
		data = data[k:]
		if h&1 == 1 {
			groups := int(h >> 1)
			if len(data) < groups*bw {
				t.Fatalf("bit-packed run of %d groups, %d bytes left", groups, len(data))
			}
			for i := 0; i < 8*groups; i++ {
				var v uint64
				for b := 0; b < bw; b++ {
					bit := i*bw + b
					v |= uint64(data[bit/8]>>(bit%8)&1) << b
				}
				out = append(out, v)
			}
			data = data[groups*bw:]
			continue
		}
		nb := (bw + 7) / 8
		var v uint64
		for b := 0; b < nb; b++ {
			v |= uint64(data[b]) << (8 * b)
		}
		data = data[nb:]
		for i := 0; i < int(h>>1); i++ {
			out = append(out, v)
		}
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes after %d values", len(data), n)
	}
	return out[:n]
}

// decodeDelta decodes DELTA_BINARY_PACKED values (reference) and returns
// the widest miniblock's bit width.
func decodeDelta(t *testing.T, data []byte) ([]uint64, int) {
	t.Helper()
	uv := func() uint64 {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			t.Fatal("bad varint")
		}
		data = data[k:]
		return v
	}
	zz := func() int64 {
		v, k := binary.Varint(data)
		if k <= 0 {
			t.Fatal("bad zigzag varint")
		}
		data = data[k:]
		return v
	}
	block, minis, total := int(uv()), int(uv()), int(uv())
	first := uint64(zz())
	if total == 0 {
		return nil, 0
	}
	out := []uint64{first}
	per := block / minis
	widest := 0
	for len(out) < total {
		minD := uint64(zz())
		widths := data[:minis]
		data = data[minis:]
		for mb := 0; mb < minis && len(out) < total; mb++ {
			bw := int(widths[mb])
			widest = max(widest, bw)
			for i := 0; i < per; i++ {
				var v uint64
				for b := 0; b < bw; b++ {
					bit := i*bw + b
					v |= uint64(data[bit/8]>>(bit%8)&1) << b
				}
				if len(out) < total {
					out = append(out, out[len(out)-1]+minD+v)
				}
			}
			data = data[per*bw/8:]
		}
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes after the values", len(data))
	}
	return out, widest
}

// TestLevelRuns encodes validity bitmaps of every shape (sparse, dense,
// runs, partial last byte, garbage past the last row) and decodes the
// levels with the reference decoder; two pages of whole bytes concatenate.
func TestLevelRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200, 1000, 4099} {
		for shape := range 5 {
			valid := make([]byte, (n+7)/8+1)
			for i := range valid {
				valid[i] = 0xA5 // garbage past the last row
			}
			want := make([]uint64, n)
			run := 0
			var v uint64
			for j := 0; j < n; j++ {
				switch shape {
				case 0: // sparse
					v = b2u(rng.IntN(10) == 0)
				case 1: // dense
					v = b2u(rng.IntN(10) != 0)
				case 2: // runs of random length
					if run == 0 {
						run, v = 1+rng.IntN(40), v^1
					}
					run--
				case 3:
					v = 0
				case 4:
					v = 1
				}
				want[j] = v
				if v == 1 {
					valid[j/8] |= 1 << (j % 8)
				} else {
					valid[j/8] &^= 1 << (j % 8)
				}
			}
			got := decodeHybrid(t, appendLevelRuns(nil, valid, n), 1, n)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("n %d shape %d: levels %v, want %v", n, shape, got, want)
			}
			if n%8 == 0 {
				two := appendLevelRuns(appendLevelRuns(nil, valid, n), valid, n)
				if got := decodeHybrid(t, two, 1, 2*n); fmt.Sprint(got) != fmt.Sprint(append(want, want...)) {
					t.Fatalf("n %d shape %d: two pages' levels differ", n, shape)
				}
			}
		}
		if got := decodeHybrid(t, appendLevelRuns(nil, nil, n), 1, n); n > 0 && (got[0] != 1 || got[n-1] != 1) {
			t.Fatalf("n %d, no bitmap: %v", n, got)
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// TestDeltaBinaryPacked encodes increasing sequences with gaps, values
// that wrap (the maximum u64 next to 0, or u32 for INT32), random values,
// constant runs and every length around the block and miniblock sizes, at
// both widths, and decodes them; no INT32 miniblock is wider than 32 bits.
func TestDeltaBinaryPacked(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, w := range []int{8, 4} {
		for _, n := range []int{0, 1, 2, 31, 32, 33, 127, 128, 129, 130, 257, 1000} {
			for shape := range 6 {
				vals := make([]uint64, n)
				for i := range vals {
					switch shape {
					case 0:
						vals[i] = uint64(i) + 100
					case 1:
						vals[i] = uint64(i) * uint64(1+rng.IntN(3))
					case 2:
						vals[i] = rng.Uint64()
					case 3:
						vals[i] = math.MaxUint64 - uint64(n/2) + uint64(i) // wraps to 0
					case 4:
						vals[i] = 7 // every difference 0
					case 5:
						vals[i] = uint64(i/40) * 0x80000000 // runs of 0, jumps of 2^31
					}
					if w == 4 {
						vals[i] = uint64(uint32(vals[i]))
					}
				}
				var raw []byte
				for _, v := range vals {
					if w == 8 {
						raw = binary.LittleEndian.AppendUint64(raw, v)
					} else {
						raw = binary.LittleEndian.AppendUint32(raw, uint32(v))
					}
				}
				enc, _ := appendDelta(nil, raw, n, w, make([]uint64, 3))
				got, widest := decodeDelta(t, enc)
				if w == 4 {
					for i := range got {
						got[i] = uint64(uint32(got[i]))
					}
					if widest > 32 {
						t.Errorf("n %d shape %d: INT32 miniblock %d bits wide", n, shape, widest)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(vals[:len(got)]) || len(got) != n {
					t.Fatalf("w %d n %d shape %d: decoded %v, want %v", w, n, shape, got, vals)
				}
			}
		}
	}
}

// TestExportParquetDeterministic: the export's bytes depend on the trace
// only, not on how many encoders share the columns out.
func TestExportParquetDeterministic(t *testing.T) {
	data := writeTrace(t, mixedRows(20000), WithBatchRows(4096))
	var outs [][]byte
	for _, procs := range []int{1, 2, 3} {
		prev := runtime.GOMAXPROCS(procs)
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		var pq bytes.Buffer
		err = ExportParquet(r, &pq)
		runtime.GOMAXPROCS(prev)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, pq.Bytes())
	}
	for i := 1; i < len(outs); i++ {
		if !bytes.Equal(outs[0], outs[i]) {
			t.Fatalf("export with %d encoders differs from the one with 1", i+1)
		}
	}
}

// TestExportParquetSmallGroups exports row groups smaller than a batch,
// so that the definition levels do not fit the room kept for them in
// front of the values (they are copied instead), and row groups of
// several batches.
func TestExportParquetSmallGroups(t *testing.T) {
	defer func(n int) { parquetRowGroupRows = n }(parquetRowGroupRows)
	rows := mixedRows(20000)
	data := writeTrace(t, rows, WithBatchRows(4096))
	for _, groupRows := range []int{64, 9000} {
		parquetRowGroupRows = groupRows
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		var pq bytes.Buffer
		if err := ExportParquet(r, &pq); err != nil {
			t.Fatal(err)
		}
		got, _ := readParquet(t, pq.Bytes(), r)
		compareRows(t, got, rows)
		r.Close()
	}
}

// TestEachSet visits the set rows of bitmaps of every density and length
// (whole words of nulls, a partial last word, garbage past the last row)
// and of a nil bitmap, against a bit-by-bit reading.
func TestEachSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 7, 63, 64, 65, 127, 128, 129, 1000, 4099} {
		for _, density := range []float64{0, 0.01, 0.5, 0.99, 1} {
			valid := make([]byte, (n+7)/8+8)
			for i := range valid {
				valid[i] = 0xFF // garbage past the last row
			}
			var want []int
			for j := range n {
				if rng.Float64() < density {
					want = append(want, j)
				} else {
					valid[j>>3] &^= 1 << (j & 7)
				}
			}
			var got []int
			eachSet(valid, n, func(j int) { got = append(got, j) })
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("n %d density %v: visited %v, want %v", n, density, got, want)
			}
		}
		var got []int
		eachSet(nil, n, func(j int) { got = append(got, j) })
		if len(got) != n || n > 0 && got[n-1] != n-1 {
			t.Fatalf("nil bitmap, n %d: visited %d rows", n, len(got))
		}
	}
}

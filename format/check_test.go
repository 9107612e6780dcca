package format

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestColumnChecksAgreeWithRows: the column-at-a-time checks a batch
// passes first (valuesFine, dictFine) never pass a batch the row-by-row
// checks find an error in, and pass clean ones. Random batches: kinds,
// CPUs, per-CPU CPUs, lengths and sizes mostly in range, some out, some
// rows null.
func TestColumnChecksAgreeWithRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	clean, caught := 0, 0
	for trial := range 4000 {
		n := 1 + rng.IntN(40)
		cpus := 1 + rng.IntN(4)
		bad := trial%2 == 0 // half the batches have one value out of range
		var c [NumColumns]colView
		vals := func(w int) []byte { return make([]byte, n*w) }
		bits := func(nullable bool) []byte {
			if !nullable {
				return nil
			}
			v := make([]byte, (n+7)/8)
			for j := range n {
				if rng.IntN(4) != 0 {
					v[j>>3] |= 1 << (j & 7)
				}
			}
			return v
		}
		c[ColKind].vals = vals(1)
		c[ColCPU].vals = vals(2)
		c[ColPercpuCPU] = colView{valid: bits(true), vals: vals(2)}
		c[ColLen] = colView{valid: bits(rng.IntN(2) == 0), vals: vals(1)}
		c[ColSize] = colView{valid: bits(true), vals: vals(4)}
		for j := range n {
			c[ColKind].vals[j] = byte(rng.IntN(numKinds - 1))
			if rng.IntN(3) == 0 {
				c[ColKind].vals[j] = byte(KindInsn - 1)
			}
			binary.LittleEndian.PutUint16(c[ColCPU].vals[2*j:], uint16(rng.IntN(cpus)))
			binary.LittleEndian.PutUint16(c[ColPercpuCPU].vals[2*j:], uint16(rng.IntN(cpus)))
			c[ColLen].vals[j] = byte(1 + rng.IntN(15))
			binary.LittleEndian.PutUint32(c[ColSize].vals[4*j:], uint32(1+rng.IntN(8)))
			if Kind(c[ColKind].vals[j]+1) == KindInsn && c[ColLen].valid != nil {
				c[ColLen].valid[j>>3] |= 1 << (j & 7)
			}
		}
		if bad {
			j := rng.IntN(n)
			switch rng.IntN(6) {
			case 0:
				binary.LittleEndian.PutUint16(c[ColCPU].vals[2*j:], uint16(cpus+rng.IntN(3)))
			case 1:
				binary.LittleEndian.PutUint16(c[ColPercpuCPU].vals[2*j:], uint16(cpus+rng.IntN(3)))
			case 2:
				c[ColLen].vals[j] = []byte{0, 16, 255}[rng.IntN(3)]
			case 3:
				if c[ColLen].valid != nil {
					c[ColLen].valid[j>>3] &^= 1 << (j & 7)
				}
			case 4, 5:
				binary.LittleEndian.PutUint32(c[ColSize].vals[4*j:], []uint32{0, 9, MaxTrapFrame, MaxTrapFrame + 1, MaxPermPages + 1, 1 << 31}[rng.IntN(6)])
			}
		}
		err := checkValueRows(&c, n, cpus)
		fine := valuesFine(&c, n, cpus)
		if fine && err != nil {
			t.Fatalf("trial %d: valuesFine passes a batch with %v", trial, err)
		}
		if !bad && !fine {
			t.Fatalf("trial %d: valuesFine refuses a clean batch", trial)
		}
		if err != nil {
			caught++
		} else {
			clean++
		}
		// Dictionary indexes of 1 and 2 bytes against a dictionary of
		// 0..300 names.
		for _, w := range []int{1, 2} {
			names := rng.IntN(300)
			idx := make([]byte, n*w)
			valid := bits(true)
			for j := range n {
				v := rng.IntN(names + 1)
				if rng.IntN(8) == 0 {
					v = -1 - rng.IntN(3) + rng.IntN(2)*(1<<(8*w-1))
				}
				if w == 1 {
					idx[j] = byte(v)
				} else {
					binary.LittleEndian.PutUint16(idx[2*j:], uint16(v))
				}
			}
			cv := colView{valid: valid, vals: idx}
			rowsBad := false
			for j := range n {
				i := int(int8(idx[j]))
				if w == 2 {
					i = int(int16(le16(idx, j)))
				}
				if cv.ok(j) && (i < 0 || i >= names) {
					rowsBad = true
				}
			}
			if dictFine(idx, w, names) && rowsBad {
				t.Fatalf("trial %d: dictFine passes a %d-byte index out of %d names", trial, w, names)
			}
		}
	}
	if clean == 0 || caught == 0 {
		t.Fatalf("%d clean batches, %d caught", clean, caught)
	}
}

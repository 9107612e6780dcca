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

// TestWordChecksAgreeWithLoops holds the word-at-a-time checks of
// valuesFine (insnLensFine, u16sBelow) to the plain loops they stand for,
// on random columns whose values sit near the limits.
func TestWordChecksAgreeWithLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	lensFine := func(kinds, lens, valid []byte) bool {
		for j := range kinds {
			if Kind(kinds[j]+1) == KindInsn && (lens[j]-1 > 14 || valid != nil && valid[j>>3]&(1<<(j&7)) == 0) {
				return false
			}
		}
		return true
	}
	agreeLens, agreeU16 := [2]int{}, [2]int{}
	for trial := range 20000 {
		n := rng.IntN(70)
		kinds, lens := make([]byte, n), make([]byte, n)
		var valid []byte
		if trial%2 == 0 {
			valid = make([]byte, (n+7)/8)
		}
		for j := range n {
			kinds[j] = byte(KindInsn - 1)
			if rng.IntN(3) == 0 {
				kinds[j] = byte(rng.IntN(256))
			}
			lens[j] = byte(1 + rng.IntN(15))
			if rng.IntN(40) == 0 {
				lens[j] = []byte{0, 16, 17, 0x80, 0xFF, 0x10, 0x20, 0x40}[rng.IntN(8)]
			}
			if valid != nil && rng.IntN(60) != 0 {
				valid[j>>3] |= 1 << (j & 7)
			}
		}
		want := lensFine(kinds, lens, valid)
		if got := insnLensFine(kinds, lens, valid); got != want {
			t.Fatalf("insnLensFine(%x, %x, %x) = %v, the loop says %v", kinds, lens, valid, got, want)
		}
		agreeLens[b2u32(want)]++

		b := make([]byte, 2*n+rng.IntN(2))
		limit := 1 + rng.IntN(5)
		if rng.IntN(4) == 0 {
			limit = rng.IntN(0x10002)
		}
		for j := 0; j+1 < len(b); j += 2 {
			v := rng.IntN(limit + 1)
			if rng.IntN(8) != 0 {
				v = rng.IntN(max(limit, 1))
			}
			b[j], b[j+1] = byte(v), byte(v>>8)
		}
		wantU := limit > 0xFFFF || maxU16(b) < limit
		if got := u16sBelow(b, limit); got != wantU {
			t.Fatalf("u16sBelow(%x, %d) = %v, want %v", b, limit, got, wantU)
		}
		agreeU16[b2u32(wantU)]++
	}
	if min(agreeLens[0], agreeLens[1], agreeU16[0], agreeU16[1]) < 1000 {
		t.Fatalf("too few of each answer: lens %v, u16 %v", agreeLens, agreeU16)
	}
}

package emu

import (
	"bytes"
	"testing"
)

func TestImageBytes(t *testing.T) {
	code := cat(asmNop, asmSti, asmSelf)
	img := testImage(t, code)
	for _, tc := range []struct {
		name string
		addr uint64
		n    uint64
		want []byte
	}{
		{"code", testText, uint64(len(code)), code},
		{"inside", testText + 1, 1, asmSti},
		{"to the section's end", testText + pageSize - 2, 2, []byte{0, 0}},
		{"past the section's end", testText + pageSize - 2, 3, nil},
		{"before the section", testText - 1, 2, nil},
		{"NOBITS", testData, 8, nil},
		{"wrapping", testText + 8, ^uint64(0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := img.Bytes(tc.addr, tc.n); !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("Bytes(%#x, %d) = % x, want % x", tc.addr, tc.n, got, tc.want)
			}
		})
	}
}

// TestDescribeReadsBack: the machine names addresses as replay and the
// analyzers do, "symbol+0xoff", a form Resolve (and so an injection rule)
// reads back; it used to append " (0xaddr)".
func TestDescribeReadsBack(t *testing.T) {
	img, err := LoadImage("x.elf", builtinELF(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint64{img.Entry, img.Entry + 1, 0x1000} {
		d := img.Describe(a)
		if back, err := img.Resolve(d); err != nil || back != a {
			t.Errorf("Describe(%#x) = %q, which resolves to %#x, %v", a, d, back, err)
		}
	}
	if d := img.Describe(img.Entry + 1); d != "pt_start+0x1" {
		t.Errorf("Describe(pt_start+1) = %q", d)
	}
}

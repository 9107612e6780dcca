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

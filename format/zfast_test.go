package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// simpleFrames are frames of raw and RLE blocks in the shapes the fast
// path takes, and some it must leave to the library.
func simpleFrames() map[string][]byte {
	fs := map[string][]byte{}
	for _, n := range []int{1, 7, 1000, zstdMaxBlock, zstdMaxBlock + 1, 3*zstdMaxBlock + 5} {
		fs[fmt.Sprintf("zero-%d", n)] = zeroFrame(nil, n)
	}
	// RLE of a non-zero byte, then raw blocks (zeros and not).
	f := zstdHeader(nil, 300+5+4)
	f = blockHeader(f, false, blockRLE, 300)
	f = append(f, 0xAB)
	f = blockHeader(f, false, blockRaw, 5)
	f = append(f, 1, 2, 3, 4, 5)
	f = blockHeader(f, true, blockRaw, 4)
	f = append(f, 0, 0, 0, 0)
	fs["mixed"] = f
	// Single segment, 1-byte content size.
	g := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	g = append(g, 1<<5, 20)
	g = blockHeader(g, true, blockRLE, 20)
	fs["single"] = append(g, 0)
	// A compressed frame from the library (not simple).
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	fs["compressed"] = enc.EncodeAll(bytes.Repeat([]byte("patchtrace"), 100), nil)
	fs["raw-crc"] = enc.EncodeAll([]byte{0x12, 0x34}, nil)
	// Two frames back to back.
	fs["two"] = append(zeroFrame(nil, 10), zeroFrame(nil, 10)...)
	return fs
}

// TestSimpleFrameMatchesLibrary holds the raw/RLE fast path to
// klauspost/compress on simple frames and on every one-byte change and
// truncation of them: the fast path either declines the frame or decodes
// the bytes the library decodes, and never accepts a frame the library
// rejects.
func TestSimpleFrameMatchesLibrary(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.IgnoreChecksum(true), zstd.WithDecoderMaxMemory(maxAlloc))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	check := func(name string, f []byte) bool {
		size, zero, ok := simpleFrame(f)
		if !ok {
			return false
		}
		want, err := dec.DecodeAll(f, nil)
		if err != nil {
			t.Fatalf("%s: fast path accepts a frame the library rejects: %v", name, err)
		}
		got := decodeSimple(make([]byte, 0, size), f)
		if size != len(want) || !bytes.Equal(got, want) {
			t.Fatalf("%s: fast path decodes %d bytes, the library %d (equal %v)", name, len(got), len(want), bytes.Equal(got, want))
		}
		if zero != (bytes.Count(want, []byte{0}) == len(want)) {
			t.Fatalf("%s: zero %v", name, zero)
		}
		return true
	}
	taken := 0
	for name, f := range simpleFrames() {
		ok := check(name, f)
		if ok != (name != "compressed" && name != "raw-crc" && name != "two") {
			t.Errorf("%s: fast path took it: %v", name, ok)
		}
		for i := range f {
			if len(f) > 2000 && i > 64 && i < len(f)-64 {
				continue
			}
			for _, x := range []byte{0x01, 0x08, 0x80, 0xFF} {
				g := bytes.Clone(f)
				g[i] ^= x
				if check(fmt.Sprintf("%s byte %d ^%#x", name, i, x), g) {
					taken++
				}
			}
			if check(fmt.Sprintf("%s cut at %d", name, i), f[:i]) {
				taken++
			}
		}
	}
	if taken == 0 {
		t.Error("no damaged frame was decoded by the fast path")
	}
}

package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func counterBytes(first uint64, n int) []byte {
	b := make([]byte, 8*n)
	for i := range n {
		binary.LittleEndian.PutUint64(b[8*i:], first+uint64(i))
	}
	return b
}

func TestCounterFrame(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, first := range []uint64{0, 1, 5, 255, 256, 1000, 65535 - 300, 1<<24 - 70000, 1<<32 - 5000, 1<<40 + 17, 1<<64 - 70000} {
		for _, n := range []int{0, 1, 2, 7, 255, 256, 257, 511, 512, 513, 1000, 4096, 65536, 100_000, 300_000} {
			frame := counterFrame(nil, first, n)
			got, err := dec.DecodeAll(frame, nil)
			if err != nil {
				t.Fatalf("first %d n %d: %v", first, n, err)
			}
			if want := counterBytes(first, n); !bytes.Equal(got, want) {
				t.Fatalf("first %d n %d: decoded %d bytes, differ from the %d wanted", first, n, len(got), len(want))
			}
			if n == 65536 && first == 1000 {
				t.Logf("n %d: %d bytes (%.3f B/value)", n, len(frame), float64(len(frame))/float64(n))
			}
		}
	}
}

func TestZeroFrame(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, n := range []int{0, 1, 100, 128 << 10, 128<<10 + 1, 1 << 20, 3<<20 + 5} {
		got, err := dec.DecodeAll(zeroFrame(nil, n), nil)
		if err != nil || len(got) != n || bytes.Count(got, []byte{0}) != n {
			t.Fatalf("n %d: %d bytes, %v", n, len(got), err)
		}
	}
}

// TestFramesReferenceDecoder decodes the hand-written frames with the
// reference zstd (the zstd command, when installed): the library pyarrow
// and DuckDB use.
func TestFramesReferenceDecoder(t *testing.T) {
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("no zstd command")
	}
	dir := t.TempDir()
	check := func(name string, frame, want []byte) {
		t.Helper()
		p := filepath.Join(dir, name+".zst")
		if err := os.WriteFile(p, frame, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(zstdCmd, "-q", "-d", "-c", p).Output()
		if err != nil {
			t.Fatalf("%s: zstd -d: %v", name, err)
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%s: zstd decoded %d bytes, differ from the %d wanted", name, len(out), len(want))
		}
	}
	for _, first := range []uint64{0, 77, 1<<24 - 70000, 1<<64 - 70000} {
		for _, n := range []int{1, 300, 65536, 200_000} {
			check(fmt.Sprintf("counter-%d-%d", first, n), counterFrame(nil, first, n), counterBytes(first, n))
		}
	}
	for _, n := range []int{0, 5, 128 << 10, 1<<20 + 3} {
		check(fmt.Sprintf("zero-%d", n), zeroFrame(nil, n), make([]byte, n))
	}
}

func TestCounterFrameRandom(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		first := rng.Uint64() >> rng.IntN(64)
		n := rng.IntN(1 << rng.IntN(19))
		got, err := dec.DecodeAll(counterFrame(nil, first, n), nil)
		if err != nil || !bytes.Equal(got, counterBytes(first, n)) {
			t.Fatalf("first %d n %d: %v", first, n, err)
		}
	}
}

func BenchmarkCounterFrame(b *testing.B) {
	b.ReportAllocs()
	var dst []byte
	first := uint64(0)
	for b.Loop() {
		dst = counterFrame(dst[:0], first, DefaultBatchRows)
		first += DefaultBatchRows
	}
	// ns/value: time per counter value encoded.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBatchRows), "ns/value")
}

// TestLengthCodes holds llCode and mlCode (a table, then the top bit) to
// the search of RFC 8878's bases for every length up to twice a block.
func TestLengthCodes(t *testing.T) {
	for n := range 2 * zstdMaxBlock {
		if want := codeSearch(llBase[:], n); llCode(n) != want {
			t.Fatalf("llCode(%d) = %d, want %d", n, llCode(n), want)
		}
		if n >= 3 {
			if want := codeSearch(mlBase[:], n); mlCode(n) != want {
				t.Fatalf("mlCode(%d) = %d, want %d", n, mlCode(n), want)
			}
		}
	}
}

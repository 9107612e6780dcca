package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zencInputs returns buffers shaped like trace columns: periodic rows with
// noise, interleaved streams, constants, random bytes, short ones.
func zencInputs() map[string]struct {
	data  []byte
	width int
} {
	rng := rand.New(rand.NewPCG(7, 9))
	in := map[string]struct {
		data  []byte
		width int
	}{}
	add := func(name string, w int, data []byte) {
		in[name] = struct {
			data  []byte
			width int
		}{data, w}
	}
	periodic := func(n, w, period int, noise float64) []byte {
		b := make([]byte, n*w)
		base := make([]byte, period*w)
		for i := range base {
			base[i] = byte(rng.IntN(4))
		}
		for r := range n {
			copy(b[r*w:], base[(r%period)*w:(r%period+1)*w])
			if rng.Float64() < noise {
				b[r*w+rng.IntN(w)] = byte(rng.Uint32())
			}
		}
		return b
	}
	for _, w := range []int{1, 2, 4, 8, 15} {
		for _, noise := range []float64{0, 0.01, 0.2} {
			add(fmt.Sprintf("periodic-w%d-n%v", w, noise), w, periodic(70000, w, 51, noise))
		}
	}
	// Four interleaved periodic streams, in random quanta.
	{
		const w = 8
		var streams [4][]byte
		for k := range streams {
			streams[k] = periodic(40000, w, 20+k, 0.02)
		}
		var b []byte
		var pos [4]int
		for len(b) < 200000*w {
			k := rng.IntN(4)
			q := 1 + rng.IntN(64)
			for range q {
				if pos[k] >= 40000 {
					break
				}
				b = append(b, streams[k][pos[k]*w:(pos[k]+1)*w]...)
				pos[k]++
			}
			if pos[0] >= 40000 && pos[1] >= 40000 && pos[2] >= 40000 && pos[3] >= 40000 {
				break
			}
		}
		add("interleaved-w8", w, b)
	}
	rnd := make([]byte, 300000)
	for i := range rnd {
		rnd[i] = byte(rng.Uint32())
	}
	add("random", 1, rnd)
	add("random-w8", 8, rnd[:240000])
	add("zeros", 8, make([]byte, 524288))
	ramp := make([]byte, 8*65536)
	for i := range 65536 {
		binary.LittleEndian.PutUint64(ramp[8*i:], uint64(i)*3+0xffffffff81000000)
	}
	add("ramp", 8, ramp)
	add("sparse-counter-w8", 8, sparseCounter(8, 60000))
	add("sparse-counter-w4", 4, sparseCounter(4, 60000))
	for _, n := range []int{0, 1, 7, 8, 9, 100, 1023, 1024, 5000} {
		add(fmt.Sprintf("short-%d", n), 1, periodic(n, 1, 5, 0.1))
	}
	add("big", 8, periodic(700000, 8, 51, 0.01)) // > 4 MiB: windowed frame
	return in
}

func TestZenc(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var z zenc
	ref, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	for name, c := range zencInputs() {
		frame := z.encode(nil, c.data, c.width)
		got, err := dec.DecodeAll(frame, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, c.data) {
			t.Fatalf("%s: decoded %d bytes, differ from the %d encoded", name, len(got), len(c.data))
		}
		t.Logf("%-24s %8d -> %7d bytes (klauspost default: %7d)", name, len(c.data), len(frame), len(ref.EncodeAll(c.data, nil)))
	}
}

// TestZencReferenceDecoder decodes zenc frames with the zstd command.
func TestZencReferenceDecoder(t *testing.T) {
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("no zstd command")
	}
	dir := t.TempDir()
	var z zenc
	for name, c := range zencInputs() {
		p := filepath.Join(dir, name+".zst")
		if err := os.WriteFile(p, z.encode(nil, c.data, c.width), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(zstdCmd, "-q", "-d", "-c", "--memory=64MB", p).Output()
		if err != nil {
			t.Fatalf("%s: zstd -d: %v", name, err)
		}
		if !bytes.Equal(out, c.data) {
			t.Fatalf("%s: zstd decoded %d bytes, differ from the %d encoded", name, len(out), len(c.data))
		}
	}
}

func TestNCountRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		nsym := 2 + rng.IntN(50)
		hist := make([]uint32, nsym)
		total := 0
		for s := range hist {
			if rng.IntN(3) > 0 {
				hist[s] = uint32(rng.IntN(1 << rng.IntN(12)))
			}
			total += int(hist[s])
		}
		if total < 2 {
			continue
		}
		maxSym := 0
		for s, n := range hist {
			if n > 0 {
				maxSym = s
			}
		}
		log := optimalLog(total, maxSym, 9)
		norm := normalize(nil, hist[:maxSym+1], total, log)
		sum := 0
		for s, v := range norm {
			if (v == 0) != (hist[s] == 0) || v < 0 {
				t.Fatalf("case %d: symbol %d count %d normalized to %d", i, s, hist[s], v)
			}
			sum += int(v)
		}
		if sum != 1<<log {
			t.Fatalf("case %d: sum %d, want %d", i, sum, 1<<log)
		}
		hdr := writeNCount(nil, norm, log)
		got, glog, n, err := readNCount(append(hdr, 0, 0, 0, 0), 63)
		if err != nil || glog != log || n != len(hdr) {
			t.Fatalf("case %d: read %v log %d len %d, wrote log %d len %d", i, err, glog, n, log, len(hdr))
		}
		for len(got) < len(norm) {
			got = append(got, 0)
		}
		for s := range norm {
			if got[s] != norm[s] {
				t.Fatalf("case %d: symbol %d: read %d, wrote %d", i, s, got[s], norm[s])
			}
		}
	}
}

func FuzzZenc(f *testing.F) {
	f.Add([]byte("abcabcabcabcabcabcabcabcabcabc0123456789"), uint8(3))
	f.Add(make([]byte, 1000), uint8(8))
	dec, _ := zstd.NewReader(nil)
	var z zenc
	f.Fuzz(func(t *testing.T, seed []byte, w uint8) {
		width := []int{1, 2, 4, 8, 15}[int(w)%5]
		// Expand the seed into a longer, repetitive buffer.
		data := make([]byte, 0, 64*len(seed))
		for i := 0; i < 64 && len(seed) > 0; i++ {
			data = append(data, seed[:len(seed)-i%len(seed)]...)
		}
		frame := z.encode(nil, data, width)
		got, err := dec.DecodeAll(frame, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("width %d, %d bytes: %v", width, len(data), err)
		}
		// The same rows said to be from CPUs chosen by the seed.
		n := len(data) / width
		cpus := make([]byte, 2*n)
		for r := range n {
			if len(seed) > 0 {
				cpus[2*r] = seed[r%len(seed)] & 3
			}
		}
		var rows cpuRows
		if rows.set(cpus, n) {
			z.rows = &rows
			frame = z.encode(nil, data[:n*width], width)
			z.rows = nil
			got, err := dec.DecodeAll(frame, nil)
			if err != nil || !bytes.Equal(got, data[:n*width]) {
				t.Fatalf("width %d, %d bytes, with CPUs: %v", width, len(data), err)
			}
		}
	})
}

// sparseCounter returns n rows of width w shaped like bench-fentry's r8
// register column: iterations of 29 or 30 rows (alternately) where one
// row sets the register to the iteration's counter and a later one to the
// counter's parity, the other rows null (zero).
func sparseCounter(w, n int) []byte {
	b := make([]byte, n*w)
	put := func(r int, v uint64) {
		var x [8]byte
		binary.LittleEndian.PutUint64(x[:], v)
		copy(b[r*w:], x[:w])
	}
	for r, i := 0, uint64(0); r < n; i++ {
		if r+8 < n {
			put(r+5, 0x1234000+i)
			put(r+8, i&1)
		}
		r += 29 + int(i&1)
	}
	return b
}

// TestZencLowByte: rows equal to the one before but in their low byte (a
// stack pointer, an address stepping by less than 256) are coded as that
// byte and a match, not as eight literals: a ramp costs about one byte a
// row (3.8 without), a sparse counter column ~0.6 bytes a value (0.85
// without).
func TestZencLowByte(t *testing.T) {
	var z zenc
	ramp := make([]byte, 8*65536)
	for i := range 65536 {
		binary.LittleEndian.PutUint64(ramp[8*i:], 0xffffc90000000000+uint64(i)*3)
	}
	if n := len(z.encode(nil, ramp, 8)); n > 65536*5/4 {
		t.Errorf("ramp: %d bytes for 65536 rows, want at most 1.25 a row", n)
	}
	data := sparseCounter(4, 60000)
	values := 2 * 60000 * 2 / 59
	if n := len(z.encode(nil, data, 4)); n > values*7/10 {
		t.Errorf("sparse counter: %d bytes for %d values, want at most 0.7 a value", n, values)
	}
}

// interleavedRuns returns n rows of width w from four CPUs running the
// same loop (a period of random rows) at different places, one row in
// four holding the CPU's own value (a stack address, say), in runs of 1
// to 128 rows, and the cpu column (u16 rows) saying whose each row is.
func interleavedRuns(w, n int, seed uint64) (data, cpus []byte) {
	rng := rand.New(rand.NewPCG(seed, 3))
	loop := make([]byte, 300*w)
	for i := range loop {
		loop[i] = byte(rng.Uint32())
	}
	loops := [4][]byte{loop, loop, loop, loop}
	pos := [4]int{0, 70, 140, 210}
	for len(data) < n*w {
		k := rng.IntN(4)
		for range 1 + rng.IntN(128) {
			if len(data) == n*w {
				break
			}
			period := len(loops[k]) / w
			data = append(data, loops[k][pos[k]%period*w:(pos[k]%period+1)*w]...)
			if pos[k]%4 == 0 {
				data[len(data)-1] = byte(k)
			}
			cpus = binary.LittleEndian.AppendUint16(cpus, uint16(k))
			pos[k]++
		}
	}
	return data, cpus
}

// TestZencCPURows: with the rows' CPUs, zenc follows each CPU's loop
// across the switches (a CPU's resumed run matches after the rows its
// last run matched), and the frames still decode, with klauspost's
// decoder and the reference zstd.
func TestZencCPURows(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	zstdCmd, _ := exec.LookPath("zstd")
	dir := t.TempDir()
	var z zenc
	for _, w := range []int{1, 2, 8, 15} {
		data, cpus := interleavedRuns(w, 90000, uint64(w))
		plain := len(z.encode(nil, data, w))
		var rows cpuRows
		if !rows.set(cpus, len(cpus)/2) {
			t.Fatal("cpuRows.set: four CPUs' rows seen as one CPU's")
		}
		z.rows = &rows
		frame := z.encode(nil, data, w)
		z.rows = nil
		got, err := dec.DecodeAll(frame, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("width %d: decoded %d bytes (%v), differ from the %d encoded", w, len(got), err, len(data))
		}
		if zstdCmd != "" {
			p := filepath.Join(dir, fmt.Sprintf("w%d.zst", w))
			if err := os.WriteFile(p, frame, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(zstdCmd, "-q", "-d", "-c", p).Output()
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("width %d: zstd -d: %v", w, err)
			}
		}
		t.Logf("width %2d: %d bytes, %d without the rows' CPUs", w, len(frame), plain)
		// Narrow rows have fewer bytes to tell the CPUs apart: there the
		// continuation must only not cost.
		if want := map[bool]int{true: plain * 3 / 4, false: plain}[w >= 8]; len(frame) > want {
			t.Errorf("width %d: %d bytes with the rows' CPUs, %d without: want at most %d", w, len(frame), plain, want)
		}
	}
	// One CPU: nothing to follow.
	var rows cpuRows
	if rows.set(make([]byte, 200), 100) {
		t.Error("cpuRows.set: one CPU's rows seen as several")
	}
	// Two CPUs, the other one's row anywhere (first, inside a group of
	// four rows, last of a count that is not a multiple of four).
	for _, n := range []int{1, 2, 5, 8, 103} {
		for at := range n {
			col := make([]byte, 2*n)
			binary.LittleEndian.PutUint16(col[2*at:], 3)
			if got := rows.set(col, n); got != (n > 1) {
				t.Errorf("cpuRows.set: %d rows, CPU 3 at row %d: several CPUs %v, want %v", n, at, got, n > 1)
			}
		}
	}
}

// TestMatchLen holds matchLen to a byte-by-byte count on buffers that
// agree for every length from 0 to 100 (at every end: one that cuts the
// match first, and one past where it ends) and for lengths around
// matchLen's steps (32 bytes, 256, 256+1024k) up to 5000, and then
// differ.
func TestMatchLen(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	lens := []int{250, 255, 256, 257, 287, 288, 300, 1279, 1280, 1281, 1300, 2330, 5000}
	for l := 0; l <= 100; l++ {
		lens = append(lens, l)
	}
	for _, l := range lens {
		for _, d := range []int{1, 8, 13, 40} {
			a := make([]byte, d+l+20)
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			j, i := 3, 3+d
			// a[i:] copies a[j:] for l bytes: copy forwards, byte by byte,
			// so overlapping offsets repeat as a match would.
			for k := 0; k < l && i+k < len(a); k++ {
				a[i+k] = a[j+k]
			}
			ends := []int{i, i + l/2, i + l - 1, i + l, i + l + 1, i + l + 9, len(a)}
			if l <= 100 {
				ends = ends[:0]
				for end := i; end <= len(a); end++ {
					ends = append(ends, end)
				}
			}
			for _, end := range ends {
				if end < i || end > len(a) {
					continue
				}
				want := 0
				for i+want < end && a[i+want] == a[j+want] {
					want++
				}
				if got := matchLen(a, i, j, end); got != want {
					t.Fatalf("len %d distance %d end %d: matchLen %d, want %d", l, d, end, got, want)
				}
			}
		}
	}
}

// TestZencPinned pins zenc's output, byte for byte, on zencInputs and on
// interleaved runs with their rows' CPUs: zenc's frames are the bytes of
// most of a trace, and traces must stay byte-identical for the same run
// unless the format says otherwise. A speed change to the match search
// must keep this hash; a deliberate change of the encoding updates it
// (and says so, with the size it buys).
func TestZencPinned(t *testing.T) {
	const want = "37078d49a056f7e5f577d9e71b375abb50de15cc7ed3834378dfaca90cbbfb9f"
	in := zencInputs()
	names := slices.Sorted(maps.Keys(in))
	h := sha256.New()
	var z zenc
	for _, name := range names {
		h.Write(z.encode(nil, in[name].data, in[name].width))
	}
	for _, w := range []int{1, 8, 15} {
		data, cpus := interleavedRuns(w, 30000, uint64(w))
		var rows cpuRows
		rows.set(cpus, len(cpus)/2)
		z.rows = &rows
		h.Write(z.encode(nil, data, w))
		z.rows = nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("zenc's frames changed: sha256 %s, pinned %s", got, want)
	}
}

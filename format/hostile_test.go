package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Regression tests for hostile trace files (issue 17): each reproducer
// rewrites a field of a written trace and checks that reading it gives an
// error naming the file's damage (corrupt, with the batch) instead of a
// panic, a huge allocation or a silent change.

// readAll opens data and reads every row, returning the first error.
func readRows(data []byte) (*Reader, int, error) {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), WithName("t.arrow"))
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, err := range r.Events() {
		if err != nil {
			return r, n, err
		}
		n++
	}
	return r, n, nil
}

// msgTable returns the RecordBatch table of the message at off (a record
// batch, or a dictionary batch's data), with positions relative to data.
func msgTable(t testing.TB, data []byte, off int64) (rb fbTable, base int, blk block) {
	t.Helper()
	blk = mustBlock(t, data, off)
	base = int(blk.off) + 8
	meta := data[base : blk.off+blk.metaLen]
	msg, err := fbRoot(meta)
	if err != nil {
		t.Fatal(err)
	}
	rb, err = msg.table(2)
	if err != nil {
		t.Fatal(err)
	}
	if msg.u8(1) == msgDictionary {
		if rb, err = rb.table(1); err != nil {
			t.Fatal(err)
		}
	}
	return rb, base, blk
}

// fieldPos returns the position in data of field node i's (j=0: length,
// 1: null count) or buffer i's (j=0: offset, 1: length) int64.
func vecPos(t testing.TB, rb fbTable, base, vec, i, j int) int {
	t.Helper()
	n, p, ok := rb.vector(vec, 16)
	if !ok || i >= n {
		t.Fatalf("vector %d has %d entries", vec, n)
	}
	return base + p + 16*i + 8*j
}

// messages lists the messages of a file with no footer.
func messages(t testing.TB, data []byte) []block {
	msgs, _ := scanStream(bytes.NewReader(data), int64(len(data)))
	if len(msgs) < 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	return msgs
}

func firstRecord(t testing.TB, msgs []block) block {
	for _, m := range msgs {
		if m.typ == msgRecord {
			return m
		}
	}
	t.Fatal("no record batch")
	return block{}
}

func put64(b []byte, pos int, v int64) { binary.LittleEndian.PutUint64(b[pos:], uint64(v)) }

// TestHostileStructure: field-node and buffer fields set to values the
// Arrow library would slice or allocate by are errors naming the batch.
// (A negative dictionary length panicked every read command.)
func TestHostileStructure(t *testing.T) {
	clean := cutBeforeFooter(t, writeTrace(t, fixtureRows(), WithBatchRows(8)))
	msgs := messages(t, clean)
	rec := firstRecord(t, msgs)
	dict := msgs[1]
	for _, tc := range []struct {
		name  string
		edit  func(d []byte)
		where string
	}{
		{"negative field-node length", func(d []byte) {
			rb, base, _ := msgTable(t, d, rec.off)
			put64(d, vecPos(t, rb, base, 1, 0, 0), -5)
		}, "batch 0"},
		{"negative dictionary length", func(d []byte) {
			rb, base, _ := msgTable(t, d, dict.off)
			put64(d, vecPos(t, rb, base, 1, 0, 0), -1)
		}, "dictionary message 0"},
		{"huge dictionary length", func(d []byte) {
			rb, base, _ := msgTable(t, d, dict.off)
			put64(d, vecPos(t, rb, base, 1, 0, 0), 1<<40)
		}, "dictionary message 0"},
		{"null count above length", func(d []byte) {
			rb, base, _ := msgTable(t, d, rec.off)
			put64(d, vecPos(t, rb, base, 1, 3, 1), 1000)
		}, "batch 0"},
		{"buffer offset out of range", func(d []byte) {
			rb, base, _ := msgTable(t, d, rec.off)
			put64(d, vecPos(t, rb, base, 2, 1, 0), 3171379098727441846)
		}, "batch 0"},
		{"negative buffer length", func(d []byte) {
			rb, base, _ := msgTable(t, d, rec.off)
			put64(d, vecPos(t, rb, base, 2, 1, 1), -8)
		}, "batch 0"},
		{"overlapping buffers", func(d []byte) {
			rb, base, _ := msgTable(t, d, rec.off)
			// The seq values (buffer 1) and the kind indices (buffer 3)
			// start at the same place.
			o := binary.LittleEndian.Uint64(d[vecPos(t, rb, base, 2, 1, 0):])
			put64(d, vecPos(t, rb, base, 2, 3, 0), int64(o))
		}, "batch 0"},
		{"uncompressed length beyond the rows", func(d []byte) {
			rb, base, blk := msgTable(t, d, rec.off)
			o := binary.LittleEndian.Uint64(d[vecPos(t, rb, base, 2, 1, 0):])
			put64(d, int(blk.off+blk.metaLen)+int(o), 1<<30)
		}, "batch 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bytes.Clone(clean)
			tc.edit(d)
			_, _, err := readRows(d)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.where) {
				t.Fatalf("got %v, want a corrupt error naming %s", err, tc.where)
			}
			if strings.Contains(err.Error(), "decode:") {
				t.Fatalf("got %v: the Arrow library was given the message, want it refused before", err)
			}
		})
	}
}

// TestHostileZstdWindow: a zstd frame header asking for a 480 MiB window
// is refused before decoding (it cost ~484 MiB per decode, bypassing the
// reader's allocation cap).
func TestHostileZstdWindow(t *testing.T) {
	d := cutBeforeFooter(t, writeTrace(t, fixtureRows(), WithBatchRows(8)))
	rb, base, blk := msgTable(t, d, firstRecord(t, messages(t, d)).off)
	body := int(blk.off + blk.metaLen)
	n, _, _ := rb.vector(2, 16)
	edited := 0
	for i := 0; i < n; i++ {
		off := int(binary.LittleEndian.Uint64(d[vecPos(t, rb, base, 2, i, 0):]))
		l := int(binary.LittleEndian.Uint64(d[vecPos(t, rb, base, 2, i, 1):]))
		if l < 14 {
			continue
		}
		f := d[body+off+8 : body+off+l]
		if binary.LittleEndian.Uint32(f) != zstdMagic || f[4]&(1<<5) != 0 {
			continue // a single-segment frame (no window byte)
		}
		f[5] = (28-10)<<3 | 7 // 2^28 * (1 + 7/8) = 480 MiB
		edited++
	}
	if edited == 0 {
		t.Fatal("no frame with a window descriptor")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := readRows(d)
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > 64<<20 {
		t.Errorf("reading allocated %d MiB", a>>20)
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "batch 0") {
		t.Fatalf("got %v, want a corrupt error about the zstd window in batch 0", err)
	}
}

// TestHostileValues: values a consumer would loop or index by are checked
// against the schema and the trace's CPU count.
func TestHostileValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(rows []Row, m *Meta)
		want string
	}{
		{"write size 0xffffffff", func(rows []Row, m *Meta) { rows[3].Size = 0xffffffff }, "row 3: write of 4294967295 bytes"},
		{"write size with a flipped bit", func(rows []Row, m *Meta) { rows[3].Size = 8 | 1<<25 }, "row 3: write of 33554440 bytes"},
		{"percpu_read size 9", func(rows []Row, m *Meta) { rows[7].Size = 9 }, "row 7: percpu_read of 9 bytes"},
		{"trap frame", func(rows []Row, m *Meta) { rows[10].Size = 1 << 20 }, "row 10: trap frame"},
		{"perm pages", func(rows []Row, m *Meta) { rows[16].Size = 0xffffffff }, "row 16: perm change"},
		{"cpu count 2 on a 4-CPU trace", func(rows []Row, m *Meta) { m.CPUs = 2 }, "row 5: cpu 2, the trace has 2 CPUs"},
		{"percpu_cpu", func(rows []Row, m *Meta) { rows[5].PercpuCPU = 9 }, "row 5: percpu_cpu 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, m := fixtureRows(), fixtureMeta()
			tc.edit(rows, &m)
			var buf bytes.Buffer
			w, err := NewWriter(&buf, m, WithBatchRows(64))
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				if err := w.Append(&rows[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_, _, err = readRows(buf.Bytes())
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "batch 0") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a corrupt error in batch 0 with %q", err, tc.want)
			}
		})
	}
}

// footerValue returns the position and length of key's value in a complete
// file's footer metadata.
func footerValue(t testing.TB, data []byte, key string) (int, int) {
	t.Helper()
	start := footerStart(t, data)
	buf := data[start : len(data)-10]
	ft, err := fbRoot(buf)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ft.table(1)
	if err != nil {
		t.Fatal(err)
	}
	kn, kp, _ := sc.vector(2, 4)
	for i := 0; i < kn; i++ {
		p := kp + 4*i
		kv, err := fbAt(buf, p+int(binary.LittleEndian.Uint32(buf[p:])))
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := kv.str(0); k != key {
			continue
		}
		vp, _ := kv.field(1, 4)
		s := vp + int(binary.LittleEndian.Uint32(buf[vp:]))
		return start + s + 4, int(binary.LittleEndian.Uint32(buf[s:]))
	}
	t.Fatalf("no footer key %s", key)
	return 0, 0
}

// TestCorruptFile: a flipped byte in column data or in the footer metadata
// of a complete file is reported as corrupt, naming the batch, never read
// as a clean or a truncated file.
func TestCorruptFile(t *testing.T) {
	clean := writeTrace(t, fixtureRows(), WithBatchRows(4))
	ends := batchEnds(t, clean)
	for _, tc := range []struct {
		name  string
		edit  func(d []byte)
		where string
	}{
		{"column data of batch 2", func(d []byte) { d[ends[2]-24] ^= 0x10 }, "batch 2: corrupt: checksum"},
		{"last byte of batch 5", func(d []byte) { d[ends[5]-1] ^= 1 }, "batch 5: corrupt: checksum"},
		{"message header of batch 1", func(d []byte) { d[ends[0]+20] ^= 4 }, "batch 1: corrupt"},
		{"footer cpus 4 -> 2", func(d []byte) {
			p, n := footerValue(t, d, KeyCPUs)
			if n != 1 || d[p] != '4' {
				t.Fatalf("cpus value %q", d[p:p+n])
			}
			d[p] = '2'
		}, "corrupt: footer metadata: footer metadata checksum"},
		{"footer scenario text", func(d []byte) {
			p, _ := footerValue(t, d, KeyScenarioText)
			d[p+3] ^= 0x20
		}, "footer metadata checksum"},
		{"footer key name", func(d []byte) {
			p, _ := footerValue(t, d, KeyScenario)
			d[p-6] ^= 1 // the end of the key string before it
		}, "corrupt"},
		{"footer batch index", func(d []byte) {
			p, n := footerValue(t, d, KeyBatchIndex)
			i := bytes.IndexByte(d[p:p+n], '7')
			d[p+i] = '6'
		}, "footer metadata checksum"},
		{"header (the ELF in the schema message)", func(d []byte) {
			i := bytes.Index(d, []byte("f0VMRg")) // base64 of "\x7fELF"
			d[i+2] ^= 1
		}, "header checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bytes.Clone(clean)
			tc.edit(d)
			r, _, err := readRows(d)
			if r != nil && r.Truncated() {
				t.Fatalf("read as truncated: %v", r.TruncatedError())
			}
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), tc.where) {
				t.Fatalf("got %v, want a corrupt error with %q", err, tc.where)
			}
		})
	}
	r, n, err := readRows(clean)
	if err != nil || n != len(fixtureRows()) || !r.Verified() || r.Unverified() != "" {
		t.Fatalf("clean file: %d rows, %v, verified %v", n, err, r.Verified())
	}
	r, _, err = readRows(cutBeforeFooter(t, clean))
	if err != nil || r.Verified() || !strings.Contains(r.Unverified(), "no footer") {
		t.Fatalf("truncated file: %v, verified %v (%q)", err, r.Verified(), r.Unverified())
	}
}

// TestCorruptFooterVersionKey: a flipped byte in the footer's version key
// name made a finished trace read as "not a patchtrace trace".
func TestCorruptFooterVersionKey(t *testing.T) {
	d := writeTrace(t, fixtureRows(), WithBatchRows(4))
	foot := footerStart(t, d)
	i := bytes.Index(d[foot:], []byte(KeyFormatVersion))
	if i < 0 {
		t.Fatal("no version key in the footer")
	}
	i += foot
	d[i+3] ^= 1
	_, _, err := readRows(d)
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotTrace) {
		t.Fatalf("got %v, want corrupt", err)
	}
}

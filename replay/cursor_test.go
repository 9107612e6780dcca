package replay_test

import (
	"fmt"
	"hash/crc64"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

func recordTrace(t testing.TB, id string, batchRows int) string {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), id+".arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 2}, BatchRows: batchRows}); err != nil {
		t.Fatal(err)
	}
	return path
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// stateDigest summarizes a state: every page's contents, the page
// permissions and every CPU's context.
func stateDigest(st *replay.State) string {
	h := crc64.New(crcTable)
	for _, vpn := range st.Mem.VPNs() {
		fmt.Fprintf(h, "%x:", vpn)
		h.Write(st.Mem.Page(vpn << 12).Data[:])
	}
	st.Mem.Mapped(func(vpn, n uint64, perm uint8) { fmt.Fprintf(h, "%x+%x=%d;", vpn, n, perm) })
	return fmt.Sprintf("seq %d mem %016x cpus %+v", st.Seq, h.Sum64(), st.CPUs)
}

// TestCursorSeek: a cursor moved to random events, in random order,
// forwards and backwards, holds the state a plain replay from the start
// holds after that event; with a snapshot budget small enough that the
// snapshots are thinned on the way.
func TestCursorSeek(t *testing.T) {
	path := recordTrace(t, "text-poke-bp", 2048)
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := r.NumEvents()
	rng := rand.New(rand.NewPCG(1, 2))
	var seqs []uint64
	for i := 0; i < 300; i++ {
		seqs = append(seqs, rng.Uint64N(n))
	}
	seqs = append(seqs, 0, n-1, 2048, 2047, 2049)
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	want := map[uint64]string{}
	st, err := replay.NewState(r.Meta())
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		st.Apply(row)
		for k < len(sorted) && sorted[k] == row.Seq {
			want[row.Seq] = stateDigest(st)
			k++
		}
	}
	for _, tc := range []struct {
		limit int64
		index bool
	}{{replay.CursorLimit, false}, {4 << 20, false}, {replay.CursorLimit, true}} {
		limit := tc.limit
		t.Run(fmt.Sprint(limit, tc.index), func(t *testing.T) {
			c, err := replay.NewCursor(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetLimit(limit)
			if tc.index {
				calls := 0
				if err := c.Index(func(int, int) { calls++ }); err != nil || calls < 10 {
					t.Fatalf("Index: %v, %d progress calls", err, calls)
				}
				if ns, _, _ := c.Snapshots(); ns != r.NumBatches() {
					t.Fatalf("Index took %d snapshots, the trace has %d batches", ns, r.NumBatches())
				}
			}
			for i, seq := range seqs {
				if err := c.Seek(seq); err != nil {
					t.Fatal(err)
				}
				if got := stateDigest(c.State()); got != want[seq] {
					t.Fatalf("move %d: Seek(%d): %s\nwant %s", i, seq, got, want[seq])
				}
				if row, ok := c.Row(); !ok || row.Seq != seq {
					t.Fatalf("Seek(%d): at row %d", seq, row.Seq)
				}
				if i%7 == 0 && seq > 0 {
					// One back, one forward.
					if ok, err := c.Prev(); !ok || err != nil || c.Seq() != seq-1 {
						t.Fatalf("Prev from %d: %v %v at %d", seq, ok, err, c.Seq())
					}
					if w, ok := want[seq-1]; ok && stateDigest(c.State()) != w {
						t.Fatalf("Prev from %d: state differs", seq)
					}
					if ok, err := c.Next(); !ok || err != nil || stateDigest(c.State()) != want[seq] {
						t.Fatalf("Next back to %d: %v %v", seq, ok, err)
					}
				}
			}
			ns, every, bytes := c.Snapshots()
			t.Logf("limit %d: %d snapshots every %d batches, %d bytes", limit, ns, every, bytes)
			if bytes > limit && ns > 2 {
				t.Errorf("snapshots hold %d bytes, limit %d", bytes, limit)
			}
			if limit < replay.CursorLimit && every == 1 {
				t.Errorf("a %d-byte limit did not thin the snapshots (%d of them, %d bytes)", limit, ns, bytes)
			}
		})
	}
}

// TestCursorScan: Scan and ScanBack see the events after and at-or-before
// the position, in order, without moving it; NextPC is the rip of the
// CPU's next event.
func TestCursorScan(t *testing.T) {
	path := recordTrace(t, "text-poke-bp", 2048)
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const at = 10_000
	if err := c.Seek(at); err != nil {
		t.Fatal(err)
	}
	next := uint64(at + 1)
	var pcs [4]uint64
	var have [4]bool
	c.Scan(func(r *format.Row) bool {
		if r.Seq != next {
			t.Fatalf("Scan: seq %d, want %d", r.Seq, next)
		}
		if !have[r.CPU] {
			pcs[r.CPU], have[r.CPU] = r.RIP, true
		}
		next++
		return next < at+20_000
	})
	prev := uint64(at)
	c.ScanBack(func(r *format.Row) bool {
		if r.Seq != prev {
			t.Fatalf("ScanBack: seq %d, want %d", r.Seq, prev)
		}
		prev--
		return prev > at-5000
	})
	if c.Seq() != at {
		t.Fatalf("Scan moved the cursor to %d", c.Seq())
	}
	for cpu := range 4 {
		pc, ok, err := c.NextPC(cpu)
		if err != nil || ok != have[cpu] || pc != pcs[cpu] {
			t.Errorf("cpu%d: NextPC %#x %v %v, want %#x %v", cpu, pc, ok, err, pcs[cpu], have[cpu])
		}
	}
}

// TestLoadsMatchMemory: every value a load row says was read equals the
// reconstructed memory at that point (the slice image plus the stores
// before it), over a whole 4-CPU run.
func TestLoadsMatchMemory(t *testing.T) {
	path := recordTrace(t, "text-poke-bp", 0)
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Meta().Loads {
		t.Fatal("the trace records no loads")
	}
	st, err := replay.NewState(r.Meta())
	if err != nil {
		t.Fatal(err)
	}
	loads := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if row.Kind == format.KindLoad {
			var b [8]byte
			st.Mem.Read(row.Addr, b[:row.Size])
			var v uint64
			for i := range row.Size {
				v |= uint64(b[i]) << (8 * i)
			}
			if v != row.New {
				t.Fatalf("seq %d cpu%d: load of %d bytes at %#x read %#x, the reconstructed memory holds %#x", row.Seq, row.CPU, row.Size, row.Addr, row.New, v)
			}
			loads++
		}
		st.Apply(row)
	}
	if loads < 10000 {
		t.Fatalf("only %d loads", loads)
	}
}

package analyze

import (
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

// TestCodeWriterRewritten: the bytes an instruction executed were written
// by the store to code before it, even when a later store (the patcher
// putting the original byte back) has rewritten them since: the cause of
// an int3 hit is the text_poke that installed it, not the one that took
// it out.
func TestCodeWriterRewritten(t *testing.T) {
	tr := &causeTracker{shadow: map[uint64]*shadowPage{}, ring: make([][causeRing]step, 2), w: make([][causeRing]storeRec, 2),
		n: make([]int, 2), switches: map[uint32]*taskSwitches{}, lastInsn: make([]uint64, 2), caller: make([]uint64, 2)}
	const site = 0xffffffff81001000
	poke := func(seq uint64, old, new uint64) {
		tr.noteWrite(&format.Row{Seq: seq, Kind: format.KindWrite, CPU: 0, Task: 1, Addr: site, Size: 1, Old: old, New: new, Alias: true, AliasAddr: 0xffffe00000000000}, true)
	}
	poke(10, 0xe8, 0xcc)
	tr.add(nil, &format.Row{Seq: 20, Kind: format.KindInsn, CPU: 1, Task: 2, RIP: site, Len: 1, Bytes: [15]byte{0xcc}})
	poke(30, 0xcc, 0xe8)
	w, ok := tr.codeWriter(site, 1, 20)
	if !ok || w.seq != 10 || w.val != 0xcc {
		t.Fatalf("the int3 executed at seq 20 was written by seq %d (value %#x, found %v), want seq 10 (0xcc)", w.seq, w.val, ok)
	}
	if s := &tr.ring[1][0]; !sameBytes(&w, s) {
		t.Errorf("the CPU executed the int3 seq 10 wrote, but sameBytes says it ran others")
	}
	if w, ok := tr.codeWriter(site, 1, 40); !ok || w.seq != 30 {
		t.Errorf("after seq 30 the site's byte was written by seq %d (found %v), want 30", w.seq, ok)
	}
	if _, ok := tr.codeWriter(site+1, 1, 40); ok {
		t.Errorf("a byte no store wrote has a writer")
	}
}

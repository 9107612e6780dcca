package replay_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestTemplateState: states made from a Template replay a trace to the same
// memory as one NewState builds, and a store in one is seen neither by the
// template nor by another state made from it (copy on write).
func TestTemplateState(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 3}}); err != nil {
		t.Fatal(err)
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Meta()
	tmpl, err := replay.NewTemplate(md)
	if err != nil {
		t.Fatal(err)
	}
	if !tmpl.For(md) {
		t.Fatal("template is not For the metadata it was built from")
	}
	want, err := replay.NewState(md)
	if err != nil {
		t.Fatal(err)
	}
	a, b := tmpl.State(), tmpl.State()
	stores := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		want.Apply(row)
		a.Apply(row)
		if row.Kind == format.KindWrite {
			stores++
		}
	}
	if stores == 0 {
		t.Fatal("the trace has no stores")
	}
	fresh, err := replay.NewState(md)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, vpn := range want.Mem.VPNs() {
		addr := vpn << 12
		if got := a.Mem.Page(addr); got == nil || got.Data != want.Mem.Page(addr).Data {
			t.Fatalf("page %#x: the template's state differs from NewState's after the run", addr)
		}
		orig := fresh.Mem.Page(addr)
		for _, st := range []*replay.State{b, tmpl.State()} {
			p := st.Mem.Page(addr)
			if (p == nil) != (orig == nil) || p != nil && p.Data != orig.Data {
				t.Fatalf("page %#x: another run's store leaked into a state made from the template", addr)
			}
		}
		if orig == nil || !bytes.Equal(orig.Data[:], want.Mem.Page(addr).Data[:]) {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("the run changed no page: the test shows nothing")
	}
	md2 := *md
	md2.CPUs++
	if tmpl.For(&md2) {
		t.Error("template is For another Meta")
	}
	md.CPUs++
	if tmpl.For(md) {
		t.Error("template is For its Meta after its CPU count changed")
	}
	md.CPUs--
}

// TestMemoryLookupCache: reads, stores and permission changes interleaved
// on one page see each other at once (the page and permission lookup
// caches follow copy on write, new pages and permission changes), and a
// state made from a template never sees another's.
func TestMemoryLookupCache(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	tmpl, err := replay.NewTemplate(&md)
	if err != nil {
		t.Fatal(err)
	}
	st, other := tmpl.State(), tmpl.State()
	var addr uint64
	st.Mem.Mapped(func(vpn, n uint64, perm uint8) {
		if addr == 0 && perm&replay.PermX != 0 {
			addr = vpn<<12 + 0x10
		}
	})
	if addr == 0 {
		t.Fatal("no executable page")
	}
	orig := st.Mem.U64(addr)
	for i, v := range []uint64{orig ^ 0xff, 0x1122334455667788, 7} {
		st.Apply(&format.Row{Seq: uint64(i + 1), Kind: format.KindWrite, Addr: addr, Size: 8, New: v})
		if got := st.Mem.U64(addr); got != v {
			t.Fatalf("store %d: read %#x after storing %#x", i, got, v)
		}
		var b [2]byte
		st.Mem.Read(addr+7, b[:])
		if b[0] != byte(v>>56) {
			t.Fatalf("store %d: byte 7 reads %#x, want %#x", i, b[0], byte(v>>56))
		}
		if got := other.Mem.U64(addr); got != orig {
			t.Fatalf("store %d: another state made from the template reads %#x, want %#x", i, got, orig)
		}
	}
	// A page nobody stored to, read (missing) then stored to.
	far := uint64(0x7000_0000_0000)
	if st.Mem.Page(far) != nil || st.Mem.U64(far) != 0 {
		t.Fatal("an untouched page reads as present")
	}
	st.Apply(&format.Row{Seq: 10, Kind: format.KindWrite, Addr: far, Size: 4, New: 0xdeadbeef})
	if got := st.Mem.U64(far); got != 0xdeadbeef {
		t.Fatalf("new page reads %#x after a store", got)
	}
	// Permissions: read, changed, read again.
	perm := st.Mem.Perm(addr)
	st.Apply(&format.Row{Seq: 11, Kind: format.KindPerm, Addr: addr &^ 0xfff, Size: 1, PermNew: replay.PermR})
	if got := st.Mem.Perm(addr); got != replay.PermR {
		t.Fatalf("perm %#x after the change to r--, was %#x", got, perm)
	}
	if got := other.Mem.Perm(addr); got != perm {
		t.Fatalf("another state's perm changed to %#x", got)
	}
}

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

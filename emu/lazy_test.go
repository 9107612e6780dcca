package emu

import "testing"

// TestLazyZeroPages: pages nothing stored to at boot (NOBITS sections, boot
// stacks, per-CPU areas past their template) share the never-written
// zeroFrame, reads of them see zeros, and the first store gives a page its
// own frame, seen by that machine only; executable pages always have their
// own frame (decode caches keep frames).
func TestLazyZeroPages(t *testing.T) {
	spec := loadBuiltin(t, "text-poke-bp")
	img, err := LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var bss *Section
	for i := range img.Sections {
		if s := &img.Sections[i]; s.Data == nil && s.Perm&PermW != 0 && s.Size >= 2*pageSize {
			bss = s
		}
	}
	if bss == nil {
		t.Fatal("text-poke-bp has no writable NOBITS section of two pages or more")
	}
	m1, _, err := SetupImage(spec, img, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := SetupImage(spec, img, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	for vpn, p := range m1.mem.pages {
		if p.f == &zeroFrame {
			shared++
		}
		if p.perm&PermX != 0 && p.f == &zeroFrame {
			t.Errorf("executable page %#x reads zeroFrame", vpn<<pageShift)
		}
	}
	if shared == 0 {
		t.Fatalf("no page of %d shares the zero frame: setup allocated every page", len(m1.mem.pages))
	}
	// A store to the last page of the section: only m1 sees it.
	addr := (bss.Addr+bss.Size-1)&^pageMask + 8
	c := m1.cpus[0]
	if !c.write(addr, 8, 0x1122334455667788) {
		t.Fatalf("store to %#x faulted", addr)
	}
	if p := m1.mem.page(addr >> pageShift); p.f == &zeroFrame {
		t.Errorf("page %#x still reads zeroFrame after a store", addr)
	}
	if v, ok := c.read(addr, 8); !ok || v != 0x1122334455667788 {
		t.Errorf("m1 reads %#x, %v after the store", v, ok)
	}
	if v, ok := m2.cpus[0].read(addr, 8); !ok || v != 0 {
		t.Errorf("m2 reads %#x, %v: m1's store leaked", v, ok)
	}
	// Runs store all over memory: the shared frame stays zero.
	for seed := uint64(1); seed <= 3; seed++ {
		m, src, err := SetupImage(spec, img, Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if res := m.Run(src); res.Stop != StopDone {
			t.Fatalf("seed %d: stop %v: %v %s", seed, res.Stop, res.Err, res.Msg)
		}
	}
	if zeroFrame != (frame{}) {
		t.Fatal("zeroFrame was written")
	}
}

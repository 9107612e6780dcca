package emu

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/internal/slice"
)

// freeImage is a slice whose pt_start calls module_alloc(0x1000), stores
// through the result, calls free(addr) (the native named free) and then
// loads from the freed page; the natives are ud2 stubs at pt_start+0x100.
func freeImage(t *testing.T, free string, freeArg []byte) *Image {
	t.Helper()
	code := make([]byte, 0x180)
	call := func(at int, target int) {
		code[at] = 0xe8
		binary.LittleEndian.PutUint32(code[at+1:], uint32(int32(target-(at+5))))
	}
	copy(code, []byte{0xbf, 0x00, 0x10, 0x00, 0x00}) // mov $0x1000,%edi
	call(5, 0x100)                                   // call module_alloc
	copy(code[10:], []byte{0x48, 0x89, 0xc3})        // mov %rax,%rbx
	copy(code[13:], []byte{0x48, 0x89, 0x00})        // mov %rax,(%rax)
	copy(code[16:], freeArg)                         // the argument: mov %rax,%rdi or another
	call(19, 0x110)                                  // call free
	copy(code[24:], []byte{0x48, 0x8b, 0x03})        // mov (%rbx),%rax: faults once freed
	copy(code[27:], asmSelf)
	copy(code[0x100:], []byte{0x0f, 0x0b}) // module_alloc: ud2
	copy(code[0x110:], []byte{0x0f, 0x0b}) // free: ud2
	img := testImage(t, code, faultGates()...)
	img.Symbols = append(img.Symbols,
		Symbol{Name: "module_alloc", Addr: testText + 0x100, Size: 2, Section: ".text", Func: true},
		Symbol{Name: free, Addr: testText + 0x110, Size: 2, Section: ".text", Func: true})
	img.syms = slice.NewTable(img.Symbols)
	img.Symbols = img.syms.Symbols()
	return img
}

// TestModuleFree: vfree and module_memfree unmap the pages of the
// module_alloc allocation they are given, record the service (its
// argument) and a perm event per page to "unmapped", and a later load
// from the page is a not-present #PF at that address; a NULL free does
// nothing; freeing twice, or an address that is not an allocation's
// start, is an oops naming it.
func TestModuleFree(t *testing.T) {
	movRaxRdi := []byte{0x48, 0x89, 0xc7}
	for _, free := range []string{"vfree", "module_memfree"} {
		t.Run(free, func(t *testing.T) {
			m, rec := newTestMachine(t, freeImage(t, free, movRaxRdi), Quirks{})
			for i := 0; i < 12 && len(rec.kinds(EvTrap)) == 0; i++ {
				step(m)
			}
			var svc *Event
			for _, e := range rec.kinds(EvService) {
				if e.Service.String() == free {
					svc = &e
				}
			}
			if svc == nil || svc.Args[0] != moduleBase {
				t.Fatalf("no %s service event with the allocation's address: %+v", free, rec.kinds(EvService))
			}
			var freed []Event
			for _, e := range rec.kinds(EvPerm) {
				if e.Service.String() == free {
					freed = append(freed, e)
				}
			}
			if len(freed) != 1 || freed[0].Addr != moduleBase || freed[0].PermOld != PermRW || freed[0].PermNew != 0 {
				t.Fatalf("perm events of the free: %+v, want one rw- -> none at %#x", freed, moduleBase)
			}
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != VecPF || traps[0].Addr != moduleBase || traps[0].ErrCode != 0 || traps[0].RIP != testText+24 {
				t.Fatalf("traps %+v, want a not-present read #PF at %#x from pt_start+24", traps, moduleBase)
			}
		})
	}
	t.Run("NULL", func(t *testing.T) {
		xorEdi := []byte{0x31, 0xff, 0x90} // xor %edi,%edi; nop
		m, rec := newTestMachine(t, freeImage(t, "vfree", xorEdi), Quirks{})
		for i := 0; i < 12; i++ {
			step(m)
		}
		if len(rec.kinds(EvTrap)) != 0 || len(rec.kinds(EvFault)) != 0 || m.cpus[0].RIP != testText+27 {
			t.Fatalf("vfree(NULL): traps %+v faults %+v rip %#x", rec.kinds(EvTrap), rec.kinds(EvFault), m.cpus[0].RIP)
		}
	})
	t.Run("not an allocation", func(t *testing.T) {
		incRdi := []byte{0x48, 0xff, 0xc7} // inc %rdi: rdi still holds module_alloc's size, 0x1000
		m, rec := newTestMachine(t, freeImage(t, "module_memfree", incRdi), Quirks{})
		res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 10}}})
		f := rec.kinds(EvFault)
		if res.Stop != StopOops || len(f) != 1 || f[0].Addr != 0x1001 || !strings.Contains(f[0].Msg, "module_memfree: 0x1001 is not a live module_alloc allocation") {
			t.Fatalf("stop %v faults %+v", res.Stop, f)
		}
	})
	t.Run("twice", func(t *testing.T) {
		m, rec := newTestMachine(t, freeImage(t, "vfree", movRaxRdi), Quirks{})
		c := m.cpus[0]
		for i := 0; i < 8; i++ { // through the first vfree
			step(m)
		}
		if c.RIP != testText+24 {
			t.Fatalf("rip %#x after the free, want pt_start+24", c.RIP)
		}
		c.RIP, c.R[RDI] = testText+19, moduleBase // free the same address again
		for i := 0; i < 2; i++ {
			step(m)
		}
		f := rec.kinds(EvFault)
		if m.stop != StopOops || len(f) != 1 || !strings.Contains(f[0].Msg, "vfree: 0xffffffffa0000000 is not a live module_alloc allocation") {
			t.Fatalf("stop %v faults %+v", m.stop, f)
		}
	})
}

// TestFreeShootsDownTLBs: a CPU that used a page before it was freed
// faults on it afterwards, like the kernel's CPUs after vfree's TLB flush:
// the free drops the translation from every CPU's TLB (a TLB hit does not
// revalidate it). Reads are made right after the free, with no other access
// between that could evict the entry by chance.
func TestFreeShootsDownTLBs(t *testing.T) {
	m, err := New(freeImage(t, "vfree", []byte{0x48, 0x89, 0xc7}), Config{CPUs: 2, Sink: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0] // runs the code; cpu1 only reads (its TLB keeps what it read: it fetches nothing)
	c.booted = true
	for i := 0; i < 12 && c.RIP != testText+16; i++ { // through the store to the allocation
		step(m)
	}
	if c.RIP != testText+16 {
		t.Fatalf("rip %#x, want pt_start+16 (after the store)", c.RIP)
	}
	for _, o := range m.cpus { // both CPUs have the page in their TLB
		if _, ok := o.read(moduleBase, 8); !ok {
			t.Fatalf("cpu%d: read of the live allocation faulted", o.ID)
		}
	}
	for i := 0; i < 4 && c.RIP != testText+24; i++ { // the argument, the call, the free, its return
		step(m)
	}
	if c.RIP != testText+24 {
		t.Fatalf("rip %#x, want pt_start+24 (after the free)", c.RIP)
	}
	for _, o := range m.cpus {
		o.exit = exitNone
		if v, ok := o.read(moduleBase, 8); ok {
			t.Errorf("cpu%d read %#x from the freed page through its TLB, want a not-present #PF", o.ID, v)
		}
		o.exit = exitNone
	}
}

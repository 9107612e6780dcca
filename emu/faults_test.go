package emu

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Tests of the exceptions instructions raise (SDM Vol. 3 §6.15) and of
// event delivery rules: selector checks of IRETQ, non-canonical addresses,
// #PF error codes, #DB single-step, the MOV SS shadow and IST nesting.

const nonCanon uint64 = 0x0000800000000000 // the first non-canonical address above the lower half

func peek64(m *Machine, addr uint64) uint64 {
	var b [8]byte
	m.mem.peek(addr, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func poke64(m *Machine, addr, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	m.mem.poke(addr, b[:])
}

// setIST points cpu_tss_ist[n] of cpu 0 at top.
func setIST(m *Machine, n int, top uint64) {
	poke64(m, m.cpus[0].GSBase+8*uint64(n), top) // cpu_tss_ist is at offset 0, indexed by IST number
}

// faultGates is a handler (jmp .) for every vector an instruction can raise
// here.
func faultGates() []testGate {
	var g []testGate
	for _, v := range []Vector{VecDB, VecBP, VecUD, VecNP, VecSS, VecGP, VecPF} {
		g = append(g, testGate{v: v, code: asmSelf})
	}
	return g
}

func TestIretqSelectorChecks(t *testing.T) {
	const ret = testText + 2 // where an accepted IRETQ lands: the jmp .
	for _, tc := range []struct {
		name    string
		rip     uint64
		cs, ss  uint64
		vec     Vector // 0: accepted
		errCode uint64
		unsup   string // the run ends unsupported with this in the error
	}{
		{name: "kernel CS and SS", rip: ret, cs: 0x10, ss: 0x18},
		{name: "null SS at CPL 0", rip: ret, cs: 0x10, ss: 0},
		{name: "upper bits of the slots ignored", rip: ret, cs: 0xdead0010, ss: 0xbeef0018},
		{name: "SS clobbered by a kernel address", rip: ret, cs: 0x10, ss: 0xffffffff81234567, vec: VecGP, errCode: 0x4564},
		{name: "SS user data RPL 3", rip: ret, cs: 0x10, ss: 0x2b, vec: VecGP, errCode: 0x28},
		{name: "SS user data RPL 0 (DPL 3)", rip: ret, cs: 0x10, ss: 0x28, vec: VecGP, errCode: 0x28},
		{name: "SS a code segment", rip: ret, cs: 0x10, ss: 0x10, vec: VecGP, errCode: 0x10},
		{name: "SS the TSS", rip: ret, cs: 0x10, ss: 0x40, vec: VecGP, errCode: 0x40},
		{name: "SS null with RPL 3", rip: ret, cs: 0x10, ss: 3, vec: VecGP, errCode: 0},
		{name: "SS in the LDT", rip: ret, cs: 0x10, ss: 0x1c, vec: VecGP, errCode: 0x1c},
		{name: "SS beyond the GDT limit", rip: ret, cs: 0x10, ss: 0x80, vec: VecGP, errCode: 0x80},
		{name: "CS null", rip: ret, cs: 0, ss: 0x18, vec: VecGP, errCode: 0},
		{name: "CS a data segment", rip: ret, cs: 0x18, ss: 0x18, vec: VecGP, errCode: 0x18},
		{name: "CS kernel with RPL 3", rip: ret, cs: 0x13, ss: 0x18, vec: VecGP, errCode: 0x10},
		{name: "CS an empty TLS slot", rip: ret, cs: 0x60, ss: 0x18, vec: VecGP, errCode: 0x60},
		{name: "CS checked before SS", rip: ret, cs: 0x18, ss: 0x2b, vec: VecGP, errCode: 0x18},
		{name: "non-canonical RIP", rip: nonCanon, cs: 0x10, ss: 0x18, vec: VecGP, errCode: 0},
		{name: "return to user mode", rip: ret, cs: 0x33, ss: 0x2b, unsup: "IRETQ to CPL 3"},
		{name: "return to compatibility mode", rip: ret, cs: 0x08, ss: 0x18, unsup: "compatibility mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(asmIretq, asmSelf), faultGates()...)
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			sp := testData + 0x800
			for i, v := range []uint64{tc.rip, tc.cs, FlagZF | flagRes1, testData + 0x400, tc.ss} {
				poke64(m, sp+8*uint64(i), v)
			}
			c.R[RSP] = sp
			res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 2}}})
			if tc.unsup != "" {
				var u *UnsupportedError
				if !errors.As(res.Err, &u) || !strings.Contains(res.Err.Error(), tc.unsup) || !strings.Contains(res.Err.Error(), "48 cf") {
					t.Fatalf("stop %v err %v, want an unsupported error naming %q and the IRETQ", res.Stop, res.Err, tc.unsup)
				}
				return
			}
			traps := rec.kinds(EvTrap)
			if tc.vec == 0 {
				if len(traps) != 0 || len(rec.kinds(EvIret)) != 1 {
					t.Fatalf("traps %+v, want the IRETQ to complete", traps)
				}
				if c.RIP != tc.rip || c.R[RSP] != testData+0x400 || c.SS != uint16(tc.ss) || c.RFLAGS != FlagZF|flagRes1 {
					t.Fatalf("after IRETQ RIP %#x RSP %#x SS %#x RFLAGS %#x", c.RIP, c.R[RSP], c.SS, c.RFLAGS)
				}
				return
			}
			if len(traps) != 1 || traps[0].Vector != tc.vec || traps[0].ErrCode != tc.errCode {
				t.Fatalf("traps %+v, want %s(%#x)", traps, tc.vec.Name(), tc.errCode)
			}
			if traps[0].RIP != testText || len(rec.kinds(EvIret)) != 0 {
				t.Fatalf("fault at %#x, want at the IRETQ %#x with nothing popped", traps[0].RIP, testText)
			}
			// The fault left the frame where it was: the pushed RSP is the
			// IRETQ's and the saved SS is the one from before.
			if got := peek64(m, c.R[RSP]+8*4); got != sp {
				t.Errorf("saved RSP %#x, want the frame at %#x", got, sp)
			}
			if got := peek64(m, c.R[RSP]+8*5); got != selKernelSS {
				t.Errorf("saved SS %#x, want 0x18", got)
			}
		})
	}
}

// TestIretqLoadsSS: the SS IRETQ accepts is the one the next delivery
// pushes (same-privilege delivery leaves SS alone, SDM Vol. 3 §6.14.4).
func TestIretqLoadsSS(t *testing.T) {
	img := testImage(t, cat(asmIretq, asmSelf, asmInt3, asmSelf), faultGates()...)
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	sp := testData + 0x800
	for i, v := range []uint64{testText + 4, 0x10, flagRes1, testData + 0x400, 0} {
		poke64(m, sp+8*uint64(i), v)
	}
	c.R[RSP] = sp
	step(m) // iretq to the int3 with SS = 0
	step(m) // int3
	if tr := rec.kinds(EvTrap); len(tr) != 1 || tr[0].Vector != VecBP {
		t.Fatalf("traps %+v", tr)
	}
	if got := peek64(m, c.R[RSP]+32); got != 0 {
		t.Fatalf("#BP frame SS = %#x, want the null SS IRETQ loaded", got)
	}
}

func TestNonCanonicalAddressFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  []byte
		setup func(c *CPU, m *Machine)
		vec   Vector
	}{
		{"load", []byte{0x48, 0x8b, 0x03}, func(c *CPU, m *Machine) { c.R[RBX] = nonCanon }, VecGP},            // mov (%rbx),%rax
		{"store", []byte{0x48, 0x89, 0x03}, func(c *CPU, m *Machine) { c.R[RBX] = 0x8000000000000000 }, VecGP}, // mov %rax,(%rbx)
		{"store straddling into the hole", []byte{0x48, 0x89, 0x03}, func(c *CPU, m *Machine) { c.R[RBX] = nonCanon - 4 }, VecGP},
		{"load based on RBP", []byte{0x48, 0x8b, 0x45, 0x00}, func(c *CPU, m *Machine) { c.R[RBP] = nonCanon }, VecSS}, // mov 0(%rbp),%rax
		{"load based on RSP", []byte{0x48, 0x8b, 0x44, 0x24, 0x08}, func(c *CPU, m *Machine) { c.R[RSP] = nonCanon }, VecSS},
		{"push", []byte{0x50}, func(c *CPU, m *Machine) { c.R[RSP] = nonCanon + 8 }, VecSS},
		{"pop", []byte{0x58}, func(c *CPU, m *Machine) { c.R[RSP] = nonCanon }, VecSS},
		{"jmp *%rax", []byte{0xff, 0xe0}, func(c *CPU, m *Machine) { c.R[RAX] = nonCanon }, VecGP},
		{"call *%rax", []byte{0xff, 0xd0}, func(c *CPU, m *Machine) { c.R[RAX] = 0x8000000000001000 }, VecGP},
		{"jmp *(%rbx)", []byte{0xff, 0x23}, func(c *CPU, m *Machine) { c.R[RBX] = testData; poke64(m, testData, nonCanon) }, VecGP},
		{"ret", []byte{0xc3}, func(c *CPU, m *Machine) { c.R[RSP] = testData + 0x100; poke64(m, testData+0x100, nonCanon) }, VecGP},
		{"ret imm16", []byte{0xc2, 0x10, 0x00}, func(c *CPU, m *Machine) { c.R[RSP] = testData + 0x100; poke64(m, testData+0x100, nonCanon) }, VecGP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gates []testGate
			for _, g := range faultGates() {
				g.ist = 1 // deliver on a good stack whatever RSP is
				gates = append(gates, g)
			}
			img := testImage(t, cat(tc.code, asmSelf), gates...)
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			setIST(m, 1, testData+0x1000)
			tc.setup(c, m)
			before := *c
			writes := len(rec.kinds(EvWrite))
			step(m)
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != tc.vec || traps[0].ErrCode != 0 || traps[0].Addr != 0 {
				t.Fatalf("traps %+v, want %s(0) with no CR2", traps, tc.vec.Name())
			}
			if traps[0].RIP != testText {
				t.Errorf("fault RIP %#x, want the instruction %#x", traps[0].RIP, testText)
			}
			if n := len(rec.kinds(EvWrite)) - writes; n != 6 {
				t.Errorf("%d writes, want only the 6 of the frame", n)
			}
			// A fault has no effect: the frame holds the registers as before.
			if got := peek64(m, c.R[RSP]+8*4); got != before.R[RSP] {
				t.Errorf("saved RSP %#x, want %#x", got, before.R[RSP])
			}
			if got := peek64(m, c.R[RSP]+8); got != testText {
				t.Errorf("saved RIP %#x, want %#x", got, testText)
			}
		})
	}
}

func TestPageFaultErrorCodeAndCR2(t *testing.T) {
	const unmapped uint64 = 0xffffffff81f00000
	for _, tc := range []struct {
		name    string
		code    []byte
		setup   func(c *CPU)
		cr2     uint64
		errCode uint64
		rip     uint64 // the faulting RIP
	}{
		{"read not present", []byte{0x48, 0x8b, 0x03}, func(c *CPU) { c.R[RBX] = unmapped + 8 }, unmapped + 8, 0, testText},
		{"write not present", []byte{0x48, 0x89, 0x03}, func(c *CPU) { c.R[RBX] = unmapped }, unmapped, 2, testText},
		{"write protection", []byte{0x48, 0x89, 0x03}, func(c *CPU) { c.R[RBX] = testRX + 0x18 }, testRX + 0x18, 3, testText},
		{"write straddling into a read-only page", []byte{0x48, 0x89, 0x03}, func(c *CPU) { c.R[RBX] = testRX - 4 }, testRX, 3, testText}, // CR2: the first byte on the faulting page
		{"fetch not present", []byte{0xff, 0xe0}, func(c *CPU) { c.R[RAX] = unmapped + 0x40 }, unmapped + 0x40, 0x10, unmapped + 0x40},
		{"fetch from a no-execute page", []byte{0xff, 0xe0}, func(c *CPU) { c.R[RAX] = testData + 0x20 }, testData + 0x20, 0x11, testData + 0x20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(tc.code, asmSelf), faultGates()...)
			m, rec := newTestMachine(t, img, Quirks{})
			tc.setup(m.cpus[0])
			for i := 0; i < 2 && len(rec.kinds(EvTrap)) == 0; i++ {
				step(m)
			}
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != VecPF {
				t.Fatalf("traps %+v, want #PF", traps)
			}
			if traps[0].Addr != tc.cr2 || traps[0].ErrCode != tc.errCode || traps[0].RIP != tc.rip {
				t.Fatalf("#PF CR2 %#x error code %#x at %#x, want %#x %#x at %#x", traps[0].Addr, traps[0].ErrCode, traps[0].RIP, tc.cr2, tc.errCode, tc.rip)
			}
		})
	}
}

// TestUnhandledPageFaultOopsCarriesCR2: with no #PF entry the oops event
// names the fault address and error code.
func TestUnhandledPageFaultOopsCarriesCR2(t *testing.T) {
	img := testImage(t, cat([]byte{0x48, 0x89, 0x03}, asmSelf))
	m, rec := newTestMachine(t, img, Quirks{})
	m.cpus[0].R[RBX] = testRX + 8
	res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 2}}})
	f := rec.kinds(EvFault)
	if res.Stop != StopOops || len(f) != 1 || f[0].Vector != VecPF || f[0].Addr != testRX+8 || f[0].ErrCode != 3 {
		t.Fatalf("stop %v faults %+v", res.Stop, f)
	}
}

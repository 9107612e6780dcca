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
		// IA-32e-MODE-RETURN checks the #GP(0) cases before any descriptor.
		{name: "non-canonical RIP before a bad CS", rip: nonCanon, cs: 0x18, ss: 0x18, vec: VecGP, errCode: 0},
		{name: "null SS with RPL 3 before a bad CS", rip: ret, cs: 0x18, ss: 3, vec: VecGP, errCode: 0},
		{name: "null SS to compatibility mode", rip: ret, cs: 0x08, ss: 0, vec: VecGP, errCode: 0},
		{name: "null SS to CPL 3", rip: ret, cs: 0x33, ss: 0x3, vec: VecGP, errCode: 0},
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
				if res.Stop != StopUnsupported || !errors.As(res.Err, &u) || !strings.Contains(res.Err.Error(), tc.unsup) || !strings.Contains(res.Err.Error(), "48 cf") {
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
		{"pop to memory", []byte{0x8f, 0x03}, func(c *CPU, m *Machine) { c.R[RSP] = nonCanon; c.R[RBX] = testData }, VecSS}, // pop (%rbx)
		{"leave", []byte{0xc9}, func(c *CPU, m *Machine) { c.R[RBP] = nonCanon }, VecSS},
		{"push from memory", []byte{0xff, 0x33}, func(c *CPU, m *Machine) { c.R[RBX] = nonCanon }, VecGP}, // push (%rbx)
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

// Hand-assembled (checked against GNU as).
var (
	asmPushf   = []byte{0x9c}
	asmPopf    = []byte{0x9d}
	asmOrTF    = []byte{0x48, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00} // orq $0x100,(%rsp)
	asmMovSS   = []byte{0x8e, 0xd0}                                     // mov %eax,%ss
	asmMovFSS  = []byte{0x8c, 0xd1}                                     // mov %ss,%ecx
	asmRdDR6   = []byte{0x0f, 0x21, 0xf0}                               // mov %dr6,%rax
	asmWrDR6   = []byte{0x0f, 0x23, 0xf3}                               // mov %rbx,%dr6
	asmWrDR7   = []byte{0x0f, 0x23, 0xfb}                               // mov %rbx,%dr7
	asmInt1    = []byte{0xf1}
	asmSetTF   = cat(asmPushf, asmOrTF, asmPopf) // RFLAGS.TF := 1
	setTFLen   = uint64(len(asmSetTF))
	dbHandler  = testGate{v: VecDB, code: asmIretq}
	bpHandler  = testGate{v: VecBP, code: asmSelf}
	gpHandler  = testGate{v: VecGP, code: asmSelf}
	nmiHandler = testGate{v: VecNMI, code: asmSelf}
)

// dbTraps returns the saved RIPs (where each #DB trap returns to) of the #DB
// deliveries and checks each reports BS in DR6.
func dbTraps(t *testing.T, rec *recorder) []uint64 {
	t.Helper()
	var rips []uint64
	for _, e := range rec.kinds(EvTrap) {
		if e.Vector != VecDB {
			continue
		}
		if e.Addr&dr6BS == 0 {
			t.Errorf("#DB at %#x: DR6 %#x without BS", e.RIP, e.Addr)
		}
		rips = append(rips, e.RIP)
	}
	return rips
}

func TestSingleStepOneTrapPerInstruction(t *testing.T) {
	// pushf (a copy without TF); set TF; nop; nop; popf (clears TF);
	// nop; jmp . The #DB handler is a bare IRETQ, which restores TF.
	code := cat(asmPushf, asmSetTF, asmNop, asmNop, asmPopf, asmNop, asmSelf)
	img := testImage(t, code, dbHandler)
	m, rec := newTestMachine(t, img, Quirks{})
	for i := 0; i < 30; i++ {
		step(m)
	}
	base := testText + 1 + setTFLen
	// The POPF that set TF does not trap; each later instruction does,
	// including the POPF that clears TF; the nop after it does not. The
	// handler (TF cleared on delivery) never traps.
	want := []uint64{base + 1, base + 2, base + 3}
	got := dbTraps(t, rec)
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("#DB traps return to %#x, want %#x", got, want)
	}
	if c := m.cpus[0]; c.RFLAGS&FlagTF != 0 || c.RIP != base+4 || c.DR6 != dr6Init|dr6BS {
		t.Fatalf("end: RFLAGS %#x RIP %#x DR6 %#x", c.RFLAGS, c.RIP, c.DR6)
	}
}

func TestSingleStepOverIretq(t *testing.T) {
	// IRETQ loads TF from the frame: it does not trap itself; the
	// instruction it returns to does (kprobes' single-step of an
	// out-of-line copy).
	code := cat(asmIretq, asmNop, asmNop, asmSelf)
	img := testImage(t, code, dbHandler)
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	sp := testData + 0x800
	for i, v := range []uint64{testText + 2, 0x10, flagRes1 | FlagTF, testData + 0x400, 0x18} {
		poke64(m, sp+8*uint64(i), v)
	}
	c.R[RSP] = sp
	for i := 0; i < 6; i++ {
		step(m)
	}
	if got := dbTraps(t, rec); len(got) != 2 || got[0] != testText+3 || got[1] != testText+4 {
		t.Fatalf("#DB traps return to %#x, want after each nop", got)
	}
}

func TestTFClearedOnDelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		v    Vector
		pre  func(m *Machine)
	}{
		{"#BP", cat(asmSetTF, asmInt3, asmSelf), VecBP, nil},
		{"#GP", cat(asmSetTF, []byte{0xff, 0xe0}, asmSelf), VecGP, func(m *Machine) { m.cpus[0].R[RAX] = nonCanon }},
		{"NMI", cat(asmSetTF, asmNop, asmSelf), VecNMI, func(m *Machine) { m.raise(m.cpus[0], VecNMI, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, tc.code, bpHandler, gpHandler, nmiHandler, testGate{v: VecDB, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			for i := 0; i < 3; i++ {
				step(m)
			}
			if c.RFLAGS&FlagTF == 0 {
				t.Fatal("TF not set by the POPF")
			}
			if tc.pre != nil {
				tc.pre(m)
			}
			for i := 0; i < 4; i++ {
				step(m)
			}
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != tc.v {
				t.Fatalf("traps %+v, want one %s (and no #DB: the handler must not single-step)", traps, tc.v.Name())
			}
			if c.RFLAGS&FlagTF != 0 {
				t.Fatalf("TF still set in the %s handler: RFLAGS %#x", tc.v.Name(), c.RFLAGS)
			}
			if traps[0].Flags&FlagTF == 0 {
				t.Fatalf("the %s frame's RFLAGS %#x lost TF", tc.v.Name(), traps[0].Flags)
			}
		})
	}
}

func TestMovSSShadow(t *testing.T) {
	t.Run("single-step held one instruction", func(t *testing.T) {
		// TF set; mov %eax,%ss; nop; nop: the trap after MOV SS is held
		// and merges with the nop's: one #DB for the pair.
		code := cat(asmSetTF, asmMovSS, asmNop, asmNop, asmSelf)
		img := testImage(t, code, dbHandler)
		m, rec := newTestMachine(t, img, Quirks{})
		m.cpus[0].R[RAX] = 0x18
		for i := 0; i < 12; i++ {
			step(m)
		}
		b := testText + setTFLen
		if got := dbTraps(t, rec); len(got) != 3 || got[0] != b+3 || got[1] != b+4 || got[2] != b+4 {
			// After the pair, then the second nop, then the jmp . (its
			// target is itself).
			t.Fatalf("#DB traps return to %#x, want %#x %#x %#x", got, b+3, b+4, b+4)
		}
	})
	t.Run("NMI and interrupt held one instruction", func(t *testing.T) {
		code := cat(asmMovSS, asmNop, asmNop, asmSelf)
		img := testImage(t, code, nmiHandler, testGate{v: VecTimer, code: asmSelf})
		m, rec := newTestMachine(t, img, Quirks{NMIInSTIShadow: true})
		c := m.cpus[0]
		c.R[RAX] = 0
		c.RFLAGS |= FlagIF
		step(m) // mov ss (null: allowed at CPL 0)
		m.raise(c, VecTimer, nil)
		m.raise(c, VecNMI, nil)
		step(m) // the shadowed nop runs first, whatever the STI quirk says
		if n := len(rec.kinds(EvTrap)); n != 0 || c.RIP != testText+3 {
			t.Fatalf("delivered inside the MOV SS shadow: %d traps, RIP %#x", n, c.RIP)
		}
		step(m)
		if tr := rec.kinds(EvTrap); len(tr) != 1 || tr[0].Vector != VecNMI || tr[0].RIP != testText+3 {
			t.Fatalf("traps %+v, want the NMI first, after the shadowed nop", tr)
		}
		if c.SS != 0 || peek64(m, c.R[RSP]+32) != 0 {
			t.Fatalf("SS %#x, frame SS %#x: want the null SS loaded and pushed", c.SS, peek64(m, c.R[RSP]+32))
		}
	})
	t.Run("INT3 in the shadow: the held #DB is taken at the handler", func(t *testing.T) {
		// SDM Vol. 3 §6.8.3; CVE-2018-8897.
		code := cat(asmSetTF, asmMovSS, asmInt3, asmSelf)
		img := testImage(t, code, bpHandler, testGate{v: VecDB, code: asmSelf})
		m, rec := newTestMachine(t, img, Quirks{})
		m.cpus[0].R[RAX] = 0x18
		for i := 0; i < 6; i++ {
			step(m)
		}
		tr := rec.kinds(EvTrap)
		if len(tr) != 2 || tr[0].Vector != VecBP || tr[1].Vector != VecDB || tr[1].RIP != testHandler {
			t.Fatalf("traps %+v, want #BP then #DB before the #BP handler's first instruction", tr)
		}
	})
}

func TestMovSSSelectors(t *testing.T) {
	for _, tc := range []struct {
		sel     uint64
		vec     Vector
		errCode uint64
	}{
		{0x18, 0, 0},
		{0, 0, 0},
		{0xdead0018, 0, 0}, // a 16-bit load: the upper bits are not the selector
		{0x2b, VecGP, 0x28},
		{0x10, VecGP, 0x10},
		{0x3, VecGP, 0},
		{0x80, VecGP, 0x80},
	} {
		t.Run(hex(tc.sel), func(t *testing.T) {
			img := testImage(t, cat(asmMovSS, asmMovFSS, asmSelf), faultGates()...)
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			c.R[RAX] = tc.sel
			c.R[RCX] = ^uint64(0)
			step(m)
			step(m)
			tr := rec.kinds(EvTrap)
			if tc.vec == 0 {
				if len(tr) != 0 || c.SS != uint16(tc.sel) || c.R[RCX] != uint64(uint16(tc.sel)) {
					t.Fatalf("traps %+v SS %#x RCX %#x", tr, c.SS, c.R[RCX])
				}
				return
			}
			if len(tr) != 1 || tr[0].Vector != tc.vec || tr[0].ErrCode != tc.errCode || tr[0].RIP != testText || c.SS != selKernelSS {
				t.Fatalf("traps %+v SS %#x, want %s(%#x) at the MOV with SS unchanged", tr, c.SS, tc.vec.Name(), tc.errCode)
			}
		})
	}
}

func TestDebugRegisters(t *testing.T) {
	t.Run("DR6 readable in the #DB handler", func(t *testing.T) {
		img := testImage(t, cat(asmSetTF, asmNop, asmSelf), testGate{v: VecDB, code: cat(asmRdDR6, asmWrDR6, asmSelf)})
		m, _ := newTestMachine(t, img, Quirks{})
		c := m.cpus[0]
		c.R[RBX] = 0
		for i := 0; i < 7; i++ {
			step(m)
		}
		if c.R[RAX] != dr6Init|dr6BS || c.DR6 != dr6Init {
			t.Fatalf("read DR6 %#x (want %#x), DR6 after writing 0: %#x (want %#x)", c.R[RAX], dr6Init|dr6BS, c.DR6, dr6Init)
		}
	})
	t.Run("INT1", func(t *testing.T) {
		img := testImage(t, cat(asmInt1, asmSelf), testGate{v: VecDB, code: asmSelf})
		m, rec := newTestMachine(t, img, Quirks{})
		step(m)
		step(m)
		tr := rec.kinds(EvTrap)
		if len(tr) != 1 || tr[0].Vector != VecDB || tr[0].RIP != testText+1 || tr[0].Addr&dr6BS != 0 {
			t.Fatalf("traps %+v, want a #DB trap after the F1 without BS", tr)
		}
	})
	t.Run("enabling a breakpoint is unsupported", func(t *testing.T) {
		img := testImage(t, cat(asmWrDR7, asmSelf))
		m, _ := newTestMachine(t, img, Quirks{})
		m.cpus[0].R[RBX] = 1 // L0
		res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 2}}})
		if res.Stop != StopUnsupported || !strings.Contains(res.Msg, "DR7") {
			t.Fatalf("stop %v %q", res.Stop, res.Msg)
		}
	})
}

// TestNestedDeliveryOnSameISTClobbersFrame: delivery through an IST gate
// always starts at the IST top (SDM Vol. 3 §6.14.5), so an exception taken
// inside an NMI handler on the same IST overwrites the NMI's live frame,
// as on hardware (the 2012 NMI nesting bugs: Steven Rostedt, "x86: Add
// workaround to NMI iret woes", commit 3f3c8b8c4b2a).
func TestNestedDeliveryOnSameISTClobbersFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler []byte // NMI handler code
		v       Vector
		saved   uint64 // the RIP the nested frame saves (handler offset)
	}{
		{"#BP", cat(asmNop, asmInt3, asmSelf), VecBP, 2},
		{"#DB single-step", cat(asmSetTF, asmNop, asmSelf), VecDB, setTFLen + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(asmNop, asmNop, asmSelf),
				testGate{v: VecNMI, ist: 1, code: tc.handler},
				testGate{v: VecBP, ist: 1, code: asmSelf},
				testGate{v: VecDB, ist: 1, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			top := testData + 0x800
			setIST(m, 1, top)
			step(m) // nop
			m.raise(c, VecNMI, nil)
			step(m) // NMI on IST 1
			if got := peek64(m, top-40); got != testText+1 {
				t.Fatalf("NMI frame RIP %#x, want %#x", got, testText+1)
			}
			for i := 0; i < 6 && len(rec.kinds(EvTrap)) < 2; i++ {
				step(m)
			}
			tr := rec.kinds(EvTrap)
			if len(tr) != 2 || tr[1].Vector != tc.v || tr[1].IST != 1 {
				t.Fatalf("traps %+v, want NMI then %s on IST 1", tr, tc.v.Name())
			}
			if c.R[RSP] != top-40 {
				t.Fatalf("nested RSP %#x, want the IST top again (%#x)", c.R[RSP], top-40)
			}
			// The NMI's saved RIP (pt_start+1) and RSP are gone: the slot
			// now holds the NMI handler's own address.
			if got := peek64(m, top-40); got != testHandler+tc.saved {
				t.Fatalf("frame RIP %#x, want the nested frame's %#x", got, testHandler+tc.saved)
			}
			if got := peek64(m, top-16); got != top-40 {
				t.Fatalf("frame RSP %#x, want the NMI handler's RSP %#x", got, top-40)
			}
		})
	}
}

// TestSingleStepTrapBeforeNMIAndInterrupt: at one boundary a single-step
// trap from the previous instruction comes before a pending NMI, which
// comes before a maskable interrupt (SDM Vol. 3 §6.9, Table 6-2); the NMI
// is then taken before the #DB handler's first instruction (its gate
// clears IF, not NMIs), the interrupt waits for IF.
func TestSingleStepTrapBeforeNMIAndInterrupt(t *testing.T) {
	img := testImage(t, cat(asmSetTF, asmNop, asmSelf),
		testGate{v: VecDB, code: asmSelf}, nmiHandler, testGate{v: VecTimer, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	c.RFLAGS |= FlagIF
	for i := 0; i < 3; i++ {
		step(m) // set TF
	}
	m.raise(c, VecTimer, nil)
	m.raise(c, VecNMI, nil)
	// The NMI and the interrupt are taken before the nop: TF was clear
	// when the POPF started, so no trap is pending yet.
	step(m)
	tr := rec.kinds(EvTrap)
	if len(tr) != 1 || tr[0].Vector != VecNMI {
		t.Fatalf("traps %+v, want the NMI first", tr)
	}
	// Start again with only the nop between TF and the events.
	m, rec = newTestMachine(t, img, Quirks{})
	c = m.cpus[0]
	c.RFLAGS |= FlagIF
	for i := 0; i < 4; i++ {
		step(m) // set TF; nop (traps)
	}
	if len(rec.kinds(EvTrap)) != 0 {
		t.Fatal("trap before the boundary")
	}
	m.raise(c, VecTimer, nil)
	m.raise(c, VecNMI, nil)
	step(m)
	step(m)
	tr = rec.kinds(EvTrap)
	if len(tr) != 2 || tr[0].Vector != VecDB || tr[1].Vector != VecNMI || tr[1].RIP != testHandler {
		t.Fatalf("traps %+v, want #DB, then the NMI at the #DB handler's entry", tr)
	}
	if c.irqs == 0 {
		t.Fatal("the interrupt was delivered with IF clear")
	}
}

// TestFaultWhileDelivering: a fault while pushing a frame follows SDM Vol. 3
// Table 6-5: after a benign event it is delivered instead (serially); a #PF
// after a #PF, or a contributory exception after a contributory one, is a
// #DF through its gate; a fault while pushing the #DF frame is a triple
// fault (an oops).
func TestFaultWhileDelivering(t *testing.T) {
	const unmapped uint64 = 0xffffffff81f00000
	for _, tc := range []struct {
		name   string
		dfIST  uint8
		nmiIST bool   // the NMI gate uses IST 1 (whose top is unmapped)
		rsp    uint64 // RSP when the NMI arrives
		traps  []Vector
		cr2    uint64 // of the first trap
		oops   string
	}{
		{"NMI on a dead IST stack: #PF on the current stack", 2, true, testData + 0x800, []Vector{VecPF}, unmapped - 8, ""},
		{"NMI on a dead stack: #PF, then #DF on its IST", 2, false, unmapped + 0x100, []Vector{VecDF}, 0, ""},
		{"non-canonical RSP: #SS, then #DF", 2, false, nonCanon + 0x100, []Vector{VecDF}, 0, ""},
		{"#DF on the dead stack too: triple fault", 0, false, unmapped + 0x100, nil, 0, "triple fault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nmiIST uint8
			if tc.nmiIST {
				nmiIST = 1
			}
			img := testImage(t, cat(asmNop, asmSelf),
				testGate{v: VecNMI, ist: nmiIST, code: asmSelf},
				testGate{v: VecPF, code: asmSelf},
				testGate{v: VecSS, code: asmSelf},
				testGate{v: VecDF, ist: tc.dfIST, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			setIST(m, 1, unmapped)
			setIST(m, 2, testData+0x1000)
			c.R[RSP] = tc.rsp
			m.raise(c, VecNMI, nil)
			res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 3}}})
			if tc.oops != "" {
				if res.Stop != StopOops || !strings.Contains(res.Msg, tc.oops) {
					t.Fatalf("stop %v %q, want an oops saying %q", res.Stop, res.Msg, tc.oops)
				}
				return
			}
			var got []Vector
			for _, e := range rec.kinds(EvTrap) {
				got = append(got, e.Vector)
			}
			if len(got) != len(tc.traps) || got[0] != tc.traps[0] {
				t.Fatalf("traps %v (stop %v %q), want %v", got, res.Stop, res.Msg, tc.traps)
			}
			tr := rec.kinds(EvTrap)[0]
			if tr.RIP != testText || tr.Addr != tc.cr2 || tr.ErrCode != map[bool]uint64{true: 2, false: 0}[tc.cr2 != 0] {
				t.Fatalf("%s saved RIP %#x CR2 %#x error code %#x", tr.Vector.Name(), tr.RIP, tr.Addr, tr.ErrCode)
			}
			if c.nmiBlock {
				t.Error("the NMI whose delivery failed blocks NMIs")
			}
		})
	}
}

// TestNothingRunsAfterADeliveryOops: an event whose delivery oopses (no
// gate) stops the machine at once; the rest of the CPU's quantum does not
// run instructions on a halted machine.
func TestNothingRunsAfterADeliveryOops(t *testing.T) {
	img := testImage(t, cat(asmNop, asmNop, asmNop, asmSelf))
	m, rec := newTestMachine(t, img, Quirks{})
	m.raise(m.cpus[0], VecNMI, nil)
	res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 4}}})
	if res.Stop != StopOops {
		t.Fatalf("stop %v %q, want oops", res.Stop, res.Msg)
	}
	last := rec.ev[len(rec.ev)-1]
	if last.Kind != EvFault {
		t.Fatalf("last event is %v, want the oops (%d insns ran after the fault)", last.Kind, len(rec.kinds(EvInsn)))
	}
}

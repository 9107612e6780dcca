package emu

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Tests of supervisor indirect branch tracking (ibt.go) against the SDM:
// Vol. 1 "Control-flow Enforcement Technology (CET)", Vol. 2 ENDBR64,
// Vol. 3 "Interrupt 21—Control Protection Exception (#CP)" and Table 6-2.

var (
	asmEndbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}
	asmEndbr32 = []byte{0xf3, 0x0f, 0x1e, 0xfb}
	asmRet     = []byte{0xc3}
	asmCallRAX = []byte{0xff, 0xd0}
	asmJmpRAX  = []byte{0xff, 0xe0}
)

// ibtTarget is where the branch of an IBT test lands: testText + 0x40.
const ibtTarget = testText + 0x40

// movRAX is mov $imm32 (sign-extended), %rax.
func movRAX(v uint64) []byte {
	b := []byte{0x48, 0xc7, 0xc0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[3:], uint32(v))
	return b
}

// ibtCode is branch (after mov $ibtTarget, %rax), then jmp ., with target
// at ibtTarget.
func ibtCode(branch, target []byte) []byte { return ibtCodeWarm(nil, branch, target) }

// warmCall is a direct call to ibtTarget at testText: it runs (and
// decodes) the target before the branch does, so that the branch's run of
// common steps finds the target's decode waiting.
var warmCall = []byte{0xe8, 0x3b, 0x00, 0x00, 0x00}

// ibtCodeWarm is ibtCode after pre.
func ibtCodeWarm(pre, branch, target []byte) []byte {
	code := cat(pre, movRAX(ibtTarget), branch, asmSelf)
	code = append(code, make([]byte, 0x40-len(code))...)
	return append(code, target...)
}

// ibtGates: #CP and #BP handlers that begin with ENDBR64, as an IBT
// kernel's do, then spin.
func ibtGates() []testGate {
	return []testGate{
		{v: VecCP, code: cat(asmEndbr64, asmSelf)},
		{v: VecBP, code: cat(asmEndbr64, asmSelf)},
		{v: VecNMI, code: cat(asmEndbr64, asmIretq)},
	}
}

// ibtRun runs code on one CPU for n steps with q and returns the machine
// and the trap events. With fast set the machine has no sink, so the
// branch runs in a run of common steps (fastSteps); the traps then come
// from the CPU's counters, with the #CP frame read from the stack.
func ibtRun(t *testing.T, code []byte, q Quirks, n int, fast bool, gates ...testGate) (*Machine, []Event) {
	t.Helper()
	img := testImage(t, code, append(ibtGates(), gates...)...)
	// The pointer a memory-indirect jmp reads, at testData.
	img.Sections[2].Data = make([]byte, pageSize)
	binary.LittleEndian.PutUint64(img.Sections[2].Data, ibtTarget)
	if fast {
		m, err := New(img, Config{CPUs: 1, Quirks: q})
		if err != nil {
			t.Fatal(err)
		}
		c := m.cpus[0]
		c.booted = true
		c.R[RSP] = testData + 0x800
		m.runCPU(c, n)
		var tr []Event
		for v, k := range c.stats.Traps {
			for ; k > 0; k-- {
				tr = append(tr, Event{Kind: EvTrap, Vector: Vector(v)})
			}
		}
		return m, tr
	}
	m, rec := newTestMachine(t, img, q)
	m.cpus[0].R[RSP] = testData + 0x800
	for i := 0; i < n; i++ {
		step(m)
	}
	return m, rec.kinds(EvTrap)
}

var ibtOnQ = Quirks{IBT: true}

func TestIBTIndirectBranches(t *testing.T) {
	for _, tc := range []struct {
		name   string
		branch []byte
		target []byte
		q      Quirks
		cp     bool // #CP(ENDBRANCH) at the target
	}{
		// SDM: ENDBR64 ends the wait; the RET back is not tracked.
		{"call-endbr64", asmCallRAX, cat(asmEndbr64, asmRet), ibtOnQ, false},
		{"jmp-endbr64", asmJmpRAX, cat(asmEndbr64, asmSelf), ibtOnQ, false},
		// Anything else at the target of a tracked branch is #CP.
		{"call-nop", asmCallRAX, cat(asmNop, asmRet), ibtOnQ, true},
		{"jmp-nop", asmJmpRAX, cat(asmNop, asmSelf), ibtOnQ, true},
		// ENDBR32 is a NOP in 64-bit mode: it does not end the wait.
		{"call-endbr32", asmCallRAX, cat(asmEndbr32, asmRet), ibtOnQ, true},
		// jmp *testData: memory-indirect, tracked the same way.
		{"jmp-mem-nop", []byte{0xff, 0x24, 0x25, 0x00, 0x20, 0x00, 0x81}, cat(asmNop, asmSelf), ibtOnQ, true},
		// NOTRACK (3E) is honoured only with NO_TRACK_EN.
		{"notrack-honoured", cat([]byte{0x3e}, asmCallRAX), cat(asmNop, asmRet), Quirks{IBT: true, IBTNoTrack: true}, false},
		{"notrack-ignored", cat([]byte{0x3e}, asmCallRAX), cat(asmNop, asmRet), ibtOnQ, true},
		{"notrack-rex", []byte{0x3e, 0x48, 0xff, 0xd0}, cat(asmNop, asmRet), Quirks{IBT: true, IBTNoTrack: true}, false},
		// Direct CALL and JMP are never tracked.
		{"direct-call-nop", []byte{0xe8, 0x34, 0x00, 0x00, 0x00}, cat(asmNop, asmRet), ibtOnQ, false},
		{"direct-jmp-nop", []byte{0xe9, 0x34, 0x00, 0x00, 0x00}, cat(asmNop, asmSelf), ibtOnQ, false},
		// IBT off (the default): nothing is tracked.
		{"off-call-nop", asmCallRAX, cat(asmNop, asmRet), Quirks{}, false},
	} {
		for _, v := range []struct {
			fast bool
			pre  []byte
		}{{false, nil}, {true, nil}, {true, warmCall}} {
			fast := v.fast
			if v.pre != nil && !bytes.HasSuffix(tc.target, asmRet) {
				continue // only a target that returns can be called first
			}
			if v.pre != nil && tc.branch[0] == 0xe8 {
				continue // the direct call's displacement assumes no prefix
			}
			code := ibtCodeWarm(v.pre, tc.branch, tc.target)
			name := tc.name
			if fast {
				name += "/fast"
			}
			if v.pre != nil {
				name += "/warm"
			}
			t.Run(name, func(t *testing.T) {
				m, tr := ibtRun(t, code, tc.q, 40, fast)
				c := m.cpus[0]
				if !tc.cp {
					if len(tr) != 0 {
						t.Fatalf("traps %+v, want none", tr)
					}
					if c.ibtWait {
						t.Fatal("the tracker still waits")
					}
					// It ran the target: back at the jmp . after a call's
					// RET, or at the target's own jmp .
					if want := testText + uint64(len(v.pre)+7+len(tc.branch)); c.RIP != want && c.RIP != ibtTarget+uint64(len(tc.target))-2 {
						t.Fatalf("RIP %#x, want %#x or the target's jmp .", c.RIP, want)
					}
					return
				}
				if len(tr) != 1 || tr[0].Vector != VecCP {
					t.Fatalf("traps %+v, want one #CP", tr)
				}
				if !fast && (tr[0].RIP != ibtTarget || tr[0].ErrCode != CPEndbranch) {
					t.Fatalf("#CP at %#x error code %d, want at the target %#x, error code 3 (ENDBRANCH)", tr[0].RIP, tr[0].ErrCode, ibtTarget)
				}
				// The frame: error code, then the saved RIP, the target
				// (a fault: the instruction did not run).
				sp := c.R[RSP]
				if e, rip := peek64(m, sp), peek64(m, sp+8); e != CPEndbranch || rip != ibtTarget {
					t.Fatalf("#CP frame: error code %d, RIP %#x; want 3, %#x", e, rip, ibtTarget)
				}
				if c.RIP != testHandler+4 || c.ibtWait {
					t.Fatalf("RIP %#x (wait %v), want spinning in the #CP handler after its ENDBR64", c.RIP, c.ibtWait)
				}
			})
		}
	}
}

// TestIBTInt3AtTarget: an int3 written over a target's ENDBR64 (a kprobe
// on sym+0) gives #CP, not #BP: the missing ENDBRANCH ranks with the
// faults of fetching the instruction (SDM Vol. 3 Table 6-2, priority 7),
// before anything executing it raises.
func TestIBTInt3AtTarget(t *testing.T) {
	for _, fast := range []bool{false, true} {
		code := ibtCode(asmCallRAX, cat(asmInt3, asmEndbr64[1:], asmRet))
		_, tr := ibtRun(t, code, ibtOnQ, 40, fast)
		if len(tr) != 1 || tr[0].Vector != VecCP {
			t.Fatalf("fast %v: traps %+v, want one #CP and no #BP", fast, tr)
		}
		// A direct call to the same int3 is a #BP.
		code = ibtCode([]byte{0xe8, 0x34, 0x00, 0x00, 0x00}, cat(asmInt3, asmEndbr64[1:], asmRet))
		_, tr = ibtRun(t, code, ibtOnQ, 40, fast)
		if len(tr) != 1 || tr[0].Vector != VecBP {
			t.Fatalf("fast %v: direct call: traps %+v, want one #BP", fast, tr)
		}
	}
}

// TestIBTDelivery: delivery through the vector table is tracked like an
// indirect branch (the handler must begin with ENDBR64, as Linux's IDT
// entries do), and an unhandled #CP is an oops.
func TestIBTDelivery(t *testing.T) {
	// An NMI handler without ENDBR64: #CP at its first instruction.
	img := testImage(t, cat(asmNop, asmNop, asmSelf),
		testGate{v: VecCP, code: cat(asmEndbr64, asmSelf)}, testGate{v: VecNMI, code: cat(asmNop, asmIretq)})
	m, rec := newTestMachine(t, img, ibtOnQ)
	c := m.cpus[0]
	c.R[RSP] = testData + 0x800
	step(m)
	m.raise(c, VecNMI, nil)
	for i := 0; i < 6; i++ {
		step(m)
	}
	tr := rec.kinds(EvTrap)
	if len(tr) != 2 || tr[0].Vector != VecNMI || tr[1].Vector != VecCP || tr[1].RIP != testHandler+0x100 {
		t.Fatalf("traps %+v, want the NMI, then #CP at its handler %#x", tr, testHandler+0x100)
	}
	// Without a #CP gate the missing ENDBR64 is an oops naming #CP.
	img = testImage(t, ibtCode(asmCallRAX, cat(asmNop, asmRet)))
	m, rec = newTestMachine(t, img, ibtOnQ)
	m.cpus[0].R[RSP] = testData + 0x800
	for i := 0; i < 6 && m.stop == StopNone; i++ {
		step(m)
	}
	f := rec.kinds(EvFault)
	if m.stop != StopOops || len(f) != 1 || f[0].Vector != VecCP || f[0].ErrCode != CPEndbranch || f[0].RIP != ibtTarget {
		t.Fatalf("stop %v, faults %+v: want an oops for #CP(3) at %#x", m.stop, f, ibtTarget)
	}
}

// TestIBTEventBeforeCP: an NMI pending at the boundary after the branch
// is delivered first (priority 5, before the fetch faults' 7); its
// handler's ENDBR64 ends the wait and the IRETQ does not restore it (the
// legacy IDT frame has no place for the tracker), so the target then runs
// without #CP.
func TestIBTEventBeforeCP(t *testing.T) {
	code := ibtCode(asmCallRAX, cat(asmNop, asmRet))
	img := testImage(t, code, ibtGates()...)
	m, rec := newTestMachine(t, img, ibtOnQ)
	c := m.cpus[0]
	c.R[RSP] = testData + 0x800
	step(m) // mov
	step(m) // call *%rax
	if !c.ibtWait || c.RIP != ibtTarget {
		t.Fatalf("after the call: RIP %#x, wait %v", c.RIP, c.ibtWait)
	}
	m.raise(c, VecNMI, nil)
	for i := 0; i < 8; i++ {
		step(m)
	}
	tr := rec.kinds(EvTrap)
	if len(tr) != 1 || tr[0].Vector != VecNMI || tr[0].RIP != ibtTarget {
		t.Fatalf("traps %+v, want only the NMI, at the target", tr)
	}
}

// TestIBTWarmJmp: an indirect JMP to a target already decoded (no sink):
// the JMP itself runs for the first time, so the general step judges the
// target; TestIBTFastJmpNoStore covers the same branch inside a run of
// common steps, where only ibtBranch's end of the run gets it judged.
func TestIBTWarmJmp(t *testing.T) {
	ret := testText + uint64(len(warmCall)+7+5+2) // the jmp . after the branch
	push := []byte{0x68, 0, 0, 0, 0}              // push $ret
	binary.LittleEndian.PutUint32(push[1:], uint32(ret))
	for _, tc := range []struct {
		target []byte
		cp     bool
	}{{cat(asmEndbr64, asmRet), false}, {cat(asmNop, asmRet), true}} {
		m, tr := ibtRun(t, ibtCodeWarm(warmCall, cat(push, asmJmpRAX), tc.target), ibtOnQ, 40, true)
		if tc.cp != (len(tr) == 1 && tr[0].Vector == VecCP) || !tc.cp && (len(tr) != 0 || m.cpus[0].RIP != ret) {
			t.Fatalf("target % x: traps %+v, RIP %#x; want #CP %v", tc.target, tr, m.cpus[0].RIP, tc.cp)
		}
	}
}

// TestIBTFetchFaultFirst: a target the CPU cannot fetch raises the #PF of
// fetching it, not #CP: the machine must read the bytes to see whether
// they are ENDBR64 (both rank with the fetch faults, SDM Vol. 3 Table
// 6-2, and the #PF is the one that leaves nothing to look at).
func TestIBTFetchFaultFirst(t *testing.T) {
	const unmapped = testText + 0x8000
	code := cat(movRAX(unmapped), asmJmpRAX, asmSelf)
	img := testImage(t, code, append(ibtGates(), testGate{v: VecPF, code: cat(asmEndbr64, asmSelf)})...)
	m, rec := newTestMachine(t, img, ibtOnQ)
	m.cpus[0].R[RSP] = testData + 0x800
	for i := 0; i < 6; i++ {
		step(m)
	}
	tr := rec.kinds(EvTrap)
	if len(tr) != 1 || tr[0].Vector != VecPF || tr[0].RIP != unmapped || tr[0].Addr != unmapped {
		t.Fatalf("traps %+v, want one #PF fetching %#x", tr, unmapped)
	}
	if c := m.cpus[0]; c.RIP != testHandler+0x300+4 {
		t.Fatalf("RIP %#x, want past the #PF handler's ENDBR64", c.RIP)
	}
}

// TestIBTFastJmpNoStore: an indirect JMP that runs inside a run of common
// steps (itself decoded by an earlier pass, no sink), with no store or
// exit before it in the run, to a target already decoded: only the run's
// end at the branch (ibtBranch's brk) sends the target to the general
// step that judges it. The JMP first lands on an ENDBR64 (decoding it and
// passing the check there), whose code points RAX at a NOP that a direct
// call decoded at the start and jumps back to the JMP; that second pass
// runs in a common run and must raise #CP at the NOP.
func TestIBTFastJmpNoStore(t *testing.T) {
	const landing = testText + 0x20
	code := cat(warmCall, movRAX(landing), asmJmpRAX, asmSelf) // 0x00 call ibtTarget; 0x05 mov; 0x0c jmp *%rax; 0x0e jmp .
	code = append(code, make([]byte, landing-testText-uint64(len(code)))...)
	back := []byte{0xeb, 0xdf} // at landing+0x0b: jmp back to the JMP at 0x0c (-0x21)
	code = cat(code, asmEndbr64, movRAX(ibtTarget), back)
	code = append(code, make([]byte, ibtTarget-testText-uint64(len(code)))...)
	code = cat(code, asmNop, asmRet)
	m, tr := ibtRun(t, code, ibtOnQ, 40, true)
	c := m.cpus[0]
	if len(tr) != 1 || tr[0].Vector != VecCP {
		t.Fatalf("traps %+v (RIP %#x), want one #CP at the NOP the second pass of the JMP reaches", tr, c.RIP)
	}
	if sp := c.R[RSP]; peek64(m, sp) != CPEndbranch || peek64(m, sp+8) != ibtTarget {
		t.Fatalf("#CP frame: error code %d, RIP %#x; want 3, %#x", peek64(m, sp), peek64(m, sp+8), ibtTarget)
	}
	if c.RIP != testHandler+4 || c.ibtWait {
		t.Fatalf("RIP %#x (wait %v), want spinning in the #CP handler after its ENDBR64", c.RIP, c.ibtWait)
	}
}

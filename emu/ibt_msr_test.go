package emu

import (
	"encoding/binary"
	"strings"
	"testing"
)

// Tests of IA32_S_CET (ibt.go): RDMSR and WRMSR switch supervisor IBT
// off and on per CPU (SDM Vol. 4 Table 2-2, Vol. 2 RDMSR/WRMSR, Vol. 1
// CET), as Linux's ibt_save()/ibt_restore() do around boot-time patching.

var (
	asmMovECXSCET = []byte{0xb9, 0xa2, 0x06, 0x00, 0x00} // mov $0x6a2, %ecx
	asmRdmsr      = []byte{0x0f, 0x32}
	asmWrmsr      = []byte{0x0f, 0x30}
	asmIBTOff     = cat(asmMovECXSCET, asmRdmsr, []byte{0x83, 0xe0, 0xfb}, asmWrmsr) // and $~ENDBR_EN, %eax
	asmIBTOn      = cat(asmMovECXSCET, asmRdmsr, []byte{0x83, 0xc8, 0x04}, asmWrmsr) // or $ENDBR_EN, %eax
)

// wrSCET is mov $v, %eax; xor %edx, %edx; mov $0x6a2, %ecx; wrmsr.
func wrSCET(v uint32) []byte {
	b := []byte{0xb8, 0, 0, 0, 0, 0x31, 0xd2}
	binary.LittleEndian.PutUint32(b[1:], v)
	return cat(b, asmMovECXSCET, asmWrmsr)
}

var gpGate = testGate{v: VecGP, code: cat(asmEndbr64, asmSelf)}

func trapVectors(tr []Event) []Vector {
	var v []Vector
	for _, e := range tr {
		v = append(v, e.Vector)
	}
	return v
}

// TestIBTMSRSwitch: clearing ENDBR_EN stops the tracking (an indirect
// call to a target without ENDBR64 runs), setting it again resumes it
// (the same call is #CP), and RDMSR reads what was written.
func TestIBTMSRSwitch(t *testing.T) {
	target := cat(asmNop, asmRet)
	for _, fast := range []bool{false, true} {
		// Off, then the call: no #CP.
		code := ibtCodeWarm(asmIBTOff, asmCallRAX, target)
		m, tr := ibtRun(t, code, ibtOnQ, 40, fast)
		if len(tr) != 0 {
			t.Fatalf("fast %v: IBT off: traps %v, want none", fast, trapVectors(tr))
		}
		c := m.cpus[0]
		if c.ibt != 0 || c.ibtWait || c.sCET != 0 {
			t.Fatalf("fast %v: IBT off: ibt %d wait %v IA32_S_CET %#x, want all clear", fast, c.ibt, c.ibtWait, c.sCET)
		}
		// Off, a call (runs), on again, the same call: #CP at the target.
		pre := cat(asmIBTOff, movRAX(ibtTarget), asmCallRAX, asmIBTOn)
		code = ibtCodeWarm(pre, asmCallRAX, target)
		_, tr = ibtRun(t, code, ibtOnQ, 60, fast)
		if len(tr) != 1 || tr[0].Vector != VecCP {
			t.Fatalf("fast %v: IBT on again: traps %v, want one #CP", fast, trapVectors(tr))
		}
		if !fast && tr[0].RIP != ibtTarget {
			t.Fatalf("#CP at %#x, want the target %#x", tr[0].RIP, ibtTarget)
		}
	}
}

// TestIBTMSRTracker: the tracker is IA32_S_CET.TRACKER. With ENDBR_EN
// clear an indirect branch does not move it (RDMSR reads 0 after one) and
// a delivery does not either (a handler without ENDBR64 runs); a WRMSR
// of TRACKER = 1 with ENDBR_EN makes the next instruction need ENDBR64;
// with ENDBR_EN clear TRACKER is only stored.
func TestIBTMSRTracker(t *testing.T) {
	// Off, an indirect call to a NOP, RDMSR: EAX = 0 (TRACKER IDLE).
	code := cat(asmIBTOff, movRAX(ibtTarget), asmCallRAX, asmRdmsr, asmSelf)
	code = append(code, make([]byte, 0x40-len(code))...)
	code = append(code, cat(asmNop, asmRet)...)
	m, tr := ibtRun(t, code, ibtOnQ, 40, false)
	if c := m.cpus[0]; len(tr) != 0 || c.R[RAX] != 0 || c.R[RDX] != 0 {
		t.Fatalf("traps %v, EDX:EAX %#x:%#x; want none, 0:0", trapVectors(tr), c.R[RDX], c.R[RAX])
	}
	// Off, int3 to a #BP handler without ENDBR64: no #CP.
	bp := testGate{v: VecBP, code: cat(asmNop, asmSelf)}
	m, tr = ibtRun(t, cat(asmIBTOff, asmInt3, asmSelf), ibtOnQ, 20, false, bp)
	if v := trapVectors(tr); len(v) != 1 || v[0] != VecBP {
		t.Fatalf("IBT off, int3: traps %v, want one #BP", v)
	}
	// The same with IBT on: #CP at the handler.
	_, tr = ibtRun(t, cat(asmInt3, asmSelf), ibtOnQ, 20, false, bp)
	if v := trapVectors(tr); len(v) != 2 || v[1] != VecCP {
		t.Fatalf("IBT on, int3: traps %v, want #BP then #CP", v)
	}
	for _, tc := range []struct {
		name string
		v    uint32
		next []byte
		cp   bool
		read uint64
	}{
		{"tracker-wait-nop", sCETEndbrEn | sCETTracker, asmNop, true, 0},
		{"tracker-wait-endbr64", sCETEndbrEn | sCETTracker, asmEndbr64, false, sCETEndbrEn},
		{"tracker-stored-off", sCETTracker, asmNop, false, sCETTracker},
		{"notrack", sCETEndbrEn | sCETNoTrackEn, asmNop, false, sCETEndbrEn | sCETNoTrackEn},
	} {
		for _, fast := range []bool{false, true} {
			code := cat(wrSCET(tc.v), tc.next, asmRdmsr, asmSelf)
			m, tr := ibtRun(t, code, ibtOnQ, 20, fast)
			v := trapVectors(tr)
			if tc.cp {
				if len(v) != 1 || v[0] != VecCP {
					t.Fatalf("%s fast %v: traps %v, want one #CP", tc.name, fast, v)
				}
				if !fast && tr[0].RIP != testText+uint64(len(wrSCET(0))) {
					t.Fatalf("%s: #CP at %#x, want the instruction after the WRMSR", tc.name, tr[0].RIP)
				}
				continue
			}
			c := m.cpus[0]
			if len(v) != 0 || c.R[RAX] != tc.read {
				t.Fatalf("%s fast %v: traps %v, RDMSR %#x; want none, %#x", tc.name, fast, v, c.R[RAX], tc.read)
			}
		}
	}
}

// TestIBTMSRFaults: WRMSR's #GP(0) cases, the bits the machine does not
// model and the MSRs it does not have stop the run, and without
// Quirks.IBT RDMSR and WRMSR stay unimplemented.
func TestIBTMSRFaults(t *testing.T) {
	for _, v := range []uint32{1 << 6, 1 << 9, sCETShStkEn, sCETWrShStkEn | sCETEndbrEn, sCETSuppress | sCETTracker | sCETEndbrEn} {
		m, tr := ibtRun(t, cat(wrSCET(v), asmSelf), ibtOnQ, 20, false, gpGate)
		if got := trapVectors(tr); len(got) != 1 || got[0] != VecGP {
			t.Fatalf("WRMSR %#x: traps %v, want #GP", v, got)
		}
		if c := m.cpus[0]; c.sCET != sCETEndbrEn || c.ibt != ibtOn {
			t.Fatalf("WRMSR %#x: IA32_S_CET %#x, want unchanged", v, c.sCET)
		}
	}
	for _, tc := range []struct {
		name string
		code []byte
		q    Quirks
		why  string
	}{
		{"leg-iw", wrSCET(sCETEndbrEn | sCETLegIwEn), ibtOnQ, "not modelled"},
		{"suppress", wrSCET(sCETEndbrEn | sCETSuppress), ibtOnQ, "not modelled"},
		{"bitmap", wrSCET(sCETEndbrEn | 0x1000), ibtOnQ, "not modelled"},
		{"other-msr", []byte{0xb9, 0xa0, 0x06, 0x00, 0x00, 0x0f, 0x32}, ibtOnQ, "only MSR IA32_S_CET"},
		{"no-ibt-rdmsr", cat(asmMovECXSCET, asmRdmsr), Quirks{}, "not implemented"},
		{"no-ibt-wrmsr", wrSCET(0), Quirks{}, "not implemented"},
	} {
		m, _ := ibtRun(t, cat(tc.code, asmSelf), tc.q, 20, false)
		if r, msg := m.Stopped(); r == StopNone || !strings.Contains(msg, tc.why) {
			t.Fatalf("%s: stopped %v %q, want a stop saying %q", tc.name, r, msg, tc.why)
		}
	}
}

// TestIBTMSRPerCPU: IA32_S_CET is per CPU, and CPUID says CET_IBT only
// with Quirks.IBT.
func TestIBTMSRPerCPU(t *testing.T) {
	img := testImage(t, cat(asmIBTOff, asmSelf))
	m, err := New(img, Config{CPUs: 2, Quirks: ibtOnQ})
	if err != nil {
		t.Fatal(err)
	}
	m.runCPU(m.cpus[0], 10)
	if c0, c1 := m.cpus[0], m.cpus[1]; c0.ibt != 0 || c1.ibt != ibtOn || c1.sCET != sCETEndbrEn {
		t.Fatalf("CPU 0 ibt %d, CPU 1 ibt %d IA32_S_CET %#x: want 0, on, ENDBR_EN", c0.ibt, c1.ibt, c1.sCET)
	}
	for _, q := range []Quirks{{}, ibtOnQ} {
		m, err := New(img, Config{CPUs: 1, Quirks: q})
		if err != nil {
			t.Fatal(err)
		}
		c := m.cpus[0]
		c.R[RAX], c.R[RCX] = 7, 0
		c.cpuid()
		if got := c.R[RDX]>>20&1 == 1; got != q.IBT {
			t.Fatalf("quirks %+v: CPUID.7.0:EDX[20] %v, want %v", q, got, q.IBT)
		}
	}
}

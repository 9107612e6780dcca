package emu

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/internal/slice"
)

// Hand-assembled snippets (bytes checked against GNU as).
var (
	asmNop   = []byte{0x90}
	asmSti   = []byte{0xfb}
	asmCli   = []byte{0xfa}
	asmHlt   = []byte{0xf4}
	asmInt3  = []byte{0xcc}
	asmIretq = []byte{0x48, 0xcf}
	asmSelf  = []byte{0xeb, 0xfe} // jmp .
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const (
	testText    uint64 = 0xffffffff81000000
	testHandler uint64 = 0xffffffff81001000 // one handler page; each vector's handler at testHandler + 0x100*i
	testData    uint64 = 0xffffffff81002000 // rw- page
	testRX      uint64 = 0xffffffff81003000 // r-x data page for store faults
)

// recorder keeps copies of every event.
type recorder struct{ ev []Event }

func (r *recorder) Event(e *Event) { r.ev = append(r.ev, *e) }

func (r *recorder) kinds(k EventKind) []Event {
	var out []Event
	for _, e := range r.ev {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

type testGate struct {
	v    Vector
	typ  GateType
	ist  uint8
	code []byte
}

// testImage builds an in-memory slice: code at testText (symbol pt_start),
// one handler per gate, a rw- data page, an r-x data page and a per-CPU
// section with cpu_tss_ist.
func testImage(t testing.TB, code []byte, gates ...testGate) *Image {
	t.Helper()
	img := &Image{Entry: testText}
	hpage := make([]byte, pageSize)
	for i, g := range gates {
		addr := testHandler + uint64(0x100*i)
		copy(hpage[0x100*i:], g.code)
		img.gates[g.v] = &Gate{Vector: g.v, Type: g.typ, IST: g.ist, Handler: addr}
		img.Symbols = append(img.Symbols, Symbol{Name: "handler_" + strings.TrimPrefix(g.v.Name(), "#"), Addr: addr, Size: 0x100, Section: ".text", Func: true})
	}
	img.Sections = []Section{
		{Name: ".text", Addr: testText, Size: pageSize, Perm: PermRX, Data: append(append([]byte{}, code...), make([]byte, pageSize-len(code))...)},
		{Name: ".text.handlers", Addr: testHandler, Size: pageSize, Perm: PermRX, Data: hpage},
		{Name: ".data", Addr: testData, Size: pageSize, Perm: PermRW},
		{Name: ".rodata.x", Addr: testRX, Size: pageSize, Perm: PermRX},
	}
	img.Symbols = append(img.Symbols,
		Symbol{Name: "pt_start", Addr: testText, Size: uint64(len(code)), Section: ".text", Func: true},
		Symbol{Name: "cpu_tss_ist", Addr: 0, Size: 64, Section: percpuSection, PerCPU: true},
		Symbol{Name: "counter", Addr: 64, Size: 8, Section: percpuSection, PerCPU: true},
	)
	img.percpu = make([]byte, 128)
	img.syms = slice.NewTable(img.Symbols)
	img.Symbols = img.syms.Symbols()
	return img
}

func newTestMachine(t testing.TB, img *Image, q Quirks) (*Machine, *recorder) {
	t.Helper()
	rec := &recorder{}
	m, err := New(img, Config{CPUs: 1, Quirks: q, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	m.cpus[0].booted = true // as if boot code had run STI; TestNMIHeldUntilFirstSTI covers the rule
	return m, rec
}

// step runs exactly one step on cpu 0.
func step(m *Machine) { m.runCPU(m.cpus[0], 1) }

func TestSTIShadowHoldsIRQForOneInstruction(t *testing.T) {
	code := cat(asmSti, asmNop, asmNop, asmSelf)
	img := testImage(t, code, testGate{v: VecTimer, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	m.raise(c, VecTimer, nil) // pending while IF=0
	step(m)                   // sti: IF=1, shadow opens
	if c.RFLAGS&FlagIF == 0 || len(rec.kinds(EvTrap)) != 0 {
		t.Fatalf("after sti: IF=%v traps=%d", c.RFLAGS&FlagIF != 0, len(rec.kinds(EvTrap)))
	}
	step(m) // the shadowed nop runs; the IRQ must still wait
	if got := len(rec.kinds(EvTrap)); got != 0 {
		t.Fatalf("IRQ delivered inside the STI shadow")
	}
	if c.RIP != testText+2 {
		t.Fatalf("RIP=%#x after the shadowed instruction, want %#x", c.RIP, testText+2)
	}
	step(m) // now it is delivered, before the second nop
	traps := rec.kinds(EvTrap)
	if len(traps) != 1 || traps[0].Vector != VecTimer || traps[0].RIP != testText+2 {
		t.Fatalf("want timer delivered at pt_start+2, got %+v", traps)
	}
}

func TestNMIInSTIShadowQuirk(t *testing.T) {
	for _, tc := range []struct {
		quirk   bool
		wantRIP uint64 // where the NMI interrupts
	}{{false, testText + 2}, {true, testText + 1}} {
		name := "blocked"
		if tc.quirk {
			name = "allowed"
		}
		t.Run(name, func(t *testing.T) {
			img := testImage(t, cat(asmSti, asmNop, asmNop, asmSelf), testGate{v: VecNMI, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{NMIInSTIShadow: tc.quirk})
			step(m) // sti
			m.raise(m.cpus[0], VecNMI, nil)
			for i := 0; i < 3; i++ {
				step(m)
			}
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != VecNMI || traps[0].RIP != tc.wantRIP {
				t.Fatalf("want NMI at %#x, got %+v", tc.wantRIP, traps)
			}
		})
	}
}

func TestNMIBlockedUntilIRETQ(t *testing.T) {
	// The NMI handler executes nops then IRETQ; a second NMI raised inside
	// must wait for the IRETQ, whichever handler runs it.
	handler := cat(asmNop, asmNop, asmNop, asmIretq)
	img := testImage(t, cat(asmNop, asmNop, asmNop, asmNop, asmSelf), testGate{v: VecNMI, code: handler})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	m.raise(c, VecNMI, nil)
	step(m) // delivered
	m.raise(c, VecNMI, nil)
	for i := 0; i < 3; i++ {
		step(m) // three nops in the handler
		if n := len(rec.kinds(EvTrap)); n != 1 {
			t.Fatalf("second NMI delivered before IRETQ (step %d)", i)
		}
	}
	step(m) // iretq
	if len(rec.kinds(EvIret)) != 1 {
		t.Fatal("no iret event")
	}
	step(m) // the pending NMI is delivered now
	if n := len(rec.kinds(EvTrap)); n != 2 {
		t.Fatalf("pending NMI not delivered after IRETQ: %d traps", n)
	}
}

func TestGateTypesAndFrame(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    GateType
		wantIF bool
	}{{"interrupt gate clears IF", GateInterrupt, false}, {"trap gate keeps IF", GateTrap, true}} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(asmSti, asmNop, asmInt3, asmSelf), testGate{v: VecBP, typ: tc.typ, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			c.R[RSP] -= 8 // misalign: delivery must align down to 16
			oldRSP := c.R[RSP]
			flagsBefore := c.RFLAGS | FlagIF
			for i := 0; i < 3; i++ {
				step(m)
			}
			traps := rec.kinds(EvTrap)
			if len(traps) != 1 || traps[0].Vector != VecBP {
				t.Fatalf("traps: %+v", traps)
			}
			if got := c.RFLAGS&FlagIF != 0; got != tc.wantIF {
				t.Errorf("IF in handler = %v, want %v", got, tc.wantIF)
			}
			if c.RIP != testHandler {
				t.Errorf("RIP = %#x, want handler", c.RIP)
			}
			want := (oldRSP &^ 15) - 40
			if c.R[RSP] != want || c.R[RSP]%16 != 8 {
				t.Errorf("RSP in handler = %#x, want %#x (16-aligned frame of 5 qwords)", c.R[RSP], want)
			}
			var frame [5]uint64
			for i := range frame {
				var b [8]byte
				m.mem.peek(c.R[RSP]+uint64(8*i), b[:])
				frame[i] = binary.LittleEndian.Uint64(b[:])
			}
			// int3 is a trap: the saved RIP is after the 0xCC.
			wantFrame := [5]uint64{testText + 3, 0x10, flagsBefore, oldRSP, 0x18}
			if frame != wantFrame {
				t.Errorf("frame = %#x, want %#x", frame, wantFrame)
			}
		})
	}
}

func TestISTSwitch(t *testing.T) {
	img := testImage(t, cat(asmNop, asmSelf), testGate{v: VecNMI, ist: 1, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	istTop := testData + 0x800
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], istTop)
	m.mem.poke(c.GSBase+8, b[:]) // cpu_tss_ist[1]
	m.raise(c, VecNMI, nil)
	step(m)
	if c.R[RSP] != istTop-40 {
		t.Fatalf("RSP = %#x, want IST top %#x - 40", c.R[RSP], istTop)
	}
	if tr := rec.kinds(EvTrap); len(tr) != 1 || tr[0].IST != 1 {
		t.Fatalf("trap event %+v, want IST 1", tr)
	}
}

func TestStoreToExecutablePageFaults(t *testing.T) {
	// mov %rax, (%rbx) with RBX in an r-x page.
	img := testImage(t, cat([]byte{0x48, 0x89, 0x03}, asmSelf), testGate{v: VecPF, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	c.R[RBX] = testRX + 0x10
	c.R[RAX] = 0x1122
	step(m)
	traps := rec.kinds(EvTrap)
	if len(traps) != 1 || traps[0].Vector != VecPF {
		t.Fatalf("want #PF, got %+v", traps)
	}
	if traps[0].ErrCode != 3 || traps[0].Addr != testRX+0x10 || traps[0].RIP != testText {
		t.Errorf("#PF errcode %d addr %#x rip %#x; want 3 (present, write), %#x, the mov", traps[0].ErrCode, traps[0].Addr, traps[0].RIP, testRX+0x10)
	}
	if len(rec.kinds(EvWrite)) != 6 { // only the frame pushes: SS RSP RFLAGS CS RIP error code
		t.Errorf("writes: %+v", rec.kinds(EvWrite))
	}
	var b [8]byte
	m.mem.peek(testRX+0x10, b[:])
	if binary.LittleEndian.Uint64(b[:]) != 0 {
		t.Error("the faulting store changed memory")
	}
}

func TestUnhandledExceptionIsOops(t *testing.T) {
	img := testImage(t, cat(asmInt3, asmSelf)) // no #BP entry
	m, rec := newTestMachine(t, img, Quirks{})
	res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 5}}})
	if res.Stop != StopOops || !strings.Contains(res.Msg, "no handler for #BP") || !strings.Contains(res.Msg, "pt_start+0x1") {
		t.Fatalf("stop %v %q", res.Stop, res.Msg)
	}
	if f := rec.kinds(EvFault); len(f) != 1 || f[0].Vector != VecBP {
		t.Fatalf("fault events %+v", f)
	}
}

func TestHaltWakesOnInterrupt(t *testing.T) {
	img := testImage(t, cat(asmSti, asmHlt, asmSelf), testGate{v: VecCallFunction, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	step(m)
	step(m)
	if !c.halted || c.runnable() {
		t.Fatal("not halted after hlt")
	}
	m.raise(c, VecCallFunction, nil)
	if !c.runnable() {
		t.Fatal("halted CPU with a pending IPI and IF=1 is not runnable")
	}
	step(m)
	if tr := rec.kinds(EvTrap); len(tr) != 1 || tr[0].RIP != testText+2 {
		t.Fatalf("IPI not delivered after HLT: %+v", tr)
	}
	_ = asmCli
}

func TestUnsupportedInstructionError(t *testing.T) {
	// xgetbv (0f 01 d0) is outside the machine's instruction set.
	img := testImage(t, cat(asmNop, []byte{0x0f, 0x01, 0xd0}, asmSelf))
	m, _ := newTestMachine(t, img, Quirks{})
	res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 5}}})
	var e *Error
	if res.Stop != StopUnsupported || !errors.As(res.Err, &e) {
		t.Fatalf("stop %v err %v", res.Stop, res.Err)
	}
	msg := res.Err.Error()
	for _, want := range []string{"0f 01 d0", "pt_start+0x1", "0xffffffff81000001", "cpu0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
}

func TestNMIHeldUntilFirstSTI(t *testing.T) {
	img := testImage(t, cat(asmNop, asmSti, asmNop, asmNop, asmSelf), testGate{v: VecNMI, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	m.cpus[0].booted = false
	m.raise(m.cpus[0], VecNMI, nil)
	step(m) // nop: the NMI waits, boot has not enabled interrupts yet
	step(m) // sti
	if n := len(rec.kinds(EvTrap)); n != 0 {
		t.Fatalf("NMI delivered before the first STI")
	}
	step(m) // shadowed nop
	step(m) // NMI
	if tr := rec.kinds(EvTrap); len(tr) != 1 || tr[0].Vector != VecNMI || tr[0].RIP != testText+3 {
		t.Fatalf("want the NMI after the STI shadow, got %+v", tr)
	}
}

// TestSTIShadowSurvivesInjectionAtShadowedInstruction: an NMI raised by an
// injection rule at the instruction after STI (the rule looks at the
// boundary again before the instruction runs) must still wait for the
// shadowed instruction when NMIs are blocked in the shadow.
func TestSTIShadowSurvivesInjectionAtShadowedInstruction(t *testing.T) {
	for _, tc := range []struct {
		quirk   bool
		wantRIP uint64
	}{{false, testText + 2}, {true, testText + 1}} {
		img := testImage(t, cat(asmSti, asmNop, asmNop, asmSelf), testGate{v: VecNMI, code: asmSelf})
		rec := &recorder{}
		m, err := New(img, Config{CPUs: 1, Quirks: Quirks{NMIInSTIShadow: tc.quirk}, Sink: rec,
			Inject: []InjectRule{{Vector: VecNMI, CPU: 0, At: "pt_start+1", Hit: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			step(m)
		}
		traps := rec.kinds(EvTrap)
		if len(traps) != 1 || traps[0].RIP != tc.wantRIP {
			t.Fatalf("quirk %v: want the NMI at %#x, got %+v", tc.quirk, tc.wantRIP, traps)
		}
	}
}

// TestInjectEveryArrivalDoesNotLivelock: a rule with hit = 0 fires on each
// arrival, but the handler's return to the watched instruction is not an
// arrival (it would fire forever).
func TestInjectEveryArrivalDoesNotLivelock(t *testing.T) {
	// pt_start: nop; jmp pt_start  — the nop is watched.
	img := testImage(t, cat(asmNop, []byte{0xeb, 0xfd}), testGate{v: VecNMI, code: asmIretq})
	rec := &recorder{}
	m, err := New(img, Config{CPUs: 1, Sink: rec, Inject: []InjectRule{{Vector: VecNMI, CPU: 0, At: "pt_start", Hit: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	m.cpus[0].booted = true
	for i := 0; i < 30; i++ {
		step(m)
	}
	nmis := len(rec.kinds(EvTrap))
	loops := len(rec.kinds(EvInsn)) // nops, jmps and iretqs
	if nmis < 5 || nmis > loops/3+1 {
		t.Fatalf("%d NMIs over %d instructions: want one per pass through the loop", nmis, loops)
	}
}

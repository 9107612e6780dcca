package emu

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// newQuietMachine is a one-CPU machine with no sink, so the step loop runs
// its common steps through fastSteps; the rw- data page is made rwx so
// that plain stores can rewrite code there.
func newQuietMachine(t *testing.T, code []byte, q Quirks) (*Machine, *CPU) {
	t.Helper()
	img := testImage(t, asmSelf)
	for i := range img.Sections {
		if s := &img.Sections[i]; s.Addr == testData {
			s.Perm = PermRWX
			s.Data = append(append([]byte{}, code...), make([]byte, pageSize-len(code))...)
		}
	}
	m, err := New(img, Config{CPUs: 1, Quirks: q})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0]
	c.booted = true
	return m, c
}

// runFrom runs n steps of cpu 0 from rip with BL = bl and returns EAX.
func runFrom(t *testing.T, m *Machine, rip uint64, bl byte, n int) uint32 {
	t.Helper()
	c := m.cpus[0]
	c.RIP = rip
	c.R[RBX] = uint64(bl)
	m.runCPU(c, n)
	if m.stop != StopNone {
		t.Fatalf("stopped: %v %s", m.stop, m.stopMsg)
	}
	return uint32(c.R[RAX])
}

// TestFastStepsSeeStoreToNextInstruction: a store into the next
// instruction's bytes, both already decoded, is seen by that instruction in
// the coherent model (SDM Vol. 3 §8.1.3) also when the step loop runs them
// as one run of common steps, which must stop validating nothing after a
// store to a decoded frame; in the stale model the old decode runs until
// the CPU serializes.
func TestFastStepsSeeStoreToNextInstruction(t *testing.T) {
	// mov %bl, 1(%rip): the imm32's low byte of the mov that follows.
	code := cat([]byte{0x88, 0x1d, 0x01, 0, 0, 0}, asmMovEAX(0), asmSelf)
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			m, c := newQuietMachine(t, code, fm.q)
			if got := runFrom(t, m, testData, 5, 2); got != 5 {
				t.Fatalf("first pass: eax = %d, want 5", got)
			}
			got := runFrom(t, m, testData, 7, 2)
			want := uint32(7)
			if fm.q.StaleFetch {
				want = 5
			}
			if got != want {
				t.Errorf("second pass: eax = %d, want %d", got, want)
			}
			c.serialize(SerCPUID)
			if got := runFrom(t, m, testData, 9, 2); got != 9 {
				t.Errorf("after serializing: eax = %d, want 9", got)
			}
		})
	}
}

// TestFastStepsSeeStoreToTailPage: as above for an instruction whose last
// bytes are on the next page, rewritten by a store to that page only (a
// frame no CPU has decoded a page of).
func TestFastStepsSeeStoreToTailPage(t *testing.T) {
	// At the end of the page: mov %bl, 4(%rip), then mov $imm32, %eax
	// with its imm32's two top bytes the first two of the next page
	// (testRX made rwx); the store hits the top byte.
	code := make([]byte, pageSize)
	at := pageSize - 9
	copy(code[at:], []byte{0x88, 0x1d, 0x04, 0, 0, 0})
	copy(code[at+6:], asmMovEAX(0)[:3])
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			m, c := newQuietMachine(t, code, fm.q)
			m.setMemory(c, SvcSetMemoryRW, testRX, 1)
			m.setMemory(c, SvcSetMemoryX, testRX, 1)
			m.mem.poke(testRX, []byte{0, 0, 0xeb, 0xfe})
			start := testData + uint64(at)
			if got := runFrom(t, m, start, 5, 2); got != 5<<24 {
				t.Fatalf("first pass: eax = %#x, want %#x", got, 5<<24)
			}
			got := runFrom(t, m, start, 7, 2)
			want := uint32(7 << 24)
			if fm.q.StaleFetch {
				want = 5 << 24
			}
			if got != want {
				t.Errorf("second pass: eax = %#x, want %#x", got, want)
			}
		})
	}
}

// TestFastStepsSeePopfTF: a POPF that sets TF among common steps makes the
// next instruction single-step (SDM Vol. 3 §17.3.1.4): the #DB is
// delivered after it, as the general step does.
func TestFastStepsSeePopfTF(t *testing.T) {
	// pushf; orw $0x100, (%rsp); popf; nop; nop; jmp .
	code := cat([]byte{0x9c, 0x66, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x9d}, asmNop, asmNop, asmSelf)
	img := testImage(t, code, testGate{v: VecDB, typ: GateInterrupt, code: asmSelf})
	m, err := New(img, Config{CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0]
	c.booted = true
	// The first pass decodes the code (a miss takes the general step);
	// the second runs it from the decode cache.
	for pass := 1; pass <= 2; pass++ {
		c.RIP = testText
		c.R[RSP] = testData + pageSize
		c.RFLAGS &^= FlagTF
		m.runCPU(c, 5) // pushf, or, popf, nop, then the #DB
		if m.stop != StopNone {
			t.Fatalf("pass %d: stopped: %v %s", pass, m.stop, m.stopMsg)
		}
		if c.RIP != testHandler || c.stats.Traps[VecDB] != uint64(pass) {
			t.Errorf("pass %d: rip = %#x, #DB delivered %d times; want the #DB handler at %#x after the first nop", pass, c.RIP, c.stats.Traps[VecDB], testHandler)
		}
	}
}

// TestLazyFlagsMatchEager runs random straight-line code of ALU
// instructions (all eight kinds and TEST, 8-, 32- and 64-bit, register and
// immediate forms) mixed with readers of the flags (Jcc over an
// instruction, SETcc, PUSHF, ADC and SBB) and the cold forms that write
// the flags eagerly and let the run go on (coldGoesOn: INC DEC NOT NEG,
// shifts and rotates, IMUL, MUL, BT*, CMOVcc, BSF BSR, XADD) twice: through the general step
// with a sink, which materializes the flags after every instruction, and
// as one run of common steps without one, where they stay lazy until
// read. Registers and RFLAGS must agree after every program.
func TestLazyFlagsMatchEager(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2))
	for prog := 0; prog < 300; prog++ {
		var code []byte
		n := 0
		for len(code) < 200 {
			r1, r2 := byte(rng.IntN(4)), byte(rng.IntN(4)) // rax..rbx
			switch rng.IntN(8) {
			case 0, 1: // op r/m, r at 64, 32 or 8 bits
				op := byte(rng.IntN(8))<<3 | 1
				switch rng.IntN(3) {
				case 0:
					code = append(code, 0x48, op, 0xc0|r2<<3|r1)
				case 1:
					code = append(code, op, 0xc0|r2<<3|r1)
				default:
					code = append(code, op-1, 0xc0|r2<<3|r1)
				}
			case 2: // op r/m64, imm8 (sign-extended)
				code = append(code, 0x48, 0x83, 0xc0|byte(rng.IntN(8))<<3|r1, byte(rng.IntN(256)))
			case 3: // test r/m64, r64
				code = append(code, 0x48, 0x85, 0xc0|r2<<3|r1)
			case 4: // jcc +4 over add $1, %rsi
				code = append(code, 0x70|byte(rng.IntN(16)), 4, 0x48, 0x83, 0xc6, 0x01)
				n++
			case 5: // setcc %dil (40 0f 9x c7)
				code = append(code, 0x40, 0x0f, 0x90|byte(rng.IntN(16)), 0xc7)
			case 6: // pushf; pop %rbp
				code = append(code, 0x9c, 0x5d)
				n++
			case 7: // a cold form that writes the flags eagerly, run on (coldGoesOn)
				switch rng.IntN(8) {
				case 0: // inc, dec, not, neg r64
					k := byte(rng.IntN(4)) // ff /0 INC, ff /1 DEC, f7 /2 NOT, f7 /3 NEG
					code = append(code, 0x48, []byte{0xff, 0xff, 0xf7, 0xf7}[k], 0xc0|k<<3|r1)
				case 1: // shl shr sar rol ror rcl rcr r64, imm8
					code = append(code, 0x48, 0xc1, 0xc0|byte(rng.IntN(8))<<3|r1, byte(rng.IntN(70)))
				case 2: // imul r64, r/m64
					code = append(code, 0x48, 0x0f, 0xaf, 0xc0|r2<<3|r1)
				case 3: // bt bts btr btc r64, imm8
					code = append(code, 0x48, 0x0f, 0xba, 0xc0|byte(4+rng.IntN(4))<<3|r1, byte(rng.IntN(64)))
				case 4: // cmovcc r64, r/m64
					code = append(code, 0x48, 0x0f, 0x40|byte(rng.IntN(16)), 0xc0|r2<<3|r1)
				case 5: // bsf bsr r64, r/m64
					code = append(code, 0x48, 0x0f, 0xbc|byte(rng.IntN(2)), 0xc0|r2<<3|r1)
				case 6: // xadd r/m64, r64
					code = append(code, 0x48, 0x0f, 0xc1, 0xc0|r2<<3|r1)
				case 7: // mul r/m64 (rdx:rax)
					code = append(code, 0x48, 0xf7, 0xe0|r1)
				}
			}
			n++
		}
		// The Jcc's skipped add is counted as run; stop on the jmp . at
		// the end whatever was taken.
		code = append(code, asmSelf...)
		init := [4]uint64{rng.Uint64(), rng.Uint64(), uint64(rng.IntN(3)), rng.Uint64() & 0xff}
		setup := func(c *CPU) {
			c.R = [16]uint64{}
			copy(c.R[:4], init[:])
			c.R[RSP] = testData + pageSize
			c.RIP = testText
			c.RFLAGS = flagRes1 | FlagIF | rng.Uint64()&FlagsArith
		}
		img := testImage(t, code)
		eager, _ := newTestMachine(t, img, Quirks{})
		quiet, err := New(img, Config{CPUs: 1})
		if err != nil {
			t.Fatal(err)
		}
		ce, cq := eager.cpus[0], quiet.cpus[0]
		cq.booted = true
		setup(cq)
		quiet.runCPU(cq, n+1) // decodes everything (a miss is a general step)
		fl := cq.RFLAGS
		setup(ce)
		ce.RFLAGS = fl
		setup(cq)
		cq.RFLAGS = fl
		eager.runCPU(ce, n+1)
		quiet.runCPU(cq, n+1)
		if eager.stop != StopNone || quiet.stop != StopNone {
			t.Fatalf("program %d stopped: %v %s / %v %s", prog, eager.stop, eager.stopMsg, quiet.stop, quiet.stopMsg)
		}
		if ce.R != cq.R || ce.RFLAGS != cq.RFLAGS || ce.RIP != cq.RIP {
			t.Fatalf("program %d (% x):\neager regs %x flags %#x rip %#x\nlazy  regs %x flags %#x rip %#x", prog, code, ce.R, ce.RFLAGS, ce.RIP, cq.R, cq.RFLAGS, cq.RIP)
		}
	}
}

// TestFastStepsSeePushOverCode: PUSH's fast path leaves a store to a
// decoded frame to write (which tells the step loop): a push over the next
// instruction's bytes is seen by it in the coherent model.
func TestFastStepsSeePushOverCode(t *testing.T) {
	// push %rbx, then the 8 bytes it overwrites: mov $imm32, %eax; jmp .
	code := cat([]byte{0x53}, asmMovEAX(0), asmSelf, []byte{0})
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			m, c := newQuietMachine(t, code, fm.q)
			pass := func(imm byte) uint32 {
				c.RIP = testData
				c.R[RSP] = testData + 9
				c.R[RBX] = binary.LittleEndian.Uint64(cat(asmMovEAX(uint32(imm)), asmSelf, []byte{0}))
				m.runCPU(c, 2)
				if m.stop != StopNone {
					t.Fatalf("stopped: %v %s", m.stop, m.stopMsg)
				}
				return uint32(c.R[RAX])
			}
			if got := pass(5); got != 5 {
				t.Fatalf("first pass: eax = %d, want 5", got)
			}
			want := uint32(7)
			if fm.q.StaleFetch {
				want = 5
			}
			if got := pass(7); got != want {
				t.Errorf("second pass: eax = %d, want %d", got, want)
			}
		})
	}
}

// TestFastStepsStopAtFault: a load that faults in a run of common steps
// ends the run there: the #PF is delivered before anything else runs (the
// handler's first instruction is the step after it), as the general step
// does.
func TestFastStepsStopAtFault(t *testing.T) {
	// nop; mov (%rax), %rbx (unmapped); jmp . -- the #PF handler: inc %rcx; jmp .
	code := cat(asmNop, []byte{0x48, 0x8b, 0x18}, asmSelf)
	img := testImage(t, code, testGate{v: VecPF, typ: GateInterrupt, code: cat([]byte{0x48, 0xff, 0xc1}, asmSelf)})
	m, err := New(img, Config{CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0]
	c.booted = true
	for pass := 1; pass <= 2; pass++ { // the second runs from the decode cache
		c.RIP, c.R[RSP], c.R[RAX], c.R[RCX] = testText, testData+pageSize, 0x1000, 0
		m.runCPU(c, 3) // nop, the faulting mov (#PF delivered), inc
		if m.stop != StopNone {
			t.Fatalf("pass %d: stopped: %v %s", pass, m.stop, m.stopMsg)
		}
		if c.R[RCX] != 1 || c.stats.Traps[VecPF] != uint64(pass) {
			t.Errorf("pass %d: rcx = %d, #PF delivered %d times; want the handler's inc run once after one #PF", pass, c.R[RCX], c.stats.Traps[VecPF])
		}
	}
}

// TestFastStepsSeeIncOverCode: an INC of a byte of the next instruction
// among common steps (a cold form after which the run goes on, coldGoesOn)
// is a store to a decoded frame, which tells the step loop: the next
// instruction is seen changed in the coherent model, as the general step
// sees it, and stale in the stale model.
func TestFastStepsSeeIncOverCode(t *testing.T) {
	// incb 1(%rip): the imm32's low byte of the mov that follows.
	code := cat([]byte{0xfe, 0x05, 0x01, 0, 0, 0}, asmMovEAX(0), asmSelf)
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			m, _ := newQuietMachine(t, code, fm.q)
			if got := runFrom(t, m, testData, 0, 2); got != 1 {
				t.Fatalf("first pass: eax = %d, want 1", got)
			}
			got := runFrom(t, m, testData, 0, 2)
			want := uint32(2)
			if fm.q.StaleFetch {
				want = 1
			}
			if got != want {
				t.Errorf("second pass: eax = %d, want %d", got, want)
			}
		})
	}
}

// TestFastStepsStopAtDivideError: a DIV by zero in a run of common steps
// (a form after which the run otherwise goes on) ends it there: the #DE is
// delivered before anything else runs, as the general step does.
func TestFastStepsStopAtDivideError(t *testing.T) {
	// nop; div %rcx (rcx = 0); inc %rdx; jmp . -- the #DE handler: inc %rsi; jmp .
	code := cat(asmNop, []byte{0x48, 0xf7, 0xf1, 0x48, 0xff, 0xc2}, asmSelf)
	img := testImage(t, code, testGate{v: VecDE, typ: GateInterrupt, code: cat([]byte{0x48, 0xff, 0xc6}, asmSelf)})
	m, err := New(img, Config{CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0]
	c.booted = true
	for pass := 1; pass <= 2; pass++ { // the second runs from the decode cache
		c.RIP, c.R[RSP], c.R[RCX], c.R[RDX], c.R[RSI] = testText, testData+pageSize, 0, 0, 0
		m.runCPU(c, 3) // nop, the div (#DE delivered), the handler's inc
		if m.stop != StopNone {
			t.Fatalf("pass %d: stopped: %v %s", pass, m.stop, m.stopMsg)
		}
		if c.R[RSI] != 1 || c.R[RDX] != 0 || c.stats.Traps[VecDE] != uint64(pass) {
			t.Errorf("pass %d: rsi = %d, rdx = %d, #DE delivered %d times; want the handler's inc run once after one #DE, and not the inc after the div", pass, c.R[RSI], c.R[RDX], c.stats.Traps[VecDE])
		}
	}
}

// TestFastStepsHeldInterrupts: with a timer interrupt pending and IF
// clear, a CPU without a sink runs its instructions as common steps (the
// interrupt is held: CPU.held), and the POPF or STI that sets IF ends the
// run, so the interrupt is delivered where the general step (with a sink)
// delivers it: after the POPF, or after the instruction in STI's shadow.
func TestFastStepsHeldInterrupts(t *testing.T) {
	// nop; nop; push $0x202; popf (IF=1); nop; nop; jmp .  (popf variant)
	// nop; nop; nop; sti; nop; nop; jmp .                  (sti variant)
	// The timer handler: inc %rcx; jmp .
	for _, tc := range []struct {
		name string
		code []byte
		want uint64 // RIP the interrupt frame holds: where it was taken
	}{
		{"popf", cat(asmNop, asmNop, []byte{0x68, 0x02, 0x02, 0, 0, 0x9d}, asmNop, asmNop, asmSelf), testText + 8},
		{"sti", cat(asmNop, asmNop, asmNop, asmSti, asmNop, asmNop, asmSelf), testText + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, tc.code, testGate{v: VecTimer, typ: GateInterrupt, code: cat([]byte{0x48, 0xff, 0xc1}, asmSelf)})
			var got [2][3]uint64
			for i, sink := range []Sink{&recorder{}, nil} {
				m, err := New(img, Config{CPUs: 1, Sink: sink})
				if err != nil {
					t.Fatal(err)
				}
				c := m.cpus[0]
				c.booted = true
				// A first pass with nothing pending decodes the code, so
				// that the passes after it run from the decode cache.
				c.RIP, c.R[RSP], c.RFLAGS = testText, testData+pageSize, flagRes1
				m.runCPU(c, 12)
				for pass := 0; pass < 2; pass++ {
					c.RIP, c.R[RSP], c.R[RCX], c.RFLAGS = testText, testData+pageSize, 0, flagRes1
					m.raise(c, VecTimer, nil)
					m.runCPU(c, 12)
					if m.stop != StopNone {
						t.Fatalf("stopped: %v %s", m.stop, m.stopMsg)
					}
					frameRIP, _ := c.read(c.R[RSP], 8)
					got[i] = [3]uint64{c.R[RCX], frameRIP, c.stats.Traps[VecTimer]}
					if got[i] != [3]uint64{1, tc.want, uint64(pass + 1)} {
						t.Errorf("sink %v, pass %d: rcx %d, frame rip %#x, timer delivered %d times; want the handler run once, taken at %#x", sink != nil, pass, got[i][0], got[i][1], got[i][2], tc.want)
					}
				}
			}
		})
	}
}

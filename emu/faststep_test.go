package emu

import "testing"

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

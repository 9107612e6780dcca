package emu

import (
	"fmt"
	"strings"
	"testing"
)

// asmMovEAX is mov $imm32, %eax (b8 id).
func asmMovEAX(v uint32) []byte {
	return []byte{0xb8, byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// fetchModels are the fetch quirks a test runs under.
var fetchModels = []struct {
	name string
	q    Quirks
}{
	{"coherent", Quirks{}},
	{"stale", Quirks{StaleFetch: true}},
}

// stepAt runs one instruction of cpu 0 at rip and returns EAX.
func stepAt(t *testing.T, m *Machine, rip uint64) uint32 {
	t.Helper()
	c := m.cpus[0]
	c.RIP = rip
	step(m)
	if m.stop != StopNone {
		t.Fatalf("stopped: %v %s", m.stop, m.stopMsg)
	}
	return uint32(c.R[RAX])
}

// TestDecodeCacheSeesStoreWhileNotExecutable: set_memory_nx, a store, then
// set_memory_x changes the bytes of code a CPU has decoded. A coherent CPU
// fetches the new bytes at once; a stale one may keep its old decode until
// it serializes (SDM Vol. 3 §8.1.3), never after.
func TestDecodeCacheSeesStoreWhileNotExecutable(t *testing.T) {
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			img := testImage(t, cat(asmMovEAX(1), asmSelf))
			m, _ := newTestMachine(t, img, fm.q)
			c := m.cpus[0]
			if got := stepAt(t, m, testText); got != 1 {
				t.Fatalf("eax = %d before the change, want 1", got)
			}
			for _, sv := range []ServiceID{SvcSetMemoryNX, SvcSetMemoryRW} {
				m.setMemory(c, sv, testText, 1)
			}
			if !c.write(testText+1, 1, 2) {
				t.Fatal("store to the rw- page faulted")
			}
			for _, sv := range []ServiceID{SvcSetMemoryRO, SvcSetMemoryX} {
				m.setMemory(c, sv, testText, 1)
			}
			got := stepAt(t, m, testText)
			if !fm.q.StaleFetch && got != 2 {
				t.Errorf("coherent: eax = %d after the bytes changed, want 2", got)
			}
			c.serialize(SerCPUID)
			if got := stepAt(t, m, testText); got != 2 {
				t.Errorf("after serializing: eax = %d, want 2 (the decode survived a change of its bytes)", got)
			}
		})
	}
}

// TestDecodeCacheSeesTailPageChange: an instruction whose last bytes are on
// the next page is decoded again when only that page changes.
func TestDecodeCacheSeesTailPageChange(t *testing.T) {
	for _, fm := range fetchModels {
		t.Run(fm.name, func(t *testing.T) {
			// mov $imm32, %eax in the last 3 bytes of the text page: the
			// imm32's top two bytes are the first two of the next page.
			code := make([]byte, pageSize)
			at := uint64(pageSize - 3)
			copy(code[at:], asmMovEAX(0x00000201)[:3])
			img := testImage(t, code)
			m, _ := newTestMachine(t, img, fm.q)
			c := m.cpus[0]
			m.mem.poke(testData, []byte{0x03, 0x04})
			if got := stepAt(t, m, testText+at); got != 0x201 {
				t.Fatalf("eax = %#x before the change, want 0x201", got)
			}
			if !m.textPoke(c, testHandler, testData, 2) {
				t.Fatalf("text_poke failed: %s", m.stopMsg)
			}
			const want = 0x04030201
			got := stepAt(t, m, testText+at)
			if !fm.q.StaleFetch && got != want {
				t.Errorf("coherent: eax = %#x after the tail page changed, want %#x", got, want)
			}
			c.serialize(SerCPUID)
			if got := stepAt(t, m, testText+at); got != want {
				t.Errorf("after serializing: eax = %#x, want %#x", got, want)
			}
		})
	}
}

// TestTextPokeThreePages: a text_poke of at most 8 KiB may touch three
// pages; every byte lands and the alias is gone afterwards.
func TestTextPokeThreePages(t *testing.T) {
	// Three r-x pages: .text, .text.handlers, .data made executable.
	img := testImage(t, asmSelf)
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	m.setMemory(c, SvcSetMemoryX, testData, 1)
	m.setMemory(c, SvcSetMemoryRO, testData, 1)
	// The source: fresh rw- memory.
	src := m.moduleAlloc(c, 2*pageSize)
	for _, n := range []uint64{2 * pageSize, pageSize + 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = byte(i*7 + int(n))
			}
			m.mem.poke(src, buf)
			addr := testText + pageSize - 1 // first byte on page 0, last on page 2
			rec.ev = nil
			if !m.textPoke(c, addr, src, n) {
				t.Fatalf("text_poke of %d bytes at %#x failed: %s", n, addr, m.stopMsg)
			}
			got := make([]byte, n)
			m.mem.peek(addr, got)
			if string(got) != string(buf) {
				t.Error("text_poke did not copy every byte")
			}
			for _, w := range rec.kinds(EvWrite) {
				if !w.Alias || w.Addr < addr || w.Addr+uint64(w.Size) > addr+n || w.AliasAddr-aliasBase != w.Addr-(addr&^pageMask) {
					t.Errorf("write %+v is not an alias store inside the target", w)
					break
				}
			}
			for i := uint64(0); i < 3; i++ {
				if m.mem.page(aliasBase>>pageShift+i) != nil {
					t.Errorf("alias page %d still mapped", i)
				}
			}
		})
	}
	if m.textPoke(c, testText, src, 2*pageSize+1) || !strings.Contains(m.stopMsg, "too large") {
		t.Errorf("text_poke of 8 KiB + 1: stop %v %q, want an oops saying too large", m.stop, m.stopMsg)
	}
}

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

// tornMachine is two CPUs: cpu0 calls a text_poke stub that rewrites the
// imm32 of "site: mov $0x11111111, %eax; jmp site", which cpu1 runs.
func tornMachine(t *testing.T, q Quirks) (*Machine, *recorder, uint64) {
	t.Helper()
	const stub, site = 0x100, 0x200
	code := make([]byte, 0x210)
	copy(code, cat([]byte{0xe8, stub - 5, 0, 0, 0}, asmSelf))         // call stub; jmp .
	copy(code[stub:], []byte{0x0f, 0x0b})                             // ud2: the native stub
	copy(code[site:], cat(asmMovEAX(0x11111111), []byte{0xeb, 0xf9})) // jmp site
	img := testImage(t, code)
	rec := &recorder{}
	m, err := New(img, Config{CPUs: 2, Quirks: q, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	m.natives[testText+stub] = SvcTextPoke
	m.mem.poke(testData, []byte{0x22, 0x22, 0x22, 0x22})
	c0, c1 := m.cpus[0], m.cpus[1]
	c0.R[RDI], c0.R[RSI], c0.R[RDX] = testText+site+1, testData, 4
	c1.RIP = testText + site
	return m, rec, testText + site + 1
}

// TestTornTextPoke: under TornWrites a text_poke stores one byte per step
// and ends its CPU's quantum after each, so another CPU executes the
// instruction half written; without it the bytes change within one step.
func TestTornTextPoke(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    Quirks
		want []uint32 // cpu1's EAX after each round
	}{
		{"torn", Quirks{TornWrites: true}, []uint32{0x11111122, 0x11112222, 0x11222222, 0x22222222, 0x22222222, 0x22222222}},
		{"whole", Quirks{}, []uint32{0x22222222, 0x22222222, 0x22222222, 0x22222222, 0x22222222, 0x22222222}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, rec, target := tornMachine(t, tc.q)
			c0, c1 := m.cpus[0], m.cpus[1]
			var log []Decision
			var got []uint32
			for round := 0; round < 6; round++ {
				// cpu0: a quantum of 10 steps, which a torn text_poke
				// cuts at the call and after each byte; cpu1: the mov
				// and the jmp.
				for _, d := range []Decision{{Kind: DecStep, CPU: 0, N: 10}, {Kind: DecStep, CPU: 1, N: 2}} {
					log = append(log, d)
					m.Run(&LogSource{Log: []Decision{d}})
					m.stop = StopNone
				}
				got = append(got, uint32(c1.R[RAX]))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("cpu1 saw %#x, want %#x", got, tc.want)
			}
			if c0.RIP != testText+5 || c0.R[RAX] != target || c0.poke != nil || m.poker != nil {
				t.Errorf("cpu0 at %#x rax %#x (poke %v): want back after the call with rax %#x", c0.RIP, c0.R[RAX], c0.poke, target)
			}
			var sizes []uint32
			for _, w := range rec.kinds(EvWrite) {
				if w.Alias {
					sizes = append(sizes, w.Size)
				}
			}
			wantSizes := "[1 2 1]" // naturally aligned pieces
			if tc.q.TornWrites {
				wantSizes = "[1 1 1 1]"
			}
			if fmt.Sprint(sizes) != wantSizes {
				t.Errorf("alias stores of sizes %v, want %s", sizes, wantSizes)
			}
			if m.mem.page(aliasBase>>pageShift) != nil {
				t.Error("alias still mapped")
			}
		})
	}
}

// TestTornTextPokeWaits: a second CPU's text_poke waits until the first one's
// is done (text_mutex), then runs.
func TestTornTextPokeWaits(t *testing.T) {
	m, rec, target := tornMachine(t, Quirks{TornWrites: true})
	c0, c1 := m.cpus[0], m.cpus[1]
	// cpu1 pokes the same bytes back to 0x33.
	m.mem.poke(testData+8, []byte{0x33, 0x33, 0x33, 0x33})
	c1.RIP = testText
	c1.R[RDI], c1.R[RSI], c1.R[RDX] = target, testData+8, 4
	run := func(cpu uint16, n uint32) {
		m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: cpu, N: n}}})
		m.stop = StopNone
	}
	run(0, 5) // call, service start, first byte: the quantum is cut
	if !m.QuantumCut() {
		t.Fatal("a torn text_poke byte did not cut the quantum")
	}
	run(1, 5) // call, then spins at the stub
	if c1.RIP != testText+0x100 || c1.poke != nil {
		t.Fatalf("cpu1 at %#x, poking %v: want waiting at the stub", c1.RIP, c1.poke != nil)
	}
	for i := 0; i < 3; i++ {
		run(0, 5) // bytes 2, 3 (each cut) and 4, which returns
	}
	for i := 0; i < 4; i++ {
		run(1, 3) // now its turn: stub and byte 1, bytes 2, 3, then 4 and the jmp
	}
	var b [4]byte
	m.mem.peek(target, b[:])
	if b != [4]byte{0x33, 0x33, 0x33, 0x33} || c0.RIP != testText+5 || c1.RIP != testText+5 {
		t.Errorf("bytes %x, cpu0 at %#x, cpu1 at %#x", b, c0.RIP, c1.RIP)
	}
	if n := len(rec.kinds(EvService)); n != 2 {
		t.Errorf("%d service events, want 2 (waiting is not a call)", n)
	}
}

// TestTornStepsSplit: a quantum of n steps and n one-step quanta, dropping
// the rest once QuantumCut says a text_poke byte ended it, are the same run
// (rerun relies on it to stop at an event).
func TestTornStepsSplit(t *testing.T) {
	spec := loadBuiltin(t, "text-poke-bp")
	spec.Quirks.Fetch = "torn"
	orig, res := runSeed(t, spec, 3)
	cuts := 0
	for _, honour := range []bool{true, false} {
		m, _, err := Setup(spec, Options{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		src := &splitSource{log: res.Decisions, honour: honour}
		rep := m.Run(src)
		same := rep.Stop == res.Stop && rep.Insns == res.Insns && m.StateHash() == orig.StateHash()
		if same != honour {
			t.Errorf("split replay (dropping cut quanta: %v): stop %v/%v insns %d/%d, same state %v", honour, rep.Stop, res.Stop, rep.Insns, res.Insns, m.StateHash() == orig.StateHash())
		}
		if honour {
			cuts = src.cuts
		}
	}
	if cuts == 0 {
		t.Error("no quantum was cut: the run has no torn text_poke")
	}
}

// splitSource replays a log one step at a time, as rerun's stepper does.
type splitSource struct {
	log    []Decision
	i      int
	left   uint32
	begun  bool
	honour bool // drop the rest of a quantum QuantumCut ended
	cuts   int
}

func (s *splitSource) Next(m *Machine) (Decision, bool) {
	if s.begun && m.QuantumCut() && s.left > 0 {
		s.cuts++
		if s.honour {
			s.left = 0
		}
	}
	for s.i < len(s.log) {
		d := s.log[s.i]
		if d.Kind != DecStep {
			s.i++
			return d, true
		}
		if !s.begun {
			s.left, s.begun = d.N, true
		}
		if s.left == 0 {
			s.i++
			s.begun = false
			continue
		}
		s.left--
		return Decision{Kind: DecStep, CPU: d.CPU, N: 1}, true
	}
	return Decision{}, false
}

// TestDecodeMemoKeepsAnnotations: machines share decodes through a memo
// (processMemo), and the same bytes at the same address are a different
// inst where one machine watches the address (an injection rule) and the
// other does not: each gets its own annotation whichever decoded first.
func TestDecodeMemoKeepsAnnotations(t *testing.T) {
	// Code no other test runs, so that the memo holds none of it yet.
	code := cat([]byte{0x48, 0x8d, 0x05, 0x75, 0x19, 0x00, 0x00}, asmSelf) // lea 0x1975(%rip), %rax
	img := testImage(t, code)
	fetchAt := func(watch bool) *inst {
		t.Helper()
		cfg := Config{CPUs: 1}
		if watch {
			cfg.Inject = []InjectRule{{Vector: VecNMI, CPU: 0, At: "pt_start", Hit: 1}}
		}
		m, err := New(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := m.cpus[0]
		c.RIP = testText
		in, ok, err := c.fetch()
		if !ok || err != nil {
			t.Fatalf("fetch: %v %v", ok, err)
		}
		return in
	}
	for _, order := range [][]bool{{false, true, false}, {true, false, true}} {
		var first *inst
		for i, watch := range order {
			in := fetchAt(watch)
			if in.watch != watch || in.special != watch {
				t.Fatalf("order %v, machine %d: watch %v special %v, want %v", order, i, in.watch, in.special, watch)
			}
			switch i {
			case 0:
				first = in
			case 2:
				if in != first {
					t.Errorf("order %v: the third machine decoded again instead of taking the first one's decode from the memo", order)
				}
			}
		}
		// The next order starts on other bytes: a new key.
		code[3]++
		img = testImage(t, code)
	}
}

// TestTextPokeKeepsOtherTLBEntries: text_poke's alias map and unmap shoot
// down the alias page alone: the other CPUs keep the rest of their TLBs
// (their next access to another page is a hit, not a walk of the page
// map), while the alias is gone from every TLB, so an access through it
// after the unmap faults.
func TestTextPokeKeepsOtherTLBEntries(t *testing.T) {
	img := testImage(t, cat(asmNop, asmSelf))
	m, err := New(img, Config{CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	c0, c1 := m.cpus[0], m.cpus[1]
	m.mem.poke(testData, []byte{0x90, 0x90})
	if _, ok := c1.read(testData, 8); !ok {
		t.Fatal("read of the data page faulted")
	}
	if !m.textPoke(c0, testText, testData, 2) {
		t.Fatalf("text_poke failed: %s", m.stopMsg)
	}
	if c1.tlbHit(testData>>pageShift) == nil || c1.tlbGen != m.mem.gen {
		t.Errorf("cpu1's TLB lost the data page's entry (or was marked stale: tlbGen %d, memory %d) though only the alias changed", c1.tlbGen, m.mem.gen)
	}
	for _, c := range m.cpus {
		if c.tlbHit(aliasBase>>pageShift) != nil {
			t.Errorf("cpu%d's TLB still maps the alias after text_poke unmapped it", c.ID)
		}
		if _, ok := c.read(aliasBase, 1); ok {
			t.Errorf("cpu%d read through the alias after text_poke unmapped it", c.ID)
		}
		c.exit = exitNone
	}
}

// TestTLBVictimKeepsRegions: pages of the direct map, the kernel text,
// the text_poke alias and modules at the same offset in their regions
// share a TLB slot; a CPU that alternates between two of them (a per-CPU
// variable and the code using it) finds the other in the slot's victim
// entry, not in the page map, and a shootdown drops both entries.
func TestTLBVictimKeepsRegions(t *testing.T) {
	m, err := New(testImage(t, cat(asmNop, asmSelf)), Config{CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := m.cpus[0]
	off := uint64(4) << pageShift
	a, b := uint64(0xffff888000000000)+off, uint64(0xffffffffa0000000)+off
	m.mem.mapNew(a, 1, PermRW)
	m.mem.mapNew(b, 1, PermRW)
	for i := 0; i < 4; i++ {
		for _, addr := range []uint64{a, b} {
			if _, ok := c.read(addr, 8); !ok {
				t.Fatalf("read %#x faulted", addr)
			}
		}
	}
	// Make the page map unable to answer: only the TLB can.
	pages := m.mem.pages
	m.mem.pages = map[uint64]*page{}
	for _, addr := range []uint64{a, b, a} {
		if _, ok := c.read(addr, 8); !ok {
			t.Errorf("read %#x went to the page map: the slot's other page was not kept", addr)
		}
		c.exit = exitNone
	}
	m.mem.pages = pages
	gen0 := m.mem.gen
	m.mem.unmap(b >> pageShift)
	m.shootdown(b>>pageShift, gen0)
	if _, ok := c.read(b, 8); ok {
		t.Errorf("read %#x after its unmap and shootdown hit a TLB entry", b)
	}
}

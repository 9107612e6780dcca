package emu

import (
	"testing"
)

// TestLoggedResetMatchesFull: a decode page that rechecks only the decodes
// its frame's logged stores overlap (and those running into the next page)
// keeps and drops exactly what comparing every decode does. Random code
// (1- to 10-byte instructions, one running into the next page) is decoded
// whole, then random stores change it: a byte or a word, inside or across
// instructions, often rewriting the value already there, on the page or
// on the next one, from 1 store to past the log's length.
func TestLoggedResetMatchesFull(t *testing.T) {
	forms := [][]byte{
		{0x90},                               // nop
		{0x31, 0xc0},                         // xor %eax,%eax
		{0x48, 0x89, 0xf8},                   // mov %rdi,%rax
		asmMovEAX(0x01020304),                // mov $imm32,%eax
		{0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}, // movabs $imm64,%rax
	}
	rng := NewRand(1)
	for trial := 0; trial < 300; trial++ {
		code := make([]byte, 0, pageSize)
		for len(code) < pageSize-12 {
			code = append(code, forms[rng.Intn(len(forms))]...)
		}
		for len(code) < pageSize-3 {
			code = append(code, 0x90)
		}
		code = append(code, asmMovEAX(0x0a0b0c0d)[:3]...) // its imm32 runs into the next page
		img := testImage(t, code)
		img.Sections[1].Data[0], img.Sections[1].Data[1] = 0x0c, 0x0b
		m, _ := newTestMachine(t, img, Quirks{StaleFetch: true})
		c := m.cpus[0]
		for off := 0; off < len(code); {
			c.RIP = testText + uint64(off)
			in, ok, err := c.fetch()
			if !ok || err != nil {
				t.Fatalf("trial %d: no decode at +%#x: %v", trial, off, err)
			}
			off += int(in.len)
		}
		dp := c.dmap[testText>>pageShift]
		if dp.tail == nil {
			t.Fatalf("trial %d: the last instruction does not run into the next page", trial)
		}
		stores := 1 + rng.Intn(wlogLen+4)
		for i := 0; i < stores; i++ {
			vpn := testText >> pageShift
			if rng.Intn(8) == 0 {
				vpn++ // the next page's first bytes
			}
			p := c.lookup(vpn)
			size := []int{1, 1, 2, 8}[rng.Intn(4)]
			var off uint64
			if vpn == testText>>pageShift {
				off = uint64(rng.Intn(pageSize - size + 1))
			} else {
				off = uint64(rng.Intn(4))
			}
			v := loadLE(p.f.data[off:], size)
			if rng.Intn(2) == 0 {
				v ^= 1 << (8 * uint(rng.Intn(size)))
			}
			c.commitWrite(p, vpn<<pageShift|off, size, v)
		}
		logged, full := *dp, *dp
		logged.reset(c)
		fullReset = true
		full.reset(c)
		fullReset = false
		if logged.live != full.live || logged.insts != full.insts || logged.tail != full.tail || logged.tailGen != full.tailGen || logged.gen != full.gen {
			for o := range pageSize {
				if (logged.insts[o] == nil) != (full.insts[o] == nil) {
					t.Errorf("trial %d (%d stores): decode at +%#x: logged recheck keeps it %v, full %v", trial, stores, o, logged.insts[o] != nil, full.insts[o] != nil)
				}
			}
			t.Fatalf("trial %d (%d stores): the logged recheck differs from the full one (tail %v/%v)", trial, stores, logged.tail != nil, full.tail != nil)
		}
	}
}

// TestDecodeShared: CPUs fetching the same bytes at the same address share
// one decode; once the bytes change, a CPU that fetches there decodes them
// anew instead of taking the old decode.
func TestDecodeShared(t *testing.T) {
	img := testImage(t, cat(asmMovEAX(1), asmSelf))
	m, err := New(img, Config{CPUs: 2, Sink: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	fetchAt := func(c *CPU) *inst {
		t.Helper()
		c.RIP = testText
		in, ok, err := c.fetch()
		if !ok || err != nil {
			t.Fatalf("cpu%d: fetch: %v", c.ID, err)
		}
		return in
	}
	a, b := fetchAt(m.cpus[0]), fetchAt(m.cpus[1])
	if a != b {
		t.Errorf("cpu1 decoded the bytes cpu0 had decoded at the same address again")
	}
	c := m.cpus[0]
	c.commitWrite(c.lookup(testText>>pageShift), testText+1, 1, 2) // mov $2, %eax
	for _, cpu := range m.cpus {
		in := fetchAt(cpu)
		if in == a || in.sem.imm != 2 {
			t.Errorf("cpu%d: after the bytes changed, fetch gave the old decode (imm %d)", cpu.ID, in.sem.imm)
		}
	}
}

// TestSnapshotRunsWithoutSink: runs with no sink from one snapshot each
// start from the snapshot's memory, whatever the runs before them stored
// (a store without a sink must copy a shared frame first, as with one):
// every run ends as a machine set up from scratch does.
func TestSnapshotRunsWithoutSink(t *testing.T) {
	spec := loadBuiltin(t, "text-poke-bp")
	type end struct {
		res  Result
		hash uint64
	}
	run := func(m *Machine, seed uint64) end {
		_, sched, err := ConfigFor(spec, Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		res := m.Run(NewRandomSource(seed, sched))
		return end{res, m.StateHash()}
	}
	tm, _, err := Setup(spec, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{1, 2, 1} {
		fresh, _, err := Setup(spec, Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		want := run(fresh, seed)
		m, err := snap.Machine(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := run(m, seed)
		if got.hash != want.hash || got.res.Insns != want.res.Insns || got.res.Stop != want.res.Stop {
			t.Errorf("seed %d from the snapshot: %d insns, stop %v, state %#x; set up from scratch: %d, %v, %#x",
				seed, got.res.Insns, got.res.Stop, got.hash, want.res.Insns, want.res.Stop, want.hash)
		}
	}
}

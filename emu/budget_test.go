package emu

import (
	"strings"
	"testing"
)

// irqSource raises a timer interrupt on CPU 0 at every decision, as a
// scenario with timer_rate = 1.0 did: no step decision ever comes. It
// gives up after limit decisions so that a missing budget fails the test
// instead of hanging it.
type irqSource struct{ n, limit int }

func (s *irqSource) Next(m *Machine) (Decision, bool) {
	if s.n++; s.n > s.limit {
		return Decision{}, false
	}
	return Decision{Kind: DecIRQ, CPU: 0, Vector: VecTimer}, true
}

// stepSource steps CPU 0 by n at every decision, up to limit decisions.
type stepSource struct{ n, limit int }

func (s *stepSource) Next(m *Machine) (Decision, bool) {
	if s.limit--; s.limit < 0 {
		return Decision{}, false
	}
	return Decision{Kind: DecStep, CPU: 0, N: uint32(s.n)}, true
}

// TestBudgetCountsDecisions: a run whose every decision is an interrupt
// retires no instruction, so only a budget that counts decisions and
// deliveries ends it, with StopBudget (issue 17).
func TestBudgetCountsDecisions(t *testing.T) {
	handler := cat(asmIretq)
	for _, tc := range []struct {
		name string
		code []byte
		cfg  Config
		want uint64 // decisions + deliveries at the stop
	}{
		// IF stays clear: decisions only, nothing delivered.
		{"masked", cat(asmSelf), Config{MaxInsns: 1000, MaxDecisions: 5000}, 5000},
		// No MaxDecisions: the default that goes with max_insns.
		{"default from max_insns", cat(asmSelf), Config{MaxInsns: 1000}, DefaultMaxDecisions(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, tc.code, testGate{v: VecTimer, typ: GateInterrupt, code: handler})
			tc.cfg.CPUs = 1
			m, err := New(img, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := m.Run(&irqSource{limit: 1 << 20})
			if res.Stop != StopBudget || !strings.Contains(res.Msg, "decision budget") {
				t.Fatalf("stopped %v (%s) after %d decisions, want the decision budget", res.Stop, res.Msg, len(res.Decisions))
			}
			if got := uint64(len(res.Decisions)) + m.delivered; got != tc.want {
				t.Errorf("stopped at %d decisions+deliveries, want %d", got, tc.want)
			}
		})
	}
}

// TestBudgetCountsDeliveries: interrupts taken count against the decision
// budget as well as the decisions that raised them.
func TestBudgetCountsDeliveries(t *testing.T) {
	// sti; nop; jmp .-1 (to the nop) keeps IF set and retires instructions.
	code := cat(asmSti, asmNop, []byte{0xeb, 0xfd})
	img := testImage(t, code, testGate{v: VecTimer, typ: GateInterrupt, code: asmIretq})
	m, err := New(img, Config{CPUs: 1, MaxInsns: 1 << 30, MaxDecisions: 1000})
	if err != nil {
		t.Fatal(err)
	}
	alt := &altSource{}
	res := m.Run(alt)
	if res.Stop != StopBudget || m.delivered == 0 {
		t.Fatalf("stopped %v (%s), %d deliveries", res.Stop, res.Msg, m.delivered)
	}
	if got := uint64(len(res.Decisions)) + m.delivered; got != 1000 {
		t.Errorf("stopped at %d decisions + %d deliveries, want 1000 in all", len(res.Decisions), m.delivered)
	}
}

// altSource alternates a timer interrupt and a 4-step quantum on CPU 0.
type altSource struct{ n int }

func (s *altSource) Next(m *Machine) (Decision, bool) {
	s.n++
	if s.n > 1<<20 {
		return Decision{}, false
	}
	if s.n%2 == 0 {
		return Decision{Kind: DecIRQ, CPU: 0, Vector: VecTimer}, true
	}
	return Decision{Kind: DecStep, CPU: 0, N: 4}, true
}

// TestBudgetDefaults: max_insns = 0 no longer means unbounded; only
// NoBudget does (issue 17: a slice that never finished wrote forever).
func TestBudgetDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want Budget
	}{
		{Config{}, Budget{DefaultMaxInsns, 2*DefaultMaxInsns + decisionSlack}},
		{Config{MaxInsns: 7}, Budget{7, 14 + decisionSlack}},
		{Config{MaxInsns: 7, MaxDecisions: 9}, Budget{7, 9}},
		{Config{MaxInsns: 1 << 63}, Budget{1 << 63, 1<<64 - 1}},
		{Config{MaxInsns: 7, NoBudget: true}, Budget{}},
	} {
		if got := tc.cfg.Budget(); got != tc.want {
			t.Errorf("%+v: budget %+v, want %+v", tc.cfg, got, tc.want)
		}
	}
	img := testImage(t, cat(asmSelf))
	m, err := New(img, Config{CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m.Budget().MaxInsns != DefaultMaxInsns {
		t.Errorf("a machine without max_insns has budget %+v", m.Budget())
	}
	// The instruction budget itself: jmp . stops after exactly MaxInsns.
	m, err = New(img, Config{CPUs: 1, MaxInsns: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	res := m.Run(&stepSource{n: 64, limit: 1 << 20})
	if res.Stop != StopBudget || res.Insns != 10_000 {
		t.Errorf("stopped %v after %d instructions", res.Stop, res.Insns)
	}
	// NoBudget: the run goes on until the source ends it.
	m, err = New(img, Config{CPUs: 1, NoBudget: true})
	if err != nil {
		t.Fatal(err)
	}
	if res := m.Run(&irqSource{limit: 200_000}); res.Stop != StopHung || len(res.Decisions) != 200_000 {
		t.Errorf("--no-budget run stopped %v after %d decisions", res.Stop, len(res.Decisions))
	}
}

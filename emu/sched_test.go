package emu

import "testing"

// TestIntnIsModulo: Rand.Intn is the next value modulo n for every n,
// powers of two (taken from the low bits) included: a seeded run's
// decisions depend on it, and traces must stay byte-identical across
// versions for the same scenario and seed.
func TestIntnIsModulo(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		a, b := NewRand(seed), NewRand(seed)
		for n := 1; n <= 300; n++ {
			want := int(b.Uint64() % uint64(n))
			if got := a.Intn(n); got != want {
				t.Fatalf("seed %d: Intn(%d) = %d, want %d", seed, n, got, want)
			}
		}
	}
}

// TestRandomSourceDecisions holds the decisions of a seeded RandomSource
// on a 4-CPU machine with one CPU idle (3 runnable, then 4) to Next as it
// was written before it stopped appending to a slice and Intn took powers
// of two from the low bits (referenceDecisions).
func TestRandomSourceDecisions(t *testing.T) {
	m, err := New(testImage(t, asmSelf), Config{CPUs: 4})
	if err != nil {
		t.Fatal(err)
	}
	m.cpus[2].halted = true
	src := NewRandomSource(1, Schedule{QuantumMin: 1, QuantumMax: 64, TimerRate: 0.02})
	var got []Decision
	for i := 0; i < 40; i++ {
		if i == 20 {
			m.cpus[2].halted = false
		}
		d, ok := src.Next(m)
		if !ok {
			t.Fatal("no decision")
		}
		got = append(got, d)
	}
	want := fmtDecisions(referenceDecisions(1, m, 40))
	if g := fmtDecisions(got); g != want {
		t.Errorf("decisions:\n got %s\nwant %s", g, want)
	}
}

// referenceDecisions is RandomSource.Next as written before (a slice of
// runnable CPUs, Intn by division), with CPU 2 halted for the first 20.
func referenceDecisions(seed uint64, m *Machine, n int) []Decision {
	r := NewRand(seed)
	intn := func(k int) int { return int(r.Uint64() % uint64(k)) }
	var out []Decision
	for i := 0; i < n; i++ {
		if r.Float() < 0.02 {
			out = append(out, Decision{Kind: DecIRQ, CPU: uint16(intn(len(m.cpus))), Vector: VecTimer})
			continue
		}
		var run []int
		for id := range m.cpus {
			if id != 2 || i >= 20 {
				run = append(run, id)
			}
		}
		cpu := run[intn(len(run))]
		out = append(out, Decision{Kind: DecStep, CPU: uint16(cpu), N: 1 + uint32(intn(64))})
	}
	return out
}

func fmtDecisions(ds []Decision) string {
	s := ""
	for _, d := range ds {
		s += d.String() + "; "
	}
	return s
}

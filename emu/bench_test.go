package emu

import "testing"

// BenchmarkTextPokeBP runs the text-poke-bp workload with recording off.
func BenchmarkTextPokeBP(b *testing.B) {
	spec := loadBuiltin(b, "text-poke-bp")
	img, err := LoadImage(spec.ID, spec.ELF)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var insns uint64
	seed := uint64(0)
	for b.Loop() {
		seed++
		m, src, err := SetupImage(spec, img, Options{Seed: seed})
		if err != nil {
			b.Fatal(err)
		}
		res := m.Run(src)
		if res.Err != nil || res.Stop != StopDone {
			b.Fatalf("stop %v: %v %s", res.Stop, res.Err, res.Msg)
		}
		insns += res.Insns
	}
	// Guest instructions retired per second of wall time, emulation only.
	b.ReportMetric(float64(insns)/b.Elapsed().Seconds()/1e6, "Minstr/s")
	// Guest instructions per run.
	b.ReportMetric(float64(insns)/float64(b.N), "insns/op")
}

// BenchmarkFentryLoop runs the fentry-hook loop of bench-fentry
// (scenarios/bench-fentry/bench.S) with recording off: comparable with the
// same loop's Minstr/s under Unicorn with no hook.
func BenchmarkFentryLoop(b *testing.B) {
	spec := loadBuiltin(b, "bench-fentry")
	spec.Params = map[string]uint64{"bench_iters": 1_000_000}
	img, err := LoadImage(spec.ID, spec.ELF)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var insns uint64
	for b.Loop() {
		m, src, err := SetupImage(spec, img, Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		res := m.Run(src)
		if res.Stop != StopDone {
			b.Fatalf("stop %v: %v %s", res.Stop, res.Err, res.Msg)
		}
		insns += res.Insns
	}
	// Guest instructions per second of wall time, emulation only.
	b.ReportMetric(float64(insns)/b.Elapsed().Seconds()/1e6, "Minstr/s")
}

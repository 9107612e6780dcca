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

package replay_test

import (
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// BenchmarkNewState measures the replay state built at the start of each
// run (the slice image loaded from the ELF the trace carries): the other
// half of per-run setup, with emu's BenchmarkSetup.
func BenchmarkNewState(b *testing.B) {
	for _, mode := range []string{"parse", "template"} {
		for _, id := range []string{"ftrace-int3-skip", "text-poke-bp", "bench-fentry"} {
			b.Run(mode+"/"+id, func(b *testing.B) {
				spec, err := scenario.Load(scenarios.FS, id)
				if err != nil {
					b.Fatal(err)
				}
				img, err := emu.LoadImage(spec.ID, spec.ELF)
				if err != nil {
					b.Fatal(err)
				}
				md := record.Meta(spec, img, spec.CPUs, 1)
				b.ReportAllocs()
				if mode == "template" {
					// What a judge of many runs of one machine pays per run.
					t, err := replay.NewTemplate(&md)
					if err != nil {
						b.Fatal(err)
					}
					for b.Loop() {
						t.State()
					}
				} else {
					for b.Loop() {
						if _, err := replay.NewState(&md); err != nil {
							b.Fatal(err)
						}
					}
				}
				// Setup time per run in microseconds.
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/setup")
			})
		}
	}
}

package explore_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/explore"
)

// benchRows are the scenarios BenchmarkExplore measures: a finding row and
// a clean row, each on the small instance the tests use and as shipped.
var benchRows = []struct {
	name   string
	id     string
	params map[string]uint64
}{
	{"ftrace-int3-skip/small", "ftrace-int3-skip", map[string]uint64{"rounds": 4}},
	{"ftrace-int3-skip/full", "ftrace-int3-skip", nil},
	{"text-poke-bp/small", "text-poke-bp", map[string]uint64{"patch_rounds": 4, "calls": 200}},
	{"text-poke-bp/full", "text-poke-bp", nil},
}

// BenchmarkExplore measures exploration throughput: schedules run and
// checked by every analyzer, with no trace file and no minimisation, on
// one worker (a per-core figure; -j N scales it by the cores).
func BenchmarkExplore(b *testing.B) {
	for _, row := range benchRows {
		for _, st := range explore.Strategies() {
			b.Run(row.name+"/"+st, func(b *testing.B) {
				spec := load(b, row.id)
				budget := int64(8)
				if row.params == nil {
					budget = 2
				}
				b.ReportAllocs()
				var n int64
				seed := uint64(0)
				cpu0 := cpuTime()
				for b.Loop() {
					seed++
					res, err := explore.Explore(context.Background(), spec, explore.Options{
						Strategy: st, Budget: budget, Seed: seed, Params: row.params, Workers: 1, NoShrink: true, All: true,
					})
					if err != nil {
						b.Fatal(err)
					}
					n += res.Schedules
				}
				// schedules/s: schedules run and analyzed per second of wall
				// time; cpu-ms/schedule: the process's CPU time per schedule
				// (what a schedule costs when other work shares the machine).
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "schedules/s")
				b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(n), "cpu-ms/schedule")
			})
		}
	}
}

// cpuTime is the process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTimeToFirstFinding measures, for each finding row as shipped
// (full params), the time from a random start (strategy random, no
// injection plan, one worker, seed = iteration) to the first finding of
// the expected analyzer: ns/op is the time to first finding.
func BenchmarkTimeToFirstFinding(b *testing.B) {
	for _, row := range findingRows {
		b.Run(row.id, func(b *testing.B) {
			spec := load(b, row.id)
			var scheds int64
			seed := uint64(0)
			for b.Loop() {
				seed++
				res, err := explore.Explore(context.Background(), spec, explore.Options{
					Seed: seed, Budget: 2000, Workers: 1, NoShrink: true, Analyzers: spec.Expect.Findings,
				})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Violations) == 0 {
					b.Fatalf("seed %d: no finding in 2000 schedules", seed)
				}
				scheds += res.Schedules
			}
			// schedules/op: schedules run up to and including the first finding.
			b.ReportMetric(float64(scheds)/float64(b.N), "schedules/op")
		})
	}
}

package analyze_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// cpuTime is the process's CPU time so far (user + system, every
// goroutine): on a shared machine, cpu-ns/event says what the work costs
// when the wall clock does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate reports events/s (wall) and cpu-ns/event for n events per
// iteration since cpu0.
func reportRate(b *testing.B, n int, cpu0 time.Duration) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n)/float64(b.N), "cpu-ns/event")
}

// benchSets are the analyzer selections the speed benchmarks measure:
// every analyzer, none (the replay state and the story window alone), and
// each analyzer on its own.
func benchSets() []struct {
	name string
	ids  []string
} {
	sets := []struct {
		name string
		ids  []string
	}{{"all", nil}, {"none", []string{}}}
	for _, id := range analyze.IDs() {
		sets = append(sets, struct {
			name string
			ids  []string
		}{id, []string{id}})
	}
	return sets
}

func selectSet(tb testing.TB, ids []string) []analyze.Analyzer {
	if ids == nil {
		return analyze.All()
	}
	if len(ids) == 0 {
		return nil
	}
	as, err := analyze.Select(ids)
	if err != nil {
		tb.Fatal(err)
	}
	return as
}

// BenchmarkAnalyzeFile replays a ~12.5M-event bench-fentry trace file
// (AnalyzeFile: read, decode, replay, analyze) with every analyzer, with
// none, and with each one alone. events/s: trace events per second of
// wall time; cpu-ns/event: CPU time of the process per event (decoding
// runs on every core: see format.Reader.Scan).
func BenchmarkAnalyzeFile(b *testing.B) {
	path, events := recordFentry(b, b.TempDir(), 500_000)
	for _, set := range benchSets() {
		b.Run(set.name, func(b *testing.B) {
			as := selectSet(b, set.ids)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				res, err := analyze.AnalyzeFile(path, as)
				if err != nil || res.Events != events {
					b.Fatalf("%v: %d events, want %d", err, res.Events, events)
				}
			}
			reportRate(b, int(events), cpu0)
		})
	}
}

// rowLog collects a live run's rows (copies) in memory.
type rowLog struct{ rows []format.Row }

func (l *rowLog) Append(r *format.Row) error { l.rows = append(l.rows, *r); return nil }

// BenchmarkLive feeds the rows of one ftrace-int3-skip run (recorded once
// into memory) to analyze.Live from a replay.Template, as explore's judge
// gets them from the recorder: the analysis share of a schedule.
// events/s: rows appended (and finished) per second.
func BenchmarkLive(b *testing.B) {
	spec, err := scenario.Load(scenarios.FS, "ftrace-int3-skip")
	if err != nil {
		b.Fatal(err)
	}
	su, err := check.Prepare(spec, emu.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var log rowLog
	m, src, err := emu.SetupImage(spec, su.Img, emu.Options{Seed: 1, Sink: record.NewRecorder(&log, su.Img)})
	if err != nil {
		b.Fatal(err)
	}
	m.Run(src)
	t, err := replay.NewTemplate(&su.Meta)
	if err != nil {
		b.Fatal(err)
	}
	for _, set := range benchSets() {
		b.Run(set.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				l, err := analyze.NewLiveFrom(t, selectSet(b, set.ids))
				if err != nil {
					b.Fatal(err)
				}
				for i := range log.rows {
					if err := l.Append(&log.rows[i]); err != nil {
						b.Fatal(err)
					}
				}
				l.Finish()
			}
			reportRate(b, len(log.rows), cpu0)
			b.ReportMetric(float64(len(log.rows)), "events/op")
		})
	}
}

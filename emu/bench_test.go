package emu

import (
	"bytes"
	"debug/elf"
	"syscall"
	"testing"
	"time"
)

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
	cpu0 := cpuTime()
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
	// The same rate over the process's CPU time (setup included): what
	// holds on a machine shared with other work.
	b.ReportMetric(float64(insns)/(cpuTime()-cpu0).Seconds()/1e6, "cpu-Minstr/s")
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
	cpu0 := cpuTime()
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
	// The same over the process's CPU time.
	b.ReportMetric(float64(insns)/(cpuTime()-cpu0).Seconds()/1e6, "cpu-Minstr/s")
}

// BenchmarkDecode decodes every instruction of text-poke-bp's and
// bench-fentry's code once per iteration (decode runs on a decode-cache
// miss no other CPU's decode of the same bytes serves; see fetch.go).
func BenchmarkDecode(b *testing.B) {
	var code [][]byte
	for _, id := range []string{"text-poke-bp", "bench-fentry"} {
		f, err := elf.NewFile(bytes.NewReader(loadBuiltin(b, id).ELF))
		if err != nil {
			b.Fatal(err)
		}
		for _, sec := range f.Sections {
			if sec.Flags&elf.SHF_EXECINSTR == 0 {
				continue
			}
			text, err := sec.Data()
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(text); {
				in, err := decodeInst(text[off:], sec.Addr+uint64(off))
				if err != nil {
					off++ // data in the text, or an unsupported instruction
					continue
				}
				code = append(code, text[off:off+int(in.len)])
				off += int(in.len)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range code {
			if _, err := decodeInst(c, 0x1000); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Instructions decoded per iteration.
	b.ReportMetric(float64(len(code)), "insns/op")
}

// BenchmarkSetup measures per-run setup: SetupImage (the machine with the
// slice loaded, per-CPU areas, boot stacks and params), nothing run, and
// (/snapshot) a machine from a Snapshot of it, which is what exploration
// and shrinking pay before each schedule.
func BenchmarkSetup(b *testing.B) {
	for _, id := range []string{"ftrace-int3-skip", "text-poke-bp", "bench-fentry"} {
		b.Run(id, func(b *testing.B) {
			spec := loadBuiltin(b, id)
			img, err := LoadImage(spec.ID, spec.ELF)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := SetupImage(spec, img, Options{Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
			// Setup time per run in microseconds.
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/setup")
		})
		// From a snapshot of the set-up machine, as explore starts each
		// schedule: memory shared copy on write.
		b.Run(id+"/snapshot", func(b *testing.B) {
			spec := loadBuiltin(b, id)
			img, err := LoadImage(spec.ID, spec.ELF)
			if err != nil {
				b.Fatal(err)
			}
			m, _, err := SetupImage(spec, img, Options{Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			snap, err := m.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := snap.Machine(nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/setup")
		})
	}
}

// nullSink counts events and keeps nothing.
type nullSink struct{ n uint64 }

func (s *nullSink) Event(e *Event) { s.n++ }

// BenchmarkFentryLoopEvents runs BenchmarkFentryLoop's loop with a sink
// that keeps nothing, loads and register deltas on: the emulator's share
// of recording (events, deferral, register deltas) without the recorder
// and the trace writer.
func BenchmarkFentryLoopEvents(b *testing.B) {
	spec := loadBuiltin(b, "bench-fentry")
	spec.Params = map[string]uint64{"bench_iters": 1_000_000}
	img, err := LoadImage(spec.ID, spec.ELF)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var insns, events uint64
	cpu0 := cpuTime()
	for b.Loop() {
		sink := &nullSink{}
		m, src, err := SetupImage(spec, img, Options{Seed: 1, Sink: sink})
		if err != nil {
			b.Fatal(err)
		}
		res := m.Run(src)
		if res.Stop != StopDone {
			b.Fatalf("stop %v: %v %s", res.Stop, res.Err, res.Msg)
		}
		insns += res.Insns
		events += sink.n
	}
	// CPU time (user + system) per guest instruction: the figure that
	// holds on a machine shared with other work.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(insns), "cpu-ns/insn")
	b.ReportMetric(float64(events)/float64(insns), "events/insn")
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

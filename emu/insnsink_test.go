package emu

import (
	"fmt"
	"testing"
)

// insnLog is an InsnSink keeping a copy of every event, its insn events
// rebuilt from Insn's fields.
type insnLog struct{ eventLog }

func (l *insnLog) Insn(seq uint64, cpu uint16, task uint32, depth uint8, rip uint64, n uint8, bytes *[15]byte, op uint16, rsp, flags uint64,
	regMask uint32, regs *[NumRegs]uint64) {
	e := Event{Seq: seq, Kind: EvInsn, CPU: cpu, Task: task, Depth: depth, RIP: rip, Len: n, Op: op, RSP: rsp, Flags: flags, RegMask: regMask}
	copy(e.Bytes[:n], bytes[:n])
	for i := range NumRegs {
		if regMask&(1<<i) != 0 {
			e.Regs[i] = regs[i]
		}
	}
	l.ev = append(l.ev, e)
}

// TestInsnSinkSameEvents runs scenarios with a plain Sink and with an
// InsnSink: the machine must hand both the same events in the same order
// (an insn event's bytes past its length and registers outside its mask
// are not part of it).
func TestInsnSinkSameEvents(t *testing.T) {
	for _, c := range []struct {
		id             string
		noLoads, noReg bool
	}{{"text-poke-bp", false, false}, {"text-poke-bp", true, true}, {"kprobe-nmi", false, false}, {"ftrace-int3-skip", false, true}} {
		t.Run(fmt.Sprintf("%s/noloads=%v/noregs=%v", c.id, c.noLoads, c.noReg), func(t *testing.T) {
			spec := loadBuiltin(t, c.id)
			run := func(sink Sink) []Event {
				m, src, err := Setup(spec, Options{Seed: 1, Sink: sink, MaxInsns: 200_000, NoLoads: c.noLoads, NoRegs: c.noReg})
				if err != nil {
					t.Fatal(err)
				}
				m.Run(src)
				return nil
			}
			plain, fast := &eventLog{}, &insnLog{}
			run(plain)
			run(fast)
			if len(plain.ev) != len(fast.ev) {
				t.Fatalf("%d events through Event, %d with Insn", len(plain.ev), len(fast.ev))
			}
			insns := 0
			for i := range plain.ev {
				a, b := plain.ev[i], fast.ev[i]
				if a.Kind == EvInsn {
					insns++
					clear(a.Bytes[a.Len:])
					for r := range NumRegs {
						if a.RegMask&(1<<r) == 0 {
							a.Regs[r] = 0
						}
					}
				}
				if a != b {
					t.Fatalf("event %d differs:\nEvent: %+v\nInsn:  %+v", i, a, b)
				}
			}
			if insns == 0 {
				t.Fatal("no insn events")
			}
		})
	}
}

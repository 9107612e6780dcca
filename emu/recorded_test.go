package emu

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// eventLog is a Sink keeping a copy of every event.
type eventLog struct{ ev []Event }

func (l *eventLog) Event(e *Event) { l.ev = append(l.ev, *e) }

// recordedStep is one instruction of a recorded snippet: the registers
// before and after it (the machine's own state) and the events it emitted.
type recordedStep struct {
	rip           uint64
	before, after ArchState
	events        []Event
}

// recordSnippet runs code as runSnippet does, but through the recording
// path (execRecorded) with loads and register deltas on, and returns each
// instruction's events with the machine's registers around it.
func recordSnippet(t *testing.T, code []byte, in ArchState, scratchAddr uint64, scratch []byte, gsBase uint64, cet *uint64) ([]recordedStep, error) {
	t.Helper()
	m, c := newSnippetMachine(t, code, scratchAddr, scratch)
	if cet != nil {
		c.cet = true
		c.setSCET(*cet)
	}
	log := &eventLog{}
	m.sink, m.loads, m.regs = log, true, true
	c.GSBase = gsBase
	c.R = in.R
	c.RFLAGS = in.RFLAGS | flagRes1
	end := snippetCodeBase + uint64(len(code))
	var steps []recordedStep
	var err error
	for c.RIP != end && len(steps) < maxSnippetInsns {
		off := c.RIP - snippetCodeBase
		if off >= uint64(len(code)) {
			break
		}
		x, derr := decodeInst(code[off:], c.RIP)
		if derr != nil {
			err = derr
			break
		}
		st := recordedStep{rip: c.RIP, before: ArchState{R: c.R, RFLAGS: c.RFLAGS}}
		n := len(log.ev)
		c.exit = exitNone
		m.execRecorded(c, x)
		st.after = ArchState{R: c.R, RFLAGS: c.RFLAGS}
		st.events = append([]Event(nil), log.ev[n:]...)
		steps = append(steps, st)
		if c.exit == exitFault {
			err = &snippetFault{RIP: c.RIP, Info: c.fault}
			break
		}
		if c.exit == exitUnsupported {
			err = &UnsupportedError{Addr: x.addr, Bytes: append([]byte(nil), x.raw[:x.len]...), Reason: c.unsup}
			break
		}
	}
	if scratch != nil {
		copyPages(t, m, scratchAddr, scratch, false)
	}
	return steps, err
}

// TestRecordedLoadsAndRegs checks, for every instruction form in the
// goldens (testdata/insn), that what the recording says an instruction did
// is what the machine did:
//
//   - the insn event comes first, and its register deltas are exactly the
//     registers (RAX..R15 and RFLAGS) that differ between the machine's
//     state before and after the instruction, with the values after;
//   - its other events are loads and stores only, and each load's value is
//     the memory at that point (the memory before the snippet with the
//     stores recorded so far applied), each store's old value too, and the
//     stores rebuild the scratch page the machine ends with;
//   - every memory input a golden declares that no load covers is not read:
//     changing it changes nothing the snippet computes.
func TestRecordedLoadsAndRegs(t *testing.T) {
	cases, _ := loadGoldens(t)
	env := goldenEnv{code: snippetCodeBase, scratch: goldenScratchAddr}
	forms, loads := 0, 0
	for _, gc := range cases {
		name := fmt.Sprintf("%s:%d/% x", strings.TrimSuffix(gc.file, ".txt"), gc.line, gc.code)
		t.Run(name, func(t *testing.T) {
			in, scratch := gc.inState(t, env)
			var gs uint64
			if gc.in.gs != "" {
				gs = env.must(t, gc.in.gs)
			}
			mem := append([]byte(nil), scratch...)
			var cet *uint64
			if gc.in.cet != "" {
				v := env.must(t, gc.in.cet)
				cet = &v
			}
			steps, err := recordSnippet(t, gc.code, in, env.scratch, mem, gs, cet)
			var u *UnsupportedError
			if errors.As(err, &u) {
				t.Skip("unsupported")
			}
			// Memory as the events say it is: the snippet's initial
			// bytes, updated by each store event.
			shadow := map[uint64]byte{}
			byteAt := func(a uint64) (byte, bool) {
				if b, ok := shadow[a]; ok {
					return b, true
				}
				switch {
				case a-env.scratch < uint64(len(scratch)):
					return scratch[a-env.scratch], true
				case a-snippetCodeBase < uint64(len(gc.code)):
					return gc.code[a-snippetCodeBase], true
				case a-snippetCodeBase < uint64(max(1, (len(gc.code)+pageSize-1)/pageSize)*pageSize):
					return 0, true // the rest of the code page
				}
				return 0, false
			}
			valueAt := func(a uint64, size uint32) (uint64, bool) {
				var v uint64
				for i := uint32(0); i < size; i++ {
					b, ok := byteAt(a + uint64(i))
					if !ok {
						return 0, false
					}
					v |= uint64(b) << (8 * i)
				}
				return v, true
			}
			var loaded [][2]uint64 // [addr, size] of every load
			for k, st := range steps {
				if len(st.events) == 0 || st.events[0].Kind != EvInsn || st.events[0].RIP != st.rip {
					t.Fatalf("instruction %d at %#x: first event %+v, want its insn event", k, st.rip, st.events)
				}
				ie := st.events[0]
				var want uint32
				for i, r := range RegIndex {
					if st.after.R[r] != st.before.R[r] {
						want |= 1 << i
						if ie.Regs[i] != st.after.R[r] {
							t.Errorf("instruction %d: reg_%s %#x, the machine has %#x", k, RegNames[i], ie.Regs[i], st.after.R[r])
						}
					}
				}
				if st.after.RFLAGS != st.before.RFLAGS {
					want |= 1 << RegFlags
					if ie.Regs[RegFlags] != st.after.RFLAGS {
						t.Errorf("instruction %d: reg_rflags %#x, the machine has %#x", k, ie.Regs[RegFlags], st.after.RFLAGS)
					}
				}
				if ie.RegMask != want {
					t.Errorf("instruction %d: register mask %#x, the machine changed %#x", k, ie.RegMask, want)
				}
				for _, e := range st.events[1:] {
					if e.Size < 1 || e.Size > 8 {
						t.Fatalf("instruction %d: %s of %d bytes", k, e.Kind, e.Size)
					}
					cur, ok := valueAt(e.Addr, e.Size)
					switch e.Kind {
					case EvLoad:
						loads++
						loaded = append(loaded, [2]uint64{e.Addr, uint64(e.Size)})
						if !ok || cur != e.New {
							t.Errorf("instruction %d: load [%#x] (%d bytes) = %#x, memory holds %#x (mapped %v)", k, e.Addr, e.Size, e.New, cur, ok)
						}
					case EvWrite:
						if !ok || cur != e.Old {
							t.Errorf("instruction %d: store [%#x] old %#x, memory holds %#x", k, e.Addr, e.Old, cur)
						}
						for i := uint32(0); i < e.Size; i++ {
							shadow[e.Addr+uint64(i)] = byte(e.New >> (8 * i))
						}
					default:
						t.Errorf("instruction %d: a %s event among its loads and stores", k, e.Kind)
					}
				}
			}
			for off := range mem {
				if b, _ := byteAt(env.scratch + uint64(off)); b != mem[off] {
					t.Fatalf("scratch+%#x: the stores recorded leave %#x, the machine holds %#x", off, b, mem[off])
				}
			}
			// A declared input no load covers must not be read.
			base, baseErr := runSnippetCET(t, gc.code, in, env.scratch, append([]byte(nil), scratch...), gs, cet)
			for _, gm := range gc.in.mem {
				a := env.scratch + gm.off
				covered := false
				for _, l := range loaded {
					if a < l[0]+l[1] && l[0] < a+uint64(gm.size) {
						covered = true
					}
				}
				if covered {
					continue
				}
				alt := append([]byte(nil), scratch...)
				for i := 0; i < gm.size; i++ {
					alt[gm.off+uint64(i)] ^= 0xa5
				}
				res, altErr := runSnippetCET(t, gc.code, in, env.scratch, alt, gs, cet)
				// The input's own bytes may be overwritten; the rest of
				// memory must come out the same.
				end := gm.off + uint64(gm.size)
				same := bytes.Equal(alt[:gm.off], mem[:gm.off]) && bytes.Equal(alt[end:], mem[end:])
				if res.State != base.State || res.RIP != base.RIP || fmt.Sprint(altErr) != fmt.Sprint(baseErr) || !same {
					t.Errorf("m%d@%#x is read (changing it changes the result) but no load event covers it", 8*gm.size, gm.off)
				}
			}
			forms++
		})
	}
	if forms < 300 || loads == 0 {
		t.Errorf("%d forms checked, %d loads: the goldens did not run", forms, loads)
	}
}

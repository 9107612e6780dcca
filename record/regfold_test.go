package record

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
)

// regFold is every CPU's registers as the register deltas say: the last
// value of each register among its rows so far (format.RegNames order).
type regFold struct {
	vals  [][format.NumRegs]uint64
	known []uint32
}

func newRegFold(cpus int) *regFold {
	return &regFold{vals: make([][format.NumRegs]uint64, cpus), known: make([]uint32, cpus)}
}

func (f *regFold) apply(cpu int, mask uint32, regs *[format.NumRegs]uint64) {
	for i := range format.NumRegs {
		if mask&(1<<i) != 0 {
			f.vals[cpu][i] = regs[i]
		}
	}
	f.known[cpu] |= mask
}

// diff says how the fold of cpu differs from the machine's registers.
func (f *regFold) diff(m *emu.Machine, cpu int) string {
	r := m.Regs(cpu)
	want := [format.NumRegs]uint64{emu.RegFlags: r.RFLAGS}
	for i, hw := range emu.RegIndex {
		want[i] = r.R[hw]
	}
	if f.known[cpu] != 1<<format.NumRegs-1 {
		return fmt.Sprintf("registers %#x known, want all", f.known[cpu])
	}
	for i := range want {
		if f.vals[cpu][i] != want[i] {
			return fmt.Sprintf("%s is %#x by the deltas, %#x in the machine", format.RegNames[i], f.vals[cpu][i], want[i])
		}
	}
	return ""
}

// rspIndex is RSP's index in format.RegNames.
var rspIndex = slices.Index(format.RegNames[:], "rsp")

// foldChecker folds the machine's events as they come and, at every
// instruction event (emitted once the instruction is done), compares the
// fold of its CPU with the machine's registers: before the event's own
// deltas, the registers it did not change and its rsp and rflags columns
// (the values before it), then all of them.
type foldChecker struct {
	t      *testing.T
	m      *emu.Machine
	fold   *regFold
	insns  int
	errors int
}

func (c *foldChecker) Event(e *emu.Event) {
	regs := [format.NumRegs]uint64(e.Regs)
	cpu := int(e.CPU)
	if e.Kind == emu.EvInsn && c.errors < 5 {
		before := c.fold.vals[cpu]
		r := c.m.Regs(cpu)
		for i, hw := range emu.RegIndex {
			if e.RegMask&(1<<i) == 0 && before[i] != r.R[hw] {
				c.errors++
				c.t.Errorf("seq %d cpu%d before the instruction at %#x: %s is %#x by the deltas, %#x in the machine (the instruction left it)", e.Seq, e.CPU, e.RIP, format.RegNames[i], before[i], r.R[hw])
			}
		}
		if before[rspIndex] != e.RSP || before[emu.RegFlags] != e.Flags {
			c.errors++
			c.t.Errorf("seq %d cpu%d before the instruction at %#x: rsp %#x rflags %#x by the deltas, the insn row says %#x %#x", e.Seq, e.CPU, e.RIP, before[rspIndex], before[emu.RegFlags], e.RSP, e.Flags)
		}
	}
	c.fold.apply(cpu, e.RegMask, &regs)
	if e.Kind != emu.EvInsn {
		return
	}
	c.insns++
	if d := c.fold.diff(c.m, cpu); d != "" && c.errors < 5 {
		c.errors++
		c.t.Errorf("seq %d cpu%d after the instruction at %#x: %s", e.Seq, e.CPU, e.RIP, d)
	}
}

// TestRegisterFold: on a 3-CPU run with timer interrupts, NMIs, native
// services and byte-granular text_poke (ftrace-emulate-percpu), the fold of
// the register deltas equals the machine's registers after every
// instruction of every CPU (live), and the fold of the recorded file's
// deltas equals them at the end of the run.
func TestRegisterFold(t *testing.T) {
	spec := load(t, "ftrace-emulate-percpu")
	if spec.CPUs < 2 || spec.Quirks.Fetch != "torn" {
		t.Fatalf("the scenario has %d CPUs and fetch %q: the test wants several CPUs and byte-granular text_poke", spec.CPUs, spec.Quirks.Fetch)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	chk := &foldChecker{t: t, fold: newRegFold(spec.CPUs)}
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 5, Sink: chk})
	if err != nil {
		t.Fatal(err)
	}
	chk.m = m
	res := m.Run(src)
	if res.Stop != emu.StopDone {
		t.Fatalf("stop %v %s", res.Stop, res.Msg)
	}
	if chk.insns < 10000 {
		t.Fatalf("%d instructions checked", chk.insns)
	}
	var svc, traps uint64
	for _, c := range res.CPUs {
		for _, n := range c.Services {
			svc += n
		}
		for _, n := range c.Traps {
			traps += n
		}
	}
	if svc == 0 || traps == 0 {
		t.Fatalf("%d services, %d traps: the run does not exercise them", svc, traps)
	}

	path := filepath.Join(t.TempDir(), "t.arrow")
	rec, err := Run(spec, path, Options{Options: emu.Options{Seed: 5}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if md := r.Meta(); !md.Loads || !md.Regs {
		t.Errorf("metadata: loads %v regs %v, want both recorded", md.Loads, md.Regs)
	}
	fold := newRegFold(spec.CPUs)
	var loads int
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		fold.apply(int(row.CPU), row.RegMask, &row.Regs)
		if row.Kind == format.KindLoad {
			loads++
		}
	}
	for c := range spec.CPUs {
		if d := fold.diff(rec.Machine, c); d != "" {
			t.Errorf("file, cpu%d at the end: %s", c, d)
		}
	}
	if loads == 0 {
		t.Error("no load rows")
	}
}

// TestRecordedContent: --no-loads and --no-regs (Options.NoLoads, NoRegs)
// leave loads and register deltas out of the trace and say so in its
// metadata; reads of the scenario's return slots are then percpu_read rows
// (and only then).
func TestRecordedContent(t *testing.T) {
	spec := load(t, "ftrace-emulate-percpu")
	if len(spec.Contract.ReturnSlots) == 0 {
		t.Fatal("the scenario declares no return slots")
	}
	for _, tc := range []struct{ noLoads, noRegs bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("no-loads=%v,no-regs=%v", tc.noLoads, tc.noRegs), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := Run(spec, path, Options{Options: emu.Options{Seed: 2, NoLoads: tc.noLoads, NoRegs: tc.noRegs}}); err != nil {
				t.Fatal(err)
			}
			r, err := format.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if md := r.Meta(); md.Loads != !tc.noLoads || md.Regs != !tc.noRegs {
				t.Errorf("metadata: loads %v regs %v", md.Loads, md.Regs)
			}
			var loads, percpuReads, deltas int
			for row, err := range r.Events() {
				if err != nil {
					t.Fatal(err)
				}
				switch row.Kind {
				case format.KindLoad:
					loads++
				case format.KindPercpuRead:
					percpuReads++
				}
				if row.RegMask != 0 {
					deltas++
				}
			}
			if (loads > 0) == tc.noLoads || (percpuReads > 0) != tc.noLoads {
				t.Errorf("%d load rows, %d percpu_read rows", loads, percpuReads)
			}
			if (deltas > 0) == tc.noRegs {
				t.Errorf("%d rows with register deltas", deltas)
			}
		})
	}
}

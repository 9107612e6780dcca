package format

import (
	"bytes"
	"math"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// The one fixture event set (arrow arrdata style): every kind, optional
// columns present and absent, and edge values. Rows are canonical: what the
// reader returns for them (Has* flags reflect stored columns, unused fields
// are zero), so a round trip compares with ==.

var fixtureOps = []string{"", "NOP", "MOV", "CALL", "INT3", "IRETQ", "JMP", "CPUID"}

var fixturePercpu = []string{"ftrace_bp_call_return", "ftrace_bp_call_target", "cpu_tss_ist"}

func fixtureMeta() Meta {
	return Meta{
		Scenario:     "text_poke_bp",
		ScenarioText: "[machine]\ncpus = 4\n# ünïcode and \"quotes\"\n",
		ELF:          []byte("\x7fELF\x02\x01\x01\x00binary\x00\xff"),
		CPUs:         4,
		Loads:        true,
		Regs:         true,
		Quirks:       map[string]string{"nmi_in_sti_shadow": "true", "fetch": "stale"},
		Seed:         math.MaxUint64,
		Symbols: []Symbol{
			{Name: "pt_start", Addr: 0xffffffff81000000, Size: 64, Section: ".text"},
			{Name: "ftrace_bp_call_return", Addr: 0, Size: 8, Section: ".data..percpu"},
			{Name: "text_poke", Addr: 0xffffffff81000100, Size: 1, Section: ".text"},
		},
		ToolVersion: "patchtrace test",
		OpNames:     fixtureOps,
		PercpuVars:  fixturePercpu,
	}
}

func fixtureFinal() Final {
	return Final{
		Dropped:         []Drop{{AfterSeq: 7, Count: 2}},
		Decisions:       []byte{0, 1, 2, 0xff},
		DecisionsFormat: "test-v1",
		DecisionCount:   4,
		Outcome:         OutcomeBudget,
		OutcomeDetail:   "instruction budget exhausted",
	}
}

func insn(seq uint64, cpu uint16, rip uint64, op uint16, b ...byte) Row {
	r := Row{Seq: seq, Kind: KindInsn, CPU: cpu, Task: 1, RIP: rip, Len: uint8(len(b)), Op: op,
		RSP: 0xffffc90000003f00, RFlags: 0x202}
	copy(r.Bytes[:], b)
	return r
}

func fixtureRows() []Row {
	const text = 0xffffffff81000000
	rows := []Row{
		{Seq: 0, Kind: KindSerialize, CPU: 0, Cause: 3, RegMask: 1<<NumRegs - 1,
			Regs: [NumRegs]uint64{1, 2, 3, 4, 5, 6, 7, 0xffffc90000003f00, 8, 9, 10, 11, 12, 13, 14, math.MaxUint64, 0x2}},
		insn(1, 0, text, 1, 0x0f, 0x1f, 0x44, 0x00, 0x00),
		insn(2, 1, text+5, 3, 0xe8, 0xf6, 0x00, 0x00, 0x00),
		{Seq: 3, Kind: KindWrite, CPU: 1, Task: 2, Depth: 0, RIP: text + 5, Addr: 0xffffc90000013ff8, HasAddr: true, Size: 8,
			Old: 0, New: text + 10},
		{Seq: 4, Kind: KindWrite, CPU: 0, Task: 1, RIP: text + 0x100, Addr: text, HasAddr: true, Size: 1, Old: 0x0f, New: 0xcc,
			Alias: true, AliasAddr: 0xffffe00000000000},
		{Seq: 5, Kind: KindWrite, CPU: 2, Task: 3, Depth: 2, RIP: text + 7, Addr: 0xffff888000002008, HasAddr: true, Size: 8,
			Old: math.MaxUint64, New: 1, Percpu: true, PercpuCPU: 2, PercpuOff: 8, PercpuVar: "ftrace_bp_call_target"},
		{Seq: 6, Kind: KindWrite, CPU: 3, RIP: text + 9, Addr: 0xffff888000003010, HasAddr: true, Size: 4,
			Percpu: true, PercpuCPU: 3, PercpuOff: 0x10},
		{Seq: 10, Kind: KindPercpuRead, CPU: 1, Task: 2, RIP: text + 12, Addr: 0xffff888000001000, HasAddr: true, Size: 8,
			New: text + 0x40, Percpu: true, PercpuCPU: 1, PercpuOff: 0, PercpuVar: "ftrace_bp_call_return"},
		{Seq: 11, Kind: KindPercpuRead, CPU: 1, Task: 2, RIP: text + 12, Addr: 0xffff888000001040, HasAddr: true, Size: 2,
			Percpu: true, PercpuCPU: 1, PercpuOff: 0x40},
		insn(12, 2, text, 4, 0xcc),
		{Seq: 13, Kind: KindTrap, CPU: 2, Task: 3, Depth: 1, RIP: text + 1, Vector: 3, HasVector: true, Handler: text + 0x200,
			RSP: 0xffffc90000023fd8, IST: 0, RFlags: 0x246, Size: 40, RegMask: 1<<7 | 1<<16, Regs: [NumRegs]uint64{7: 0xffffc90000023fd8, 16: 0x46}},
		{Seq: 14, Kind: KindTrap, CPU: 3, Task: 4, Depth: 2, RIP: text + 0x30, Vector: 14, HasVector: true, Handler: text + 0x300,
			RSP: 0xffffc90000030000, IST: 7, RFlags: math.MaxUint32, ErrCode: 2, HasErrCode: true, Addr: 0xdead000, HasAddr: true},
		{Seq: 15, Kind: KindTrap, CPU: 0, Depth: 3, RIP: text + 0x44, Vector: 2, HasVector: true, Handler: text + 0x400, RSP: 16, IST: 2},
		{Seq: 16, Kind: KindIret, CPU: 2, Task: 3, Depth: 1, RIP: text + 0x210, Handler: text + 5, RSP: 0xffffc90000023ff0, RFlags: 0x202},
		{Seq: 17, Kind: KindSerialize, CPU: 2, Task: 3, RIP: text + 0x210, Cause: 1},
		{Seq: 18, Kind: KindSerialize, CPU: 1, Task: 2, RIP: text + 0x20, Cause: 2},
		{Seq: 19, Kind: KindPerm, CPU: 0, Task: 1, RIP: text + 0x500, Addr: 0xffffffffa0000000, HasAddr: true, Size: 3, PermOld: 3, PermNew: 5, Service: 2},
		{Seq: 20, Kind: KindPerm, CPU: 0, Task: 1, RIP: text + 0x500, Addr: 0xffffffffa0003000, HasAddr: true, Size: 1, PermOld: 0, PermNew: 7, Service: 6},
		{Seq: 20, Kind: KindPerm, CPU: 0, Task: 1, RIP: text + 0x100, Addr: text, HasAddr: true, Size: 1, PermOld: 0, PermNew: 3, Service: 1,
			Alias: true, AliasAddr: 0xffffe00000000000},
		{Seq: 21, Kind: KindSwitch, CPU: 1, Task: 2, Depth: 1, RIP: text + 0x600, Old: 2, New: 0},
		{Seq: 22, Kind: KindService, CPU: 0, Task: 1, RIP: text + 0x100, Service: 1, Args: [4]uint64{text, 0xffffc90000003e00, 5, 0}, Ret: text},
		{Seq: 23, Kind: KindService, CPU: 3, Task: 4, RIP: text + 0x700, Service: 7, Args: [4]uint64{math.MaxUint64 - 1, 0xfb, math.MaxUint64, 1}, Ret: 0},
		{Seq: 24, Kind: KindMarker, CPU: 1, Task: 2, RIP: text + 0x800, Args: [4]uint64{1, 42}},
		{Seq: 25, Kind: KindMarker, CPU: 1, Task: 2, RIP: text + 0x800, Args: [4]uint64{2, 0}, Msg: "patched"},
		{Seq: 26, Kind: KindInject, CPU: 0, RIP: text, Vector: 2, HasVector: true, Addr: 3, HasAddr: true},
		{Seq: 27, Kind: KindInject, CPU: 3, Task: math.MaxUint32, Depth: 255, RIP: math.MaxUint64, Vector: 0xec, HasVector: true, Addr: 0, HasAddr: true},
		{Seq: 28, Kind: KindHalt, CPU: 2, Task: 0, RIP: text + 0x900},
		insn(29, 3, text+0x10, 2, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0x65, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00),
		insn(30, 3, text+0x20, 7, 0x0f, 0xa2),
		{Seq: 31, Kind: KindFault, CPU: 3, Task: 4, Depth: 1, RIP: text + 0x31, Vector: 14, HasVector: true, ErrCode: 0x11, HasErrCode: true,
			Addr: 0xffffffff81000031, HasAddr: true, Msg: "oops: #PF fetching from a non-executable page at pt_tramp+0x31"},
		{Seq: 32, Kind: KindFault, CPU: 0, Task: 1, RIP: text + 0x900, Service: 8, Msg: "panic: \"ünïcode\"\n"},
		// Version 4: loads (and register deltas, set below); v3Rows drops
		// them, leaving the rows of testdata/v3.arrow.
		{Seq: 33, Kind: KindLoad, CPU: 1, Task: 2, RIP: text + 12, Addr: 0xffffc90000013ff8, HasAddr: true, Size: 8, New: text + 10},
		{Seq: 33, Kind: KindLoad, CPU: 2, Task: 3, Depth: 2, RIP: text + 7, Addr: 0xffff888000002008, HasAddr: true, Size: 4, New: 7,
			Percpu: true, PercpuCPU: 2, PercpuOff: 8, PercpuVar: "ftrace_bp_call_target"},
		{Seq: 33, Kind: KindLoad, CPU: 3, RIP: text + 9, Addr: 0xffff888000003010, HasAddr: true, Size: 1, New: 0xff,
			Percpu: true, PercpuCPU: 3, PercpuOff: 0x10},
		{Seq: math.MaxUint64, Kind: KindFault, CPU: 1, RIP: 0, Msg: "BUG"},
	}
	for i := range rows {
		if rows[i].Kind == KindInsn && rows[i].RIP == text+0x20 {
			rows[i].RegMask, rows[i].Regs[0], rows[i].Regs[7] = 1|1<<7, 0x1234, 0xffffc90000030008
		}
	}
	// Keep seq strictly increasing (rows inserted above reuse a number).
	for i := 1; i < len(rows); i++ {
		if rows[i].Seq <= rows[i-1].Seq {
			rows[i].Seq = rows[i-1].Seq + 1
		}
	}
	return rows
}

// loopRows returns n instruction rows of a tight loop (a fentry-style
// workload) with a store every few instructions, for size benchmarks.
func loopRows(n int) []Row {
	const text = 0xffffffff81000000
	body := []Row{
		insn(0, 0, text+0x00, 1, 0x0f, 0x1f, 0x44, 0x00, 0x00),
		insn(0, 0, text+0x05, 2, 0x48, 0x8b, 0x07),
		insn(0, 0, text+0x08, 2, 0x48, 0x83, 0xc0, 0x01),
		insn(0, 0, text+0x0c, 2, 0x48, 0x89, 0x07),
		insn(0, 0, text+0x0f, 6, 0x75, 0xef),
	}
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = body[i%len(body)]
		rows[i].Seq = uint64(i)
		rows[i].RFlags = 0x202 | uint64(i/len(body))&1<<2
	}
	return rows
}

// writeTrace writes rows with the fixture metadata and returns the file.
func writeTrace(t testing.TB, rows []Row, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, fixtureMeta(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if err := w.Append(&rows[i]); err != nil {
			t.Fatalf("append row %d: %v", i, err)
		}
	}
	w.SetFinal(fixtureFinal())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads every row of a trace.
func readAll(t testing.TB, data []byte, opts ...ReadOption) (*Reader, []Row) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, *row)
	}
	return r, rows
}

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// stringData returns a string array's data (retained) holding vals.
func stringData(mem memory.Allocator, vals []string) arrow.ArrayData {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	a := b.NewStringArray()
	defer a.Release()
	d := a.Data()
	d.Retain()
	return d
}

// mixedRows returns n rows shaped like a recorded trace's: instructions
// interleaved with their loads and stores, each instruction changing a
// register or two, so every per-kind column (and the register columns)
// alternates between null and set in short runs, as on a real trace.
func mixedRows(n int) []Row {
	const text, data = 0xffffffff81000000, 0xffff888000100000
	rows := make([]Row, n)
	for i := range rows {
		r := &rows[i]
		k := i / 4 // instruction number
		switch i % 4 {
		case 0, 2:
			*r = insn(0, 0, text+uint64(8*(k%64)), uint16(1+k%5), 0x48, 0x8b, 0x07)
			r.RFlags = 0x202
			r.RegMask = 1<<(k%3) | 1<<(3+k%7)
			r.Regs[k%3] = uint64(k)
			r.Regs[3+k%7] = data + uint64(8*(k%512))
		case 1:
			r.Kind, r.RIP = KindLoad, text+uint64(8*(k%64))
			r.Addr, r.HasAddr, r.Size, r.New = data+uint64(8*(k%512)), true, 8, uint64(k)
		case 3:
			r.Kind, r.RIP = KindWrite, text+uint64(8*(k%64))
			r.Addr, r.HasAddr, r.Size, r.Old, r.New = data+uint64(8*(k%512)), true, 8, uint64(k), uint64(k+1)
			if k%3 == 0 {
				r.Percpu, r.PercpuCPU, r.PercpuOff = true, 0, uint32(8*(k%16))
			}
		}
		r.Seq = uint64(i)
		r.CPU = uint16(k / 97 % 2)
	}
	return rows
}

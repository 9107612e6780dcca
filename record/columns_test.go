package record

import (
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
)

// TestRecorderFillsColumns: for every kind, the recorder turns an event
// with every field set into a row that stores every column the column
// table (format.Columns) declares for the kind, each with the event's
// (non-zero) value. The table is the one statement of which fields a kind
// fills; this catches a column the recorder forgets.
func TestRecorderFillsColumns(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var percpuOff uint32
	for _, s := range img.Symbols {
		if s.PerCPU && s.Size > 0 && s.Addr > 0 {
			percpuOff = uint32(s.Addr)
			break
		}
	}
	if percpuOff == 0 {
		t.Fatal("the slice has no sized per-CPU symbol at a non-zero offset")
	}
	for _, k := range emu.EventKinds() {
		t.Run(k.String(), func(t *testing.T) {
			sink := &tee{}
			rec := NewRecorder(sink, img)
			e := emu.Event{Seq: 1, Kind: k, CPU: 1, Task: 2, Depth: 1, RIP: 0xffffffff81000010,
				Len: 2, Op: 1, RSP: 0xffffc90000003f00, Flags: 0x246,
				Addr: 0xffff888000001008, Size: 8, Old: 0x11, New: 0x22, Alias: true, AliasAddr: 0xffffe00000000000,
				Percpu: true, PercpuCPU: 2, PercpuOff: percpuOff,
				Vector: emu.VecPF, Handler: 0xffffffff81000200, IST: 1, ErrCode: 2,
				PermOld: emu.PermRW, PermNew: emu.PermRX, Cause: emu.SerCPUID, Service: emu.SvcTextPoke,
				Args: [4]uint64{1, 2, 3, 4}, Ret: 5, Msg: "m"}
			e.Bytes[0], e.Bytes[1] = 0x90, 0x90
			e.RegMask = 1<<emu.NumRegs - 1
			for i := range e.Regs {
				e.Regs[i] = 0x100 + uint64(i)
			}
			rec.Event(&e)
			if err, _, _ := rec.Err(); err != nil {
				t.Fatal(err)
			}
			if len(sink.rows) != 1 {
				t.Fatalf("%d rows", len(sink.rows))
			}
			row := sink.rows[0]
			if row.Kind != format.Kind(k) {
				t.Fatalf("row kind %s", row.Kind)
			}
			for i, c := range format.Columns {
				declared := c.Common
				for _, u := range c.Uses {
					declared = declared || u.Kind == row.Kind
				}
				if !declared {
					continue
				}
				switch v := row.Field(i); v {
				case "null", "0", "0x0", "false", `""`, "":
					t.Errorf("column %s: %s (the column table declares it for %s)", c.Name, v, k)
				}
			}
			if t.Failed() {
				t.Logf("row %+v", row)
			}
		})
	}
}

package format

import (
	"slices"
	"testing"
)

// TestRowFields: every column is bound to a Row field, every condition the
// column table names is known, and StoredRow is exactly what a reader gives
// back for a row with every field set (with the optional columns' conditions
// true and false), for every kind.
func TestRowFields(t *testing.T) {
	for i, c := range Columns {
		f := rowFields[i]
		if f.copy == nil || (f.val == nil) == (f.text == nil) {
			t.Errorf("column %s: needs copy and one of val, text", c.Name)
		}
		if c.Hex && f.val == nil {
			t.Errorf("column %s: hex but not an integer", c.Name)
		}
		for _, u := range c.Uses {
			if _, ok := conds[u.Cond]; u.Cond != "" && !ok {
				t.Errorf("column %s: unknown condition %q for %s", c.Name, u.Cond, u.Kind)
			}
		}
	}

	var rows []Row
	for k := KindInsn; k.Valid(); k++ {
		for _, on := range []bool{true, false} {
			rows = append(rows, fullRow(uint64(len(rows)+1), k, on))
		}
	}
	_, got := readAll(t, writeTrace(t, rows))
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
	}
	for i := range rows {
		want := rows[i].StoredRow()
		if got[i] != want {
			t.Errorf("%s row %d:\n read       %+v\n StoredRow %+v", rows[i].Kind, i, got[i], want)
		}
		dst := fullRow(99, KindFault, true) // a reused destination holds an older row
		if rows[i].CopyStored(&dst); dst != want {
			t.Errorf("%s row %d: CopyStored into a used row:\n %+v\n %+v", rows[i].Kind, i, dst, want)
		}
		if again := want.StoredRow(); again != want {
			t.Errorf("%s row %d: StoredRow of a stored row changes it:\n %+v\n %+v", rows[i].Kind, i, again, want)
		}
		if want == rows[i] {
			t.Errorf("%s row %d: StoredRow cleared nothing (the row sets every field)", rows[i].Kind, i)
		}
	}
}

// fullRow is a row of kind k with every field set to a value the writer
// accepts; on sets the presence flags and conditions (HasAddr, Alias,
// Percpu, a per-CPU variable, a message, a service).
func fullRow(seq uint64, k Kind, on bool) Row {
	r := Row{Seq: seq, Kind: k, CPU: 1, Task: 2, Depth: 3, RIP: 0xffffffff81000010,
		Len: 3, Op: 1, RSP: 0xffffc90000003f00, RFlags: 0x246,
		Addr: 0xffff888000001008, HasAddr: on, Size: 8, Old: 0x1111, New: 0x2222,
		Alias: on, AliasAddr: 0xffffe00000000000, Percpu: on, PercpuCPU: 2, PercpuOff: 8,
		Vector: 14, HasVector: on, Handler: 0xffffffff81000200, IST: 1, ErrCode: 2, HasErrCode: on,
		PermOld: 3, PermNew: 5, Cause: 2, Args: [4]uint64{1, 2, 3, 4}, Ret: 5}
	for i := range r.Bytes {
		r.Bytes[i] = 0xa0 + byte(i)
	}
	for i := range r.Regs {
		r.Regs[i] = 0x1000 + uint64(i)
	}
	if on {
		r.RegMask = 1<<NumRegs - 1
		r.PercpuVar, r.Msg, r.Service = fixturePercpu[1], "a message", 1
	}
	if k == KindService {
		r.Service = 2
	}
	return r
}

func TestRowField(t *testing.T) {
	ins := fullRow(7, KindInsn, true)
	perm := fullRow(8, KindPerm, false)
	svc := fullRow(9, KindService, true)
	for _, tc := range []struct {
		name string
		row  *Row
		col  int
		want string
	}{
		{"common decimal", &ins, ColSeq, "7"},
		{"kind name", &ins, ColKind, "insn"},
		{"common hex", &ins, ColRIP, "0xffffffff81000010"},
		{"instruction bytes up to len", &ins, ColBytes, "a0 a1 a2"},
		{"column the kind does not fill", &ins, ColAddr, "null"},
		{"condition false", &perm, ColService, "null"},
		{"condition false (alias)", &perm, ColAliasAddr, "null"},
		{"decimal count", &perm, ColSize, "8"},
		{"bool", &perm, ColAlias, "false"},
		{"enum name", &svc, ColService, "set_memory_ro"},
		{"hex argument", &svc, ColRet, "0x5"},
		{"column out of range", &svc, NumColumns, "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.Field(tc.col); got != tc.want {
				t.Errorf("Field(%d) = %q, want %q", tc.col, got, tc.want)
			}
		})
	}
	// Every column of a full row prints, and only the stored ones non-null.
	for k := KindInsn; k.Valid(); k++ {
		r := fullRow(1, k, true)
		var null []string
		for i, c := range Columns {
			if (r.Field(i) == "null") == r.Stored(i) {
				t.Errorf("%s column %s: Field %q, Stored %v", k, c.Name, r.Field(i), r.Stored(i))
			}
			if !r.Stored(i) {
				null = append(null, c.Name)
			}
		}
		if slices.Contains(null, "seq") {
			t.Errorf("%s: a common column is null", k)
		}
	}
}

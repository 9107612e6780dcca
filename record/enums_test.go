package record

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
)

// TestEnumTwins: every emu enum the recorder casts into a trace column
// equals its format twin by name and value. format declares the trace's
// vocabulary (and imports nothing of ours); emu declares the machine's and
// must not import format; record converts one into the other with plain
// casts, so the two must agree on every value, in both directions: a value
// one side names and the other does not would be recorded under a wrong or
// missing name.
func TestEnumTwins(t *testing.T) {
	for _, tc := range []struct {
		name string
		// emuName and fmtName name value v, or say it is not declared.
		emuName, fmtName func(v int) (string, bool)
	}{
		{"event kind (column kind)",
			func(v int) (string, bool) { s := emu.EventKind(v).String(); return s, s != "kind?" },
			func(v int) (string, bool) { k := format.Kind(v); return k.String(), k.Valid() },
		},
		{"register (columns reg_*)",
			func(v int) (string, bool) {
				if v >= emu.NumRegs {
					return "", false
				}
				return emu.RegNames[v], true
			},
			func(v int) (string, bool) {
				if v >= format.NumRegs {
					return "", false
				}
				return format.RegNames[v], true
			},
		},
		{"service (column service)",
			func(v int) (string, bool) { s := emu.ServiceID(v).String(); return s, s != "service?" },
			func(v int) (string, bool) { return table(format.Services, v) },
		},
		{"serialize cause (column cause)",
			func(v int) (string, bool) { s := emu.SerializeCause(v).String(); return s, s != "cause?" },
			func(v int) (string, bool) { return table(format.Causes, v) },
		},
		{"vector (column vector)",
			func(v int) (string, bool) { s := emu.Vector(v).Name(); return s, !strings.HasPrefix(s, "vec ") },
			func(v int) (string, bool) { return table(format.Vectors, v) },
		},
		{"stop reason (metadata patchtrace.outcome)",
			func(v int) (string, bool) {
				s := emu.StopReason(v).String()
				return s, v != 0 && !strings.HasPrefix(s, "StopReason(")
			},
			func(v int) (string, bool) { return table(format.Outcomes, v) },
		},
		{"permission bit (columns perm_old, perm_new)",
			func(v int) (string, bool) {
				if v == 0 || v&(v-1) != 0 || v&int(emu.PermRWX) == 0 {
					return "", false
				}
				return strings.Trim(emu.Perm(v).String(), "-"), true
			},
			func(v int) (string, bool) { return table(format.Perms, v) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			for v := 0; v < 256; v++ {
				en, eok := tc.emuName(v)
				fn, fok := tc.fmtName(v)
				switch {
				case eok && !fok:
					t.Errorf("value %d: emu names it %q, format does not declare it", v, en)
				case !eok && fok:
					t.Errorf("value %d: format names it %q, emu does not declare it", v, fn)
				case eok && en != fn:
					t.Errorf("value %d: emu names it %q, format %q", v, en, fn)
				case eok:
					n++
				}
			}
			if n == 0 {
				t.Error("no values declared")
			}
		})
	}
	// Permission sets print the same way on both sides.
	for p := 0; p < 8; p++ {
		if e, f := emu.Perm(p).String(), format.PermString(uint8(p)); e != f {
			t.Errorf("permissions %d: emu prints %q, format %q", p, e, f)
		}
	}
}

// table names v from a format enum table, checking the table's own order
// and uniqueness on the way.
func table(vals []format.EnumValue, v int) (string, bool) {
	name, found := "", false
	for _, e := range vals {
		if int(e.Value) == v {
			if found {
				return fmt.Sprintf("duplicate %d (%s, %s)", v, name, e.Name), true
			}
			name, found = e.Name, true
		}
	}
	return name, found
}

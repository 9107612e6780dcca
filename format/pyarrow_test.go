package format

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// pyarrowDump reads an Arrow IPC file with pyarrow, validates every batch
// in full and prints every row as JSON (bytes as hex).
const pyarrowDump = `
import json, sys
import pyarrow as pa
import pyarrow.ipc as ipc
r = ipc.open_file(sys.argv[1])
out = []
for i in range(r.num_record_batches):
    b = r.get_batch(i)
    b.validate(full=True)
    for row in b.to_pylist():
        out.append({k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()})
json.dump({"rows": out, "metadata": {k.decode(): v.decode() for k, v in r.schema.metadata.items()}}, sys.stdout)
`

// TestPyarrowReadsEveryValue has pyarrow (the Arrow C++ library and the
// reference zstd) read a trace this package wrote, validate it in full and
// return every value, which must equal what the Go reader returns: every
// kind, nulls, a gap in seq, and the tight loop (zenc's and the counter's
// frames in their steady state). Skipped unless PATCHTRACE_PYTHON names a
// Python with pyarrow (./test.sh sets it).
func TestPyarrowReadsEveryValue(t *testing.T) {
	py := os.Getenv("PATCHTRACE_PYTHON")
	if py == "" {
		t.Skip("PATCHTRACE_PYTHON not set")
	}
	rows := loopRows(70000)
	for i := 30000; i < len(rows); i++ {
		rows[i].Seq += 3 // a gap: seq is not a counter in the second batch
	}
	for _, r := range fixtureRows() {
		if r.Seq != math.MaxUint64 {
			r.Seq += 80000
		}
		rows = append(rows, r)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	if err := os.WriteFile(path, writeTrace(t, rows, WithBatchRows(40000)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", pyarrowDump, path).Output()
	if err != nil {
		t.Fatalf("pyarrow: %v", err)
	}
	var got struct {
		Rows     []map[string]any
		Metadata map[string]string
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber() // exact integers: u64 values do not fit a float64
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got.Metadata[KeyStatus] != StatusComplete || got.Metadata[KeyEvents] != fmt.Sprint(len(rows)) {
		t.Errorf("pyarrow sees metadata status %q events %q", got.Metadata[KeyStatus], got.Metadata[KeyEvents])
	}
	i := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(got.Rows) {
			t.Fatalf("pyarrow read %d rows, the Go reader more", len(got.Rows))
		}
		want := pyRow(r, row)
		for k, v := range want {
			if g := got.Rows[i][k]; fmt.Sprint(g) != fmt.Sprint(v) {
				t.Fatalf("row %d (seq %d) column %s: pyarrow %v, Go %v", i, row.Seq, k, g, v)
			}
		}
		i++
	}
	if i != len(got.Rows) {
		t.Fatalf("pyarrow read %d rows, the Go reader %d", len(got.Rows), i)
	}
}

// pyRow is a row as pyarrow's to_pylist (through JSON) shows it: nulls as
// nil, integers as decimal strings, dictionary columns as strings, bytes
// as hex.
func pyRow(r *Reader, row *Row) map[string]any {
	m := map[string]any{}
	u := func(v uint64) any { return json.Number(strconv.FormatUint(v, 10)) }
	null := func(col int) bool { return !row.Stored(col) }
	set := func(name string, col int, v any) {
		if null(col) {
			m[name] = nil
		} else {
			m[name] = v
		}
	}
	m["seq"], m["kind"], m["cpu"], m["task"], m["depth"], m["rip"] = u(row.Seq), row.Kind.String(), u(uint64(row.CPU)), u(uint64(row.Task)), u(uint64(row.Depth)), u(row.RIP)
	set("len", ColLen, u(uint64(row.Len)))
	set("bytes", ColBytes, hex.EncodeToString(row.Bytes[:]))
	set("op", ColOp, r.OpName(row.Op))
	set("rsp", ColRSP, u(row.RSP))
	set("rflags", ColRFlags, u(row.RFlags))
	set("addr", ColAddr, u(row.Addr))
	set("size", ColSize, u(uint64(row.Size)))
	set("old", ColOld, u(row.Old))
	set("new", ColNew, u(row.New))
	set("alias", ColAlias, row.Alias)
	set("alias_addr", ColAliasAddr, u(row.AliasAddr))
	set("percpu_cpu", ColPercpuCPU, u(uint64(row.PercpuCPU)))
	set("percpu_off", ColPercpuOff, u(uint64(row.PercpuOff)))
	set("percpu_var", ColPercpuVar, row.PercpuVar)
	set("vector", ColVector, u(uint64(row.Vector)))
	set("handler", ColHandler, u(row.Handler))
	set("ist", ColIST, u(uint64(row.IST)))
	set("err_code", ColErrCode, u(row.ErrCode))
	set("perm_old", ColPermOld, u(uint64(row.PermOld)))
	set("perm_new", ColPermNew, u(uint64(row.PermNew)))
	set("cause", ColCause, row.Cause.String())
	set("service", ColService, row.Service.String())
	for k, col := range []int{ColArg0, ColArg1, ColArg2, ColArg3} {
		set(fmt.Sprintf("arg%d", k), col, u(row.Args[k]))
	}
	set("ret", ColRet, u(row.Ret))
	set("msg", ColMsg, row.Msg)
	return m
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// TestFamilyQueries runs the register and load queries of
// docs/trace-format.md (format.FamilyQueries), in DuckDB and in polars,
// exactly as printed, on a catalog trace's Parquet export, and checks
// their answers against `patchtrace events` (the register deltas folded
// from its --json lines; the last load and the last store to its bytes it
// lists) and against replay.Cursor's reconstruction.
func TestFamilyQueries(t *testing.T) {
	py := venvPython(t, "polars")
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	pq := filepath.Join(dir, "t.parquet")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	if code, _, errs := runCLI(t, "export", trace, "--parquet", pq); code != exitOK {
		t.Fatalf("export: %s", errs)
	}
	qs, _ := json.Marshal(format.FamilyQueries)
	qpath := filepath.Join(dir, "queries.json")
	os.WriteFile(qpath, qs, 0o644)
	cmd := exec.Command(py, filepath.Join("..", "..", "tests", "family_queries.py"), pq, qpath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("family_queries.py: %v\n%s", err, stderr.String())
	}
	var answers map[string]struct{ DuckDB, Polars []map[string]any }
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&answers); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, q := range format.FamilyQueries {
		t.Run(q.Family, func(t *testing.T) {
			if !strings.Contains(q.SQL, fmt.Sprintf("cpu = %d", q.CPU)) || !strings.Contains(q.SQL, fmt.Sprintf("seq <= %d", q.Seq)) ||
				!strings.Contains(q.Polars, fmt.Sprintf(`pl.col("cpu") == %d`, q.CPU)) || !strings.Contains(q.Polars, fmt.Sprintf(`pl.col("seq") <= %d`, q.Seq)) {
				t.Fatalf("the query text does not use its CPU %d and Seq %d", q.CPU, q.Seq)
			}
			a := answers[q.Title]
			if len(a.DuckDB) != 1 || len(a.Polars) != 1 {
				t.Fatalf("DuckDB %v, polars %v: want one row each", a.DuckDB, a.Polars)
			}
			var want map[string]uint64
			switch q.Family {
			case "reg_*":
				want = wantRegs(t, trace, q)
			case "load":
				want = wantLoad(t, trace, q)
			default:
				t.Fatalf("no check for family %q", q.Family)
			}
			for name, engine := range map[string]map[string]any{"DuckDB": a.DuckDB[0], "polars": a.Polars[0]} {
				if len(engine) != len(want) {
					t.Errorf("%s: columns %v, want %v", name, engine, want)
				}
				for col, w := range want {
					if got, ok := answerValue(engine[col]); !ok || got != w {
						t.Errorf("%s: %s = %v, want %#x", name, col, engine[col], w)
					}
				}
			}
		})
	}
}

// answerValue reads a query's value: a hex string (DuckDB printf('%x'))
// or a number.
func answerValue(v any) (uint64, bool) {
	switch v := v.(type) {
	case string:
		n, err := strconv.ParseUint(v, 16, 64)
		return n, err == nil
	case json.Number:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// wantRegs: each register's last value in the deltas `events --json` lists
// for the CPU up to the seq, which must equal the Cursor's.
func wantRegs(t *testing.T, trace string, q format.FamilyQuery) map[string]uint64 {
	code, out, errs := runCLI(t, "events", trace, "--json", "--cpu", strconv.Itoa(q.CPU), "--to", strconv.FormatUint(q.Seq, 10))
	if code != exitOK {
		t.Fatalf("events: %s", errs)
	}
	want := map[string]uint64{}
	for _, e := range jsonEvents(t, out) {
		regs, _ := e["regs"].(map[string]any)
		for name, v := range regs {
			want["reg_"+name], _ = strconv.ParseUint(v.(string), 0, 64)
		}
	}
	if len(want) != format.NumRegs {
		t.Fatalf("events lists %d registers for cpu%d: %v", len(want), q.CPU, want)
	}
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Seek(q.Seq); err != nil {
		t.Fatal(err)
	}
	rf := c.Regs(q.CPU)
	for i, name := range format.RegNames {
		if v, ok := rf.Get(i); !ok || v != want["reg_"+name] {
			t.Fatalf("%s: Cursor %#x (known %v), events %#x", name, v, ok, want["reg_"+name])
		}
	}
	return want
}

// wantLoad: the CPU's last load up to the seq and the last store to its
// bytes before it, as `events` lists them (--kind load, then --addr).
func wantLoad(t *testing.T, trace string, q format.FamilyQuery) map[string]uint64 {
	code, out, errs := runCLI(t, "events", trace, "--json", "--cpu", strconv.Itoa(q.CPU), "--kind", "load", "--to", strconv.FormatUint(q.Seq, 10))
	loads := jsonEvents(t, out)
	if code != exitOK || len(loads) == 0 {
		t.Fatalf("events: exit %d, %d loads: %s", code, len(loads), errs)
	}
	l := loads[len(loads)-1]
	addr, size, seq := num(l, "addr"), num(l, "size"), num(l, "seq")
	code, out, errs = runCLI(t, "events", trace, "--json", "--kind", "write",
		"--addr", fmt.Sprintf("%#x:%d", addr, size), "--to", strconv.FormatUint(seq-1, 10))
	writes := jsonEvents(t, out)
	if code != exitOK || len(writes) == 0 {
		t.Fatalf("events --addr: exit %d, %d writes: %s", code, len(writes), errs)
	}
	w := writes[len(writes)-1]
	return map[string]uint64{"load_seq": seq, "addr": addr, "size": size, "value": num(l, "new"),
		"writer_seq": num(w, "seq"), "writer_cpu": num(w, "cpu"), "writer_rip": num(w, "rip"), "stored": num(w, "new")}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// eventsTrace records a small 4-CPU run with small batches (so that
// seeking and truncation have batches to work with).
func eventsTrace(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp-nosync", "-o", path, "--batch-rows", "4096"); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	return path
}

func jsonEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v: %s", len(evs)+1, err, sc.Text())
		}
		evs = append(evs, m)
	}
	return evs
}

func num(m map[string]any, k string) uint64 {
	switch v := m[k].(type) {
	case float64:
		return uint64(v)
	case string:
		n, _ := strconv.ParseUint(v, 0, 64)
		return n
	}
	return 0
}

// TestEventsListsEveryRow: one line per row of the trace, in order, each
// naming the row's seq, cpu, task, depth, kind and rip; insn rows carry a
// decoded instruction, writes their address and values.
func TestEventsListsEveryRow(t *testing.T) {
	trace := eventsTrace(t)
	code, out, errs := runCLI(t, "events", trace, "--json")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	evs := jsonEvents(t, out)
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if uint64(len(evs)) != r.NumEvents() {
		t.Fatalf("%d lines, the trace has %d events", len(evs), r.NumEvents())
	}
	i := 0
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		e := evs[i]
		i++
		if num(e, "seq") != row.Seq || num(e, "cpu") != uint64(row.CPU) || num(e, "task") != uint64(row.Task) ||
			num(e, "depth") != uint64(row.Depth) || e["kind"] != row.Kind.String() || num(e, "rip") != row.RIP {
			t.Fatalf("row %+v listed as %v", *row, e)
		}
		switch row.Kind {
		case format.KindInsn:
			insn, _ := e["insn"].(string)
			op := strings.ToLower(r.OpName(row.Op))
			if insn == "" || insn == "(bad)" || (op != "int" && !strings.Contains(insn, strings.Fields(op)[0][:2])) {
				t.Fatalf("seq %d: op %s listed as %q", row.Seq, op, insn)
			}
			if e["bytes"] != fmt.Sprintf("%x", row.Instruction()) {
				t.Fatalf("seq %d: bytes %v, want %x", row.Seq, e["bytes"], row.Instruction())
			}
		case format.KindWrite:
			if num(e, "addr") != row.Addr || num(e, "old") != row.Old || num(e, "new") != row.New || num(e, "size") != uint64(row.Size) {
				t.Fatalf("seq %d: write %+v listed as %v", row.Seq, *row, e)
			}
			if row.Alias && (num(e, "alias_addr") != row.AliasAddr || !strings.Contains(e["what"].(string), "via alias")) {
				t.Fatalf("seq %d: alias write listed as %v", row.Seq, e)
			}
		}
	}
	// Each load names the store it read from: a write before it to its
	// bytes, whose stored bytes are the ones it read.
	bySeq := map[uint64]map[string]any{}
	for _, e := range evs {
		bySeq[num(e, "seq")] = e
	}
	named := 0
	for _, e := range evs {
		if e["kind"] != "load" || e["writer_seq"] == nil {
			continue
		}
		w := bySeq[num(e, "writer_seq")]
		la, ls, wa, ws := num(e, "addr"), num(e, "size"), num(w, "addr"), num(w, "size")
		if w["kind"] != "write" || num(w, "seq") >= num(e, "seq") || num(w, "cpu") != num(e, "writer_cpu") || wa >= la+ls || wa+ws <= la {
			t.Fatalf("load %v names writer %v", e, w)
		}
		for a := max(la, wa); a < min(la+ls, wa+ws); a++ {
			if byte(num(e, "new")>>(8*(a-la))) != byte(num(w, "new")>>(8*(a-wa))) {
				t.Fatalf("load %v: byte %#x differs from its writer %v", e, a, w)
			}
		}
		named++
	}
	if named < 1000 {
		t.Errorf("%d loads name their writer", named)
	}
	// The text listing has the same lines.
	code, text, _ := runCLI(t, "events", trace)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if code != exitOK || len(lines) != len(evs) {
		t.Fatalf("text: exit %d, %d lines, want %d", code, len(lines), len(evs))
	}
	for j := 0; j < len(lines); j += 997 {
		f := strings.Fields(lines[j])
		if f[0] != strconv.FormatUint(num(evs[j], "seq"), 10) || f[1] != fmt.Sprintf("cpu%d", num(evs[j], "cpu")) || f[4] != evs[j]["kind"] {
			t.Fatalf("line %d %q, json %v", j, lines[j], evs[j])
		}
	}
}

// TestEventsFilters: every filter lists exactly the lines of the full
// listing its predicate keeps (computed here from the full listing).
func TestEventsFilters(t *testing.T) {
	trace := eventsTrace(t)
	_, out, _ := runCLI(t, "events", trace, "--json")
	all := jsonEvents(t, out)
	last := num(all[len(all)-1], "seq")
	mid := last / 2
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	var traced format.Symbol
	for _, s := range r.Symbols() {
		if s.Name == "traced_fn" {
			traced = s
		}
	}
	r.Close()
	if traced.Size == 0 {
		t.Fatal("no traced_fn in the trace's symbols")
	}
	site := traced.Addr
	overlaps := func(a, n uint64) bool { return a < site+5 && a+n > site }
	for _, tc := range []struct {
		name string
		args []string
		keep func(e map[string]any) bool
	}{
		{"cpu", []string{"--cpu", "2"}, func(e map[string]any) bool { return num(e, "cpu") == 2 }},
		{"cpus", []string{"--cpu", "cpu0,3"}, func(e map[string]any) bool { return num(e, "cpu") == 0 || num(e, "cpu") == 3 }},
		{"task", []string{"--task", "3"}, func(e map[string]any) bool { return num(e, "task") == 3 }},
		{"kind", []string{"--kind", "trap,iret"}, func(e map[string]any) bool { return e["kind"] == "trap" || e["kind"] == "iret" }},
		{"from-to", []string{"--from", strconv.FormatUint(mid, 10), "--to", strconv.FormatUint(mid+5000, 10)},
			func(e map[string]any) bool { return num(e, "seq") >= mid && num(e, "seq") <= mid+5000 }},
		{"around", []string{"--around", fmt.Sprintf("%d:7", mid)}, func(e map[string]any) bool { return num(e, "seq")+7 >= mid && num(e, "seq") <= mid+7 }},
		{"around-default", []string{"--around", strconv.FormatUint(last, 10)}, func(e map[string]any) bool { return num(e, "seq")+10 >= last }},
		{"sym", []string{"--sym", "traced_fn", "--cpu", "1"}, func(e map[string]any) bool {
			return num(e, "cpu") == 1 && num(e, "rip") >= traced.Addr && num(e, "rip") < traced.Addr+traced.Size
		}},
		{"addr", []string{"--addr", "traced_fn:5"}, func(e map[string]any) bool {
			switch e["kind"] {
			case "insn":
				return overlaps(num(e, "rip"), uint64(len(e["bytes"].(string))/2))
			case "write", "load", "percpu_read":
				return overlaps(num(e, "addr"), num(e, "size"))
			case "perm":
				return strings.Contains(e["what"].(string), fmt.Sprintf("text page %#x", site&^0xfff)) ||
					strings.Contains(e["what"].(string), fmt.Sprintf("at %#x", site&^0xfff))
			}
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, append([]string{"events", trace, "--json"}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			got := jsonEvents(t, out)
			var want []map[string]any
			for _, e := range all {
				if tc.keep(e) {
					want = append(want, e)
				}
			}
			if len(want) == 0 {
				t.Fatal("the predicate keeps nothing: the test checks nothing")
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d", len(got), len(want))
			}
			// A listing that starts mid-file knows neither the registers'
			// previous values nor the stores before it: insn rows and the
			// source of a load may read differently.
			what := func(e map[string]any) string {
				w, _ := e["what"].(string)
				w, _, _ = strings.Cut(w, "; ") // the registers changed
				if i := strings.Index(w, " (stored at seq"); i >= 0 {
					w = w[:i]
				}
				return strings.TrimSuffix(w, " (from the slice image)")
			}
			for i := range got {
				if got[i]["seq"] != want[i]["seq"] || what(got[i]) != what(want[i]) && got[i]["kind"] != "insn" {
					t.Fatalf("event %d: %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
	for _, bad := range [][]string{
		{"--kind", "nosuch"}, {"--cpu", "x"}, {"--around", "x"}, {"--addr", "no_such_symbol"},
		{"--from", "10", "--to", "5"}, {"--sym", "no_such_symbol"},
		// A CPU the trace does not have listed nothing, exit 0: "no such
		// events" (the trace's CPUs are cpu0..cpuN-1).
		{"--cpu", "0,64"},
	} {
		if code, _, errs := runCLI(t, append([]string{"events", trace}, bad...)...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, %q", bad, code, errs)
		}
	}
}

// TestEventsTruncated: a cut file is listed up to its last complete
// batch, then an error says where it ends; exit 2. A damaged batch in a
// finished file stops the listing there the same way.
func TestEventsTruncated(t *testing.T) {
	trace := eventsTrace(t)
	full, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cut := filepath.Join(dir, "cut.arrow")
	os.WriteFile(cut, full[:len(full)*6/10], 0o644)
	r, err := format.Open(cut)
	if err != nil {
		t.Fatal(err)
	}
	readable := r.NumEvents()
	r.Close()
	code, out, errs := runCLI(t, "events", cut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitError || uint64(len(lines)) != readable || readable == 0 {
		t.Fatalf("exit %d, %d lines (the file has %d readable events): %s", code, len(lines), readable, errs)
	}
	lastSeq := strings.Fields(lines[len(lines)-1])[0]
	if !strings.Contains(errs, "truncated after") || !strings.Contains(errs, "after seq "+lastSeq) {
		t.Errorf("stderr %q does not say where the file ends (seq %s)", errs, lastSeq)
	}
	// A range that ends before the cut is listed whole: exit 0.
	if code, _, errs := runCLI(t, "events", cut, "--to", "100"); code != exitOK {
		t.Errorf("--to 100 on a cut file: exit %d %s", code, errs)
	}

	// A byte flipped inside a batch of a finished file.
	r, err = format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	n := r.NumBatches()
	r.Close()
	if n < 4 {
		t.Fatalf("%d batches", n)
	}
	bad := append([]byte(nil), full...)
	bad[len(bad)/2] ^= 0x55
	damaged := filepath.Join(dir, "damaged.arrow")
	os.WriteFile(damaged, bad, 0o644)
	code, out, errs = runCLI(t, "events", damaged)
	if code != exitError || !strings.Contains(errs, "corrupt") || !strings.Contains(errs, "readable events end after seq") || len(out) == 0 {
		t.Errorf("damaged: exit %d, %d bytes out, stderr %q", code, len(out), errs)
	}
}

// TestEventsPipe: the first line is written by itself (at once), and a
// reader that goes away (| head) ends the listing quietly with status 0.
func TestEventsPipe(t *testing.T) {
	trace := eventsTrace(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan [3]any, 1)
	go func() {
		var errb strings.Builder
		code := run([]string{"events", trace}, nil, pw, &errb)
		pw.Close()
		done <- [3]any{code, errb.String(), nil}
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(strings.TrimSpace(line), "0 ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	pr.Close()
	res := <-done
	if res[0] != exitOK || res[1] != "" {
		t.Fatalf("after the reader closed: exit %v, stderr %q", res[0], res[1])
	}
	// The first write holds the first line only.
	w := &firstWrite{}
	if code := run([]string{"events", trace}, nil, w, os.Stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if strings.Count(w.first, "\n") != 1 {
		t.Errorf("first write %q: want the first line alone", w.first)
	}
	// A writer that fails otherwise is an error.
	if code := run([]string{"events", trace}, nil, failWriter{}, &strings.Builder{}); code != exitError {
		t.Errorf("failing writer: exit %d", code)
	}
}

type firstWrite struct{ first string }

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.first == "" {
		w.first = string(p)
	}
	return len(p), nil
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, syscall.ENOSPC }

// TestEventsRegs: --regs gives after each event its CPU's whole register
// file, equal to the Cursor's reconstruction there, also for a listing
// that starts mid-file (whose registers come from before it).
func TestEventsRegs(t *testing.T) {
	trace := eventsTrace(t)
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mid := r.NumEvents() * 2 / 3
	code, out, errs := runCLI(t, "events", trace, "--json", "--regs", "--around", fmt.Sprintf("%d:40", mid))
	evs := jsonEvents(t, out)
	if code != exitOK || len(evs) != 81 {
		t.Fatalf("exit %d, %d events: %s", code, len(evs), errs)
	}
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, e := range evs {
		if err := c.Seek(num(e, "seq")); err != nil {
			t.Fatal(err)
		}
		got, _ := e["regs_after"].(map[string]any)
		rf := c.Regs(int(num(e, "cpu")))
		if len(got) != format.NumRegs {
			t.Fatalf("seq %d: regs_after %v: want all %d registers", num(e, "seq"), got, format.NumRegs)
		}
		for i, name := range format.RegNames {
			v, _ := rf.Get(i)
			if g, _ := got[name].(string); g != fmt.Sprintf("%#x", v) {
				t.Fatalf("seq %d cpu%d: %s %s, the Cursor %#x", num(e, "seq"), num(e, "cpu"), name, g, v)
			}
		}
	}
	code, text, _ := runCLI(t, "events", trace, "--regs", "--around", fmt.Sprintf("%d:2", mid))
	if lines := strings.Split(strings.TrimSpace(text), "\n"); code != exitOK || len(lines) != 10 || !strings.Contains(lines[1], "rflags=0x") {
		t.Errorf("text: exit %d:\n%s", code, text)
	}
}

// TestEventsSource: --json gives each event's rip as file:line ("source")
// and --src ends each text line with it, from the line table of the ELF
// the trace carries: the instructions of traced_fn are lines of
// lib/traced/traced.fentry.c.
func TestEventsSource(t *testing.T) {
	path := eventsTrace(t)
	code, out, errs := runCLI(t, "events", path, "--sym", "traced_fn", "--kind", "insn", "--to", "20000", "--json")
	if code != exitOK {
		t.Fatalf("events --json: exit %d: %s", code, errs)
	}
	evs := jsonEvents(t, out)
	if len(evs) == 0 {
		t.Fatal("no traced_fn instructions")
	}
	for _, e := range evs {
		if s, _ := e["source"].(string); !strings.HasPrefix(s, "lib/traced/traced.fentry.c:") {
			t.Fatalf("event %v: source %q", e["seq"], s)
		}
	}
	code, out, errs = runCLI(t, "events", path, "--sym", "traced_fn", "--kind", "insn", "--to", "20000", "--src")
	if code != exitOK {
		t.Fatalf("events --src: exit %d: %s", code, errs)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, "  @ lib/traced/traced.fentry.c:") {
			t.Fatalf("line without its source: %q", l)
		}
	}
	// Without --src the text is as before.
	_, out, _ = runCLI(t, "events", path, "--sym", "traced_fn", "--kind", "insn", "--to", "20000")
	if strings.Contains(out, " @ ") {
		t.Errorf("source without --src:\n%s", out)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// gdbPath returns gdb's path. Without gdb the test is skipped, except
// under CI=true where it fails: test.sh installs it.
func gdbPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("gdb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gdb not found: CI must run the debugger tests (test.sh installs it)")
		}
		t.Skip("gdb not found (./test.sh installs it)")
	}
	return p
}

// debugSession starts `patchtrace debug TRACE --once` and runs gdb in
// batch mode with the script it writes and cmds (each an -ex); it returns
// gdb's output split at `echo @@NAME\n` markers, and the whole output.
func debugSession(t *testing.T, trace string, cmds []string) (map[string]string, string) {
	t.Helper()
	gdb := gdbPath(t)
	dir := t.TempDir()
	pr, pw := io.Pipe()
	errb := &lockedWriter{w: &strings.Builder{}}
	done := make(chan int, 1)
	go func() {
		code := run([]string{"debug", trace, "--listen", "127.0.0.1:0", "--once", "--dir", dir}, nil, pw, errb)
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
	var banner []string
	for sc.Scan() {
		banner = append(banner, sc.Text())
		if strings.HasPrefix(sc.Text(), "  gdb -x ") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	script := filepath.Join(dir, "patchtrace.gdb")
	if !strings.Contains(strings.Join(banner, "\n"), "gdb -x "+script) {
		t.Fatalf("banner does not give the gdb command line:\n%s\n%s", strings.Join(banner, "\n"), errb.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"-nx", "-batch", "-ex", "set pagination off", "-ex", "set width 0", "-ex", "set confirm off", "-x", script}
	for _, c := range cmds {
		args = append(args, "-ex", c)
	}
	out, err := exec.CommandContext(ctx, gdb, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("debug exited %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("debug --once did not exit after gdb did:\n%s", errb.String())
	}
	parts := map[string]string{}
	name := ""
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(l), "@@"); ok {
			name = n
			continue
		}
		parts[name] += l
	}
	return parts, string(out)
}

// lockedWriter serializes writes from the server goroutine.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

var seqRE = regexp.MustCompile(`after seq (\d+);`)

func parseSeq(t *testing.T, s string) uint64 {
	t.Helper()
	m := seqRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no position in %q", s)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// gdbRegs parses `info registers` output: name -> first value column.
func gdbRegs(s string) map[string]string {
	regs := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			regs[f[0]] = f[1]
		}
	}
	return regs
}

// TestDebugWithGDB drives real gdb against patchtrace debug on a catalog
// trace (ftrace-int3-skip): a breakpoint at the patch site, continue,
// info threads, info registers equal to the trace's reconstruction there
// (replay.Cursor, what patchtrace events prints), reverse-stepi then stepi
// back to the same state, monitor finding 1 landing on the finding, and a
// watchpoint on the patch site's first byte, reverse-continued from the
// finding, stopping at the text_poke store that put the int3 there.
func TestDebugWithGDB(t *testing.T) {
	gdbPath(t)
	trace := filepath.Join(t.TempDir(), "fis.arrow")
	if code, _, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	syms := replay.NewSymbols(r.Symbols())
	site, _ := syms.Lookup("lp_fn2")
	res, err := analyze.AnalyzeFile(trace, analyze.All())
	if err != nil || len(res.Findings) == 0 {
		t.Fatalf("analyze: %v, %d findings", err, len(res.Findings))
	}
	regNames := []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "eflags"}
	parts, all := debugSession(t, trace, []string{
		"break *lp_fn2",
		"continue",
		"echo @@threads\\n", "info threads",
		"echo @@regs\\n", "info registers",
		"echo @@seq\\n", "monitor seq",
		"echo @@back\\n", "reverse-stepi", "monitor seq", "info registers",
		"echo @@fwd\\n", "stepi", "monitor seq", "info registers",
		"tbreak klp_redirected", "continue",
		"echo @@bt\\n", "bt", "monitor seq",
		"echo @@rfinish\\n", "reverse-finish", "monitor seq",
		"echo @@again\\n", "tbreak klp_redirected", "continue", "monitor seq",
		"echo @@finish\\n", "finish", "monitor seq",
		"echo @@finding\\n", "monitor finding 1", "thread 2", "x/i $pc",
		"delete",
		"echo @@watch\\n", "watch *(unsigned char *)lp_fn2", "reverse-continue", "monitor seq", "x/i $pc",
		"echo @@end\\n",
	})
	if !strings.Contains(all, "hit Breakpoint 1, ") || !strings.Contains(all, "in lp_fn2 ()") {
		t.Fatalf("continue did not stop at the breakpoint on lp_fn2:\n%s", all)
	}
	// info threads: one per CPU, with cpu, task and trap depth.
	for cpu := 0; cpu < 3; cpu++ {
		if !regexp.MustCompile(fmt.Sprintf(`Thread %d "cpu%d" \(cpu%d task \d+ trap depth \d+`, cpu+1, cpu, cpu)).MatchString(parts["threads"]) {
			t.Fatalf("info threads lacks cpu%d:\n%s", cpu, parts["threads"])
		}
	}
	// info registers at the stop equal the reconstruction there.
	seq := parseSeq(t, parts["seq"])
	cur, err := replay.NewCursor(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.Seek(seq); err != nil {
		t.Fatal(err)
	}
	next, _, err := cur.NextPC(1)
	if err != nil {
		t.Fatal(err)
	}
	var row format.Row
	cur.Scan(func(r *format.Row) bool { row = *r; return false })
	if row.Kind != format.KindInsn || row.RIP != site.Addr {
		t.Fatalf("stopped after seq %d: the next event is %s at %#x, not lp_fn2's instruction", seq, row.Kind, row.RIP)
	}
	regs := gdbRegs(parts["regs"])
	if got := regs["rip"]; got != fmt.Sprintf("%#x", next) || next != site.Addr {
		t.Fatalf("rip %s, the trace says %#x (lp_fn2 %#x)", got, next, site.Addr)
	}
	rf := cur.Regs(int(row.CPU))
	for i, name := range regNames {
		want := "<unavailable>"
		if v, ok := rf.Get(i); ok {
			want = fmt.Sprintf("%#x", v)
			if name == "eflags" {
				want = fmt.Sprintf("%#x", uint32(v))
			}
		}
		if regs[name] != want {
			t.Errorf("%s: gdb %s, the trace %s", name, regs[name], want)
		}
	}
	// ... and the register file patchtrace events --regs prints after the
	// CPU's last event up to there.
	code, evs, errs := runCLI(t, "events", trace, "--regs", "--cpu", fmt.Sprint(row.CPU), "--to", fmt.Sprint(seq))
	if code != exitOK {
		t.Fatalf("events --regs: %s", errs)
	}
	lines := strings.Split(strings.TrimSpace(evs), "\n")
	last := lines[len(lines)-1]
	for i, name := range regNames {
		want := regs[name]
		if name == "eflags" {
			name = "rflags"
		}
		if v, ok := rf.Get(i); ok && !strings.Contains(" "+last+" ", fmt.Sprintf(" %s=%#x ", name, v)) {
			t.Errorf("events --regs at seq %d says %q, gdb %s %s", seq, last, name, want)
		}
	}
	if regs["cs"] != "0x10" {
		t.Errorf("cs %s", regs["cs"])
	}
	if r.Meta().Regs && regs["rsp"] == "<unavailable>" {
		t.Fatalf("the trace records registers, gdb shows none:\n%s", parts["regs"])
	}
	// With registers, gdb unwinds through the slice's frames, finish
	// returns to the caller and reverse-finish goes back to the call.
	if r.Meta().Regs {
		kseq := parseSeq(t, parts["bt"])
		if !strings.Contains(parts["bt"], "#0  klp_redirected") || !regexp.MustCompile(`#1  0x[0-9a-f]+ in lp_fn[12] \(\)`).MatchString(parts["bt"]) {
			t.Fatalf("bt in klp_redirected:\n%s", parts["bt"])
		}
		if rs := parseSeq(t, parts["rfinish"]); rs >= kseq || !regexp.MustCompile(`lp_fn[12] \(`).MatchString(parts["rfinish"]) {
			t.Fatalf("reverse-finish (from after seq %d) to after seq %d:\n%s", kseq, rs, parts["rfinish"])
		}
		if as := parseSeq(t, parts["again"]); as != kseq {
			t.Fatalf("reverse-finish, continue: after seq %d, the breakpoint was after %d:\n%s", as, kseq, parts["again"])
		}
		if fs := parseSeq(t, parts["finish"]); fs <= kseq || !regexp.MustCompile(`lp_fn[12] \(`).MatchString(parts["finish"]) {
			t.Fatalf("finish from klp_redirected (after seq %d):\n%s", kseq, parts["finish"])
		}
	}
	// reverse-stepi, then stepi: back to the same position and registers.
	back, fwd := parts["back"], parts["fwd"]
	if bseq := parseSeq(t, back); bseq >= seq {
		t.Fatalf("reverse-stepi went from after seq %d to after %d", seq, bseq)
	}
	if fseq := parseSeq(t, fwd); fseq != seq {
		t.Fatalf("reverse-stepi, stepi: after seq %d, was %d", fseq, seq)
	}
	regsAfter := gdbRegs(fwd)
	for _, name := range append(regNames, "rip") {
		if regsAfter[name] != regs[name] {
			t.Errorf("after reverse-stepi, stepi: %s %s, was %s", name, regsAfter[name], regs[name])
		}
	}
	// monitor finding 1: just before the finding's first event.
	f := res.Findings[0]
	if fseq := parseSeq(t, parts["finding"]); fseq != f.SeqFirst-1 {
		t.Fatalf("monitor finding 1: after seq %d, the finding starts at %d:\n%s", fseq, f.SeqFirst, parts["finding"])
	}
	if !strings.Contains(parts["finding"], "<lp_fn2>:\tint3") {
		t.Fatalf("at finding 1, thread 2's pc is not the int3 at lp_fn2:\n%s", parts["finding"])
	}
	// The watchpoint, reverse-continued: stops before the text_poke
	// service whose store through the alias wrote the int3.
	w := parts["watch"]
	if !strings.Contains(w, "Hardware watchpoint 4") || !strings.Contains(w, "Old value = 204") || !strings.Contains(w, "text_poke ()") {
		t.Fatalf("reverse-continue with the watchpoint:\n%s", w)
	}
	wseq := parseSeq(t, w)
	if err := cur.Seek(wseq); err != nil {
		t.Fatal(err)
	}
	found := false
	cur.Scan(func(r *format.Row) bool {
		if r.Kind == format.KindWrite && r.Addr == site.Addr && r.Size == 1 {
			found = r.New == 0xcc && r.Alias
			return false
		}
		return !(r.Seq > wseq+16)
	})
	cur.Seek(wseq)
	cur.Scan(func(r *format.Row) bool { row = *r; return false })
	if !found || row.Kind != format.KindService || row.Service.String() != "text_poke" {
		t.Fatalf("the watchpoint stopped after seq %d: next %s %s; a text_poke store of 0xcc to lp_fn2 follows: %v", wseq, row.Kind, row.Service, found)
	}
}

// TestInspectExtractELF: inspect --extract-elf writes the ELF the trace
// carries, byte for byte, and debug writes the same one.
func TestInspectExtractELF(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	out := filepath.Join(dir, "slice.elf")
	if code, _, errs := runCLI(t, "inspect", trace, "--extract-elf", out); code != exitOK {
		t.Fatalf("inspect --extract-elf: %s", errs)
	}
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.Meta().ELF) || len(got) == 0 {
		t.Fatalf("extracted %d bytes, the trace carries %d", len(got), len(r.Meta().ELF))
	}
	// An existing file is replaced only with --force (it was replaced
	// silently: a scenario's own slice ELF included).
	os.WriteFile(out, []byte("keep"), 0o644)
	if code, _, errs := runCLI(t, "inspect", trace, "--extract-elf", out); code != exitError || !strings.Contains(errs, "--force") {
		t.Errorf("--extract-elf onto an existing file: exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Errorf("--extract-elf replaced an existing file without --force")
	}
	if code, _, errs := runCLI(t, "inspect", trace, "--extract-elf", out, "--force"); code != exitOK {
		t.Errorf("--extract-elf --force: exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, r.Meta().ELF) {
		t.Errorf("--extract-elf --force did not replace the file")
	}
	if code, _, errs := runCLI(t, "inspect", trace, "--extract-elf", filepath.Join(dir, "no", "such", "dir", "x.elf")); code != exitError || !strings.Contains(errs, "--extract-elf") {
		t.Fatalf("unwritable --extract-elf: exit %d: %s", code, errs)
	}
}

// transcriptCmds is the session docs/debugging.md shows.
var transcriptCmds = []string{
	"monitor finding 1",
	"thread 2",
	"x/2i $pc",
	"info threads",
	"watch *(unsigned char *)lp_fn2",
	"reverse-continue",
	"monitor events 4",
	"continue",
	"delete",
	"break ftrace_replace_code",
	"reverse-continue",
	"list",
}

// TestDebuggingDoc keeps the transcript in docs/debugging.md equal to a
// real session: gdb in batch mode with those commands against
// patchtrace debug on ftrace-int3-skip (seed 1), with the temporary
// directory and port written DIR and PORT (-update rewrites it).
func TestDebuggingDoc(t *testing.T) {
	gdbPath(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "ftrace-int3-skip-seed1.arrow")
	if code, _, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	var cmds []string
	for _, c := range transcriptCmds {
		cmds = append(cmds, "echo @@\\n", "echo (gdb) "+strings.ReplaceAll(c, `\`, `\\`)+"\\n", c)
	}
	_, all := debugSession(t, trace, cmds)
	var b strings.Builder
	started := false
	for _, l := range strings.SplitAfter(all, "\n") {
		if strings.TrimSpace(l) == "@@" {
			started = true
			continue
		}
		if started {
			b.WriteString(l)
		}
	}
	got := regexp.MustCompile(`/tmp/[^ \n]*?/(src|[^/ \n]+\.elf)`).ReplaceAllString(b.String(), "DIR/$1")
	got = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(got, "127.0.0.1:PORT")
	const path = "../../docs/debugging.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- transcript -->\n```\n"
	i := bytes.Index(doc, []byte(marker))
	if i < 0 {
		t.Fatalf("%s has no %q", path, marker)
	}
	j := bytes.Index(doc[i+len(marker):], []byte("```\n"))
	if j < 0 {
		t.Fatalf("%s: the transcript block does not end", path)
	}
	cur := string(doc[i+len(marker) : i+len(marker)+j])
	if cur == got {
		return
	}
	if *update {
		out := append([]byte{}, doc[:i+len(marker)]...)
		out = append(out, got...)
		out = append(out, doc[i+len(marker)+j:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("docs/debugging.md's transcript is stale (go test ./cmd/patchtrace -run DebuggingDoc -update):\n--- doc\n%s\n--- session\n%s", cur, got)
}

// TestDebugBadInput: a file that is not a trace is an error naming it
// (exit 2, nothing served); a truncated trace is served up to its cut,
// with a warning.
func TestDebugBadInput(t *testing.T) {
	dir := t.TempDir()
	bogus := filepath.Join(dir, "bogus.arrow")
	os.WriteFile(bogus, []byte("not a trace"), 0o644)
	code, _, errs := runCLI(t, "debug", bogus, "--once", "-q")
	if code != exitError || !strings.Contains(errs, "bogus.arrow") {
		t.Fatalf("debug on a non-trace: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "debug"); code != exitUsage || !strings.Contains(errs, "debug") {
		t.Fatalf("debug without a trace: exit %d: %s", code, errs)
	}
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp", "-o", trace, "--batch-rows", "4096"); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	b, _ := os.ReadFile(trace)
	cut := filepath.Join(dir, "cut.arrow")
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	pr, pw := io.Pipe()
	errb := &lockedWriter{w: &strings.Builder{}}
	done := make(chan int, 1)
	go func() {
		code := run([]string{"debug", cut, "--listen", "127.0.0.1:0", "--once", "-q", "--dir", filepath.Join(dir, "d")}, nil, pw, errb)
		pw.Close()
		done <- code
	}()
	sc := bufio.NewScanner(pr)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			addr, _, _ = strings.Cut(a, ";")
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatalf("no listening line: %s", errb.String())
	}
	// A client that connects and goes away mid-packet ends the session.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "$qSupp")
	nc.Close()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("debug exited %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("debug --once did not end when its client went away")
	}
	if !strings.Contains(errb.String(), "warning") || !strings.Contains(errb.String(), "cut") {
		t.Fatalf("no warning about the truncated trace: %s", errb.String())
	}
}

// TestStagedSourcesNotNewer: the staged sources get the ELF's time, so gdb
// (which compares whole seconds) never says a source is more recent than
// the executable, whatever second the staging ended in.
func TestStagedSourcesNotNewer(t *testing.T) {
	dir := t.TempDir()
	elf := filepath.Join(dir, "x.elf")
	src := filepath.Join(dir, "src", "base", "entry.S")
	for _, p := range []string{elf, src} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(elf, old, old); err != nil {
		t.Fatal(err)
	}
	if err := notNewerThan(filepath.Join(dir, "src"), elf); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(old) {
		t.Fatalf("staged source has time %v, the ELF %v", st.ModTime(), old)
	}
	if err := notNewerThan("", elf); err != nil {
		t.Fatalf("no sources staged: %v", err)
	}
}

// TestDebugHostileScenarioID: the scenario id a trace carries names the
// ELF debug writes, and that name goes into the gdb script; an id holding
// a newline (a hostile trace) ended the script's file line and made the
// next line a gdb command, "shell ..." run by gdb -x. The writer does not
// write such an id and the reader refuses it (a trace's id passes the
// scenario package's rule), so the forged file is a cut one (no checksums)
// with its header's id replaced: debug refuses it, naming the key, and
// writes no script.
func TestDebugHostileScenarioID(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "--max-insns", "2000", "-o", trace); code != exitFinding {
		t.Fatalf("record: %d %s", code, errs)
	}
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	md := *r.Meta()
	const evilID, stand = "x\nshell touch pwned\necho ", "x0shell0touch0pwned0echo0"
	md.Scenario = evilID
	if _, err := format.CreateFile(filepath.Join(dir, "refused.arrow"), md, false); err == nil || !strings.Contains(err.Error(), format.KeyScenario) {
		t.Fatalf("the writer takes scenario id %q: %v", evilID, err)
	}
	md.Scenario = stand
	evil := filepath.Join(dir, "evil.arrow")
	f, err := format.CreateFile(evil, md, false)
	if err != nil {
		t.Fatal(err)
	}
	for row, err := range r.Scan(format.AllColumns) {
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Append(row); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	f.SetFinal(md.Final)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(evil)
	if err != nil {
		t.Fatal(err)
	}
	b = b[:len(b)-10-int(binary.LittleEndian.Uint32(b[len(b)-10:]))] // cut before the footer
	if bytes.Count(b, []byte(stand)) != 1 || len(stand) != len(evilID) {
		t.Fatal("the stand-in id is not once in the header")
	}
	if err := os.WriteFile(evil, bytes.Replace(b, []byte(stand), []byte(evilID), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	errb := &lockedWriter{w: &strings.Builder{}}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"debug", evil, "--listen", "127.0.0.1:0", "--once", "-q", "--dir", filepath.Join(dir, "refused")}, nil, io.Discard, errb)
	}()
	select {
	case code := <-done:
		if errs := errb.String(); code != exitError || !strings.Contains(errs, format.KeyScenario) {
			t.Errorf("debug of a trace with scenario id %q: exit %d %q", evilID, code, errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("debug serves a trace with scenario id %q", evilID)
	}
	if _, err := os.Stat(filepath.Join(dir, "refused")); err == nil {
		t.Errorf("debug wrote its directory for the refused trace")
	}
}

// TestDebugKeepsAnotherELF: debug --dir never replaces an ELF there that
// is not the one the trace carries (it replaced the file silently, a
// slice rebuilt since the trace was recorded included); the same ELF is
// written again as before.
func TestDebugKeepsAnotherELF(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.arrow")
	if code, _, errs := runCLI(t, "record", "--max-insns", "2000", "-o", trace); code != exitFinding {
		t.Fatalf("record: %d %s", code, errs)
	}
	out := filepath.Join(dir, "d")
	os.MkdirAll(out, 0o755)
	elf := filepath.Join(out, "text-poke-bp.elf")
	os.WriteFile(elf, []byte("my own slice"), 0o644)
	pr, pw := io.Pipe()
	errb := &lockedWriter{w: &strings.Builder{}}
	done := make(chan int, 1)
	go func() {
		code := run([]string{"debug", trace, "--listen", "127.0.0.1:0", "--once", "-q", "--dir", out}, nil, pw, errb)
		pw.Close()
		done <- code
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				a, _, _ = strings.Cut(a, ";")
				listening <- a
			}
		}
	}()
	select {
	case code := <-done:
		if code != exitError || !strings.Contains(errb.String(), "--dir") {
			t.Errorf("debug --dir with another ELF there: exit %d %q", code, errb.String())
		}
	case addr := <-listening:
		t.Errorf("debug wrote its files and serves")
		if nc, err := net.Dial("tcp", addr); err == nil {
			nc.Close() // end the session
		}
		<-done
	case <-time.After(30 * time.Second):
		t.Fatal("debug neither failed nor served")
	}
	if b, _ := os.ReadFile(elf); string(b) != "my own slice" {
		t.Errorf("debug replaced %s", elf)
	}
}

package gdbserver

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

const lpFn2 = "lp_fn2"

func symAddr(t testing.TB, s *Server, name string) uint64 {
	t.Helper()
	sym, ok := s.t.syms.Lookup(name)
	if !ok {
		t.Fatalf("no symbol %s", name)
	}
	return sym.Addr
}

// nextRow returns the first event after the position.
func nextRow(t testing.TB, s *Server) format.Row {
	t.Helper()
	var out format.Row
	found := false
	if err := s.t.cur.Scan(func(r *format.Row) bool { out, found = *r, true; return false }); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no event after the position")
	}
	return out
}

// stopReply parses a T packet's thread and reason.
func parseStop(t testing.TB, reply string) (cpu int, reason string) {
	t.Helper()
	rest, ok := strings.CutPrefix(reply, "T05thread:")
	if !ok {
		t.Fatalf("stop reply %q", reply)
	}
	th, rest, _ := strings.Cut(rest, ";")
	n, err := strconv.ParseUint(th, 16, 32)
	if err != nil {
		t.Fatalf("stop reply %q: thread %q", reply, th)
	}
	_, reason, _ = strings.Cut(rest, ";") // after core:N;
	return int(n) - 1, reason
}

// TestBreakpointStopsBeforeInstruction: continue stops just before an
// instruction at the breakpoint, on the CPU that runs it, with the pc
// there, and memory at the pc holding the bytes that CPU executes (text as
// patched at that point); every hit of the trace, in order.
func TestBreakpointStopsBeforeInstruction(t *testing.T) {
	s, r := newServer(t)
	addr := symAddr(t, s, lpFn2)
	// The hits the trace has: the insn rows at lp_fn2.
	var hits []uint64
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if row.Kind == format.KindInsn && row.RIP == addr {
			hits = append(hits, row.Seq)
		}
	}
	if len(hits) < 10 {
		t.Fatalf("only %d hits", len(hits))
	}
	c := dial(t, s)
	c.ask(fmt.Sprintf("Z0,%x,1", addr))
	for i, want := range hits[:10] {
		cpu, reason := parseStop(t, c.ask("c"))
		if reason != "swbreak:;" {
			t.Fatalf("hit %d: reason %q", i, reason)
		}
		row := nextRow(t, s)
		if row.Seq != want || int(row.CPU) != cpu || row.RIP != addr {
			t.Fatalf("hit %d: stopped before seq %d (cpu%d rip %#x), want seq %d at %#x on cpu%d", i, row.Seq, row.CPU, row.RIP, want, addr, cpu)
		}
		c.ask("Hg" + tid(cpu))
		g := c.ask("g")
		if pc := g[16*16 : 16*16+16]; pc != string(appendHex(nil, le64(addr))) {
			t.Fatalf("hit %d: rip in g %s, want %#x", i, pc, addr)
		}
		mem := c.ask(fmt.Sprintf("m%x,%x", addr, row.Len))
		if want := string(appendHex(nil, row.Instruction())); mem != want {
			t.Fatalf("hit %d: memory at the pc %s, the CPU executes %s", i, mem, want)
		}
	}
	// Backwards, the same hits in reverse order.
	for i := 8; i >= 0; i-- {
		_, reason := parseStop(t, c.ask("bc"))
		if row := nextRow(t, s); reason != "swbreak:;" || row.Seq != hits[i] {
			t.Fatalf("reverse hit %d: reason %q, before seq %d, want %d", i, reason, row.Seq, hits[i])
		}
	}
	if _, reason := parseStop(t, c.ask("bc")); reason != "replaylog:begin;" {
		t.Fatalf("reverse past the first hit: %q", reason)
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// snapshot is what gdb sees of a position: every thread's registers and
// the position.
func snapshot(t testing.TB, c *client, s *Server) string {
	var b strings.Builder
	seq, at, _ := s.Position()
	fmt.Fprintf(&b, "seq %d %v\n", seq, at)
	for cpu := 0; cpu < s.t.ncpu; cpu++ {
		c.ask("Hg" + tid(cpu))
		fmt.Fprintf(&b, "cpu%d %s\n", cpu, c.ask("g"))
	}
	return b.String()
}

// TestStepBackAndForth: at random breakpoint stops, n reverse steps then
// n steps of the stopped CPU return to the same state (position and every
// thread's registers), and n steps then n reverse steps too.
func TestStepBackAndForth(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	for _, sym := range []string{lpFn2, "text_poke", "asm_exc_int3"} {
		c.ask(fmt.Sprintf("Z0,%x,1", symAddr(t, s, sym)))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 6; i++ {
		cpu, _ := parseStop(t, c.ask("c"))
		n := 1 + rng.IntN(25)
		start := snapshot(t, c, s)
		c.ask("Hc" + tid(cpu))
		for j := 0; j < n; j++ {
			c.ask("bs")
		}
		if snapshot(t, c, s) == start {
			t.Fatalf("stop %d: %d reverse steps did not move", i, n)
		}
		for j := 0; j < n; j++ {
			c.ask(fmt.Sprintf("vCont;s:%s;c", tid(cpu)))
		}
		if got := snapshot(t, c, s); got != start {
			t.Fatalf("stop %d, cpu%d: %d reverse steps then %d steps:\n%s\nwant\n%s", i, cpu, n, n, got, start)
		}
		for j := 0; j < n; j++ {
			c.ask("s")
		}
		for j := 0; j < n; j++ {
			c.ask("bs")
		}
		if got := snapshot(t, c, s); got != start {
			t.Fatalf("stop %d, cpu%d: %d steps then %d reverse steps:\n%s\nwant\n%s", i, cpu, n, n, got, start)
		}
		c.ask("Hc-1")
	}
}

// TestStepExecutesOneInstruction: each step of a CPU moves to just before
// its next instruction, taking the interrupts delivered in between.
func TestStepExecutesOneInstruction(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	// cpu1's step rows from the start position on.
	var want []uint64
	if err := s.t.scan(func(row *format.Row) bool {
		if row.CPU == 1 && isStepRow(row) {
			want = append(want, row.Seq)
		}
		return len(want) < 400
	}); err != nil {
		t.Fatal(err)
	}
	c.ask("Hc2")
	for i := 1; i < len(want); i++ {
		c.ask("s")
		if row := nextRow(t, s); row.Seq > want[i] {
			t.Fatalf("step %d: before seq %d, want %d", i, row.Seq, want[i])
		}
		if seq, _, _ := s.Position(); seq != want[i]-1 {
			t.Fatalf("step %d: after seq %d, want just before %d", i, seq, want[i])
		}
	}
}

// TestReverseWatchFindsTextPoke: from the first finding, a write
// watchpoint on the patch site's first byte, reverse-continued, stops
// before the text_poke service whose store through the alias put the
// int3 there; forwards again, it stops after that store.
func TestReverseWatchFindsTextPoke(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	addr := symAddr(t, s, lpFn2)
	fs, err := s.getFindings()
	if err != nil || len(fs) == 0 {
		t.Fatalf("findings: %v (%d)", err, len(fs))
	}
	out := c.monitor("finding 1")
	if !strings.Contains(out, "missed-call") || !strings.Contains(out, "thread 2") {
		t.Fatalf("monitor finding 1: %q", out)
	}
	if row := nextRow(t, s); row.Seq != fs[0].Seq {
		t.Fatalf("finding 1 at seq %d: before seq %d", fs[0].Seq, row.Seq)
	}
	if got := c.ask(fmt.Sprintf("m%x,1", addr)); got != "cc" {
		t.Fatalf("lp_fn2's first byte at the finding: %s, want cc", got)
	}
	if got := c.ask(fmt.Sprintf("Z2,%x,1", addr)); got != "OK" {
		t.Fatalf("Z2: %q", got)
	}
	cpu, reason := parseStop(t, c.ask("bc"))
	if reason != fmt.Sprintf("watch:%x;", addr) {
		t.Fatalf("reverse-continue: reason %q", reason)
	}
	row := nextRow(t, s)
	if row.Kind != format.KindService || row.Service.String() != "text_poke" || int(row.CPU) != cpu {
		t.Fatalf("stopped before seq %d, a %s on cpu%d, want the text_poke service of cpu%d", row.Seq, row.Kind, row.CPU, cpu)
	}
	if got := c.ask(fmt.Sprintf("m%x,1", addr)); got == "cc" {
		t.Fatal("before the store, lp_fn2's first byte is already cc")
	}
	pc, _ := s.t.pc(cpu)
	if pc != symAddr(t, s, "text_poke") {
		t.Fatalf("pc %#x, want text_poke", pc)
	}
	if _, reason := parseStop(t, c.ask("c")); reason != fmt.Sprintf("watch:%x;", addr) {
		t.Fatalf("continue: reason %q", reason)
	}
	if got := c.ask(fmt.Sprintf("m%x,1", addr)); got != "cc" {
		t.Fatalf("after the store, lp_fn2's first byte is %s", got)
	}
}

// TestRegisters: the g packet carries, for every thread, the register
// file the cursor folds at the position ('x' where the trace does not
// say), rip as the thread's next instruction, cs, and gs_base as the
// per-CPU area.
func TestRegisters(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	c.ask(fmt.Sprintf("Z0,%x,1", symAddr(t, s, lpFn2)))
	for i := 0; i < 3; i++ {
		c.ask("c")
		for cpu := 0; cpu < s.t.ncpu; cpu++ {
			c.ask("Hg" + tid(cpu))
			g := c.ask("g")
			rf := s.t.cur.Regs(cpu)
			off := 0
			for n, reg := range registers {
				field := g[off : off+reg.bits/4]
				off += reg.bits / 4
				if p := c.ask("p" + strconv.FormatInt(int64(n), 16)); p != field {
					t.Fatalf("cpu%d %s: p %s, g %s", cpu, reg.name, p, field)
				}
				var want string
				switch {
				case reg.fold >= 0:
					if v, ok := rf.Get(reg.fold); ok {
						want = string(appendHex(nil, le64(v)[:reg.bits/8]))
					}
				case reg.fold == regRIP:
					if pc, ok := s.t.pc(cpu); ok {
						want = string(appendHex(nil, le64(pc)))
					}
				case reg.name == "cs":
					want = "10000000"
				case reg.name == "gs_base":
					want = string(appendHex(nil, le64(s.t.gsBase[cpu])))
				}
				if want == "" {
					want = strings.Repeat("x", reg.bits/4)
				}
				if field != want {
					t.Fatalf("cpu%d %s: %s, want %s", cpu, reg.name, field, want)
				}
			}
			if off != len(g) {
				t.Fatalf("g has %d digits, the registers %d", len(g), off)
			}
			// A trace with register deltas knows every general register
			// once the CPU has started (its start row carries them all).
			if rf := s.t.cur.Regs(cpu); s.t.md.Regs && rf.Known != 1<<17-1 {
				t.Fatalf("cpu%d: registers known %#x at a stop of a trace with deltas", cpu, rf.Known)
			}
		}
	}
}

// TestThreadsAndMonitor: the thread list, extra info and qXfer:threads
// name every CPU; monitor seq moves to just before an event, monitor
// events lists around it.
func TestThreadsAndMonitor(t *testing.T) {
	s, r := newServer(t)
	c := dial(t, s)
	if got := c.ask("qfThreadInfo"); got != "m1,2,3" {
		t.Fatalf("qfThreadInfo: %q", got)
	}
	if got := c.ask("qsThreadInfo"); got != "l" {
		t.Fatalf("qsThreadInfo: %q", got)
	}
	info, err := decodeHex(c.ask("qThreadExtraInfo,3"))
	if err != nil || !strings.HasPrefix(string(info), "cpu2 task ") {
		t.Fatalf("extra info: %q %v", info, err)
	}
	x := c.ask("qXfer:threads:read::0,fff")
	if !strings.HasPrefix(x, "l") || strings.Count(x, "<thread ") != 3 || !strings.Contains(x, `name="cpu2"`) {
		t.Fatalf("qXfer:threads: %q", x)
	}
	xml := ""
	for off := 0; ; off += 100 {
		part := c.ask(fmt.Sprintf("qXfer:features:read:target.xml:%x,64", off))
		xml += part[1:]
		if part[0] == 'l' {
			break
		}
	}
	if xml != targetXML {
		t.Fatal("target.xml read in pieces differs")
	}
	// The first text_poke store through the alias (cpu0's).
	var poke uint64
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if row.Kind == format.KindWrite && row.Alias {
			poke = row.Seq
			break
		}
	}
	c.ask("Hg2")
	out := c.monitor(fmt.Sprintf("seq %d", poke))
	if row := nextRow(t, s); row.Seq != poke || !strings.Contains(out, fmt.Sprintf("after seq %d", poke-1)) || !strings.Contains(out, "thread 1") {
		t.Fatalf("monitor seq %d: before %d: %q", poke, row.Seq, out)
	}
	if got := c.ask("?"); !strings.HasPrefix(got, "T05thread:1;") {
		t.Fatalf("stop reply after monitor seq: %q", got)
	}
	// gdb is not told of the move: 'g' still reads the thread it selected
	// (cpu1), not the one monitor names.
	pc0, _ := s.t.pc(0)
	pc1, _ := s.t.pc(1)
	if g := c.ask("g"); pc0 == pc1 || g[16*16:16*16+16] != string(appendHex(nil, le64(pc1))) {
		t.Fatalf("after monitor seq, g reads rip %s; cpu1's is %#x (cpu0's %#x)", g[16*16:16*16+16], pc1, pc0)
	}
	ev := c.monitor("events 2")
	lines := strings.Split(strings.TrimSpace(ev), "\n")
	if len(lines) != 6 || lines[2] != "--- position ---" || !strings.Contains(lines[3], fmt.Sprint(poke)) || !strings.Contains(lines[3], "store via alias") {
		t.Fatalf("monitor events 2:\n%s", ev)
	}
	// A count that would format the whole trace (GBs for 10M events)
	// is refused, naming the bound; the bound itself is served.
	if out := c.monitor("events 1000000000"); !strings.Contains(out, "error: monitor events 1000000000: at most 1000") || strings.Contains(out, "--- position ---") {
		t.Fatalf("monitor events 1000000000: %.300q", out)
	}
	if out := c.monitor(fmt.Sprintf("events %d", MaxMonitorEvents)); !strings.Contains(out, "--- position ---") {
		t.Fatalf("monitor events %d: %.300q", MaxMonitorEvents, out)
	}
	if out := c.monitor("seq 99999999"); !strings.Contains(out, "error: the trace has no event") {
		t.Fatalf("monitor seq beyond the end: %q", out)
	}
	if out := c.monitor("finding 7"); !strings.Contains(out, "no finding 7") {
		t.Fatalf("monitor finding 7: %q", out)
	}
}

// BenchmarkSeek measures what a debugger pays to go to a random event
// (monitor seq) and to step back (reverse-stepi) in bench-fentry's trace
// of ~25M events (PATCHTRACE_BENCH_ITERS iterations of its loop, default
// its own 1,000,000), after New has read it through once (reported as
// index-s, with the snapshots' count and bytes).
func BenchmarkSeek(b *testing.B) {
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("PATCHTRACE_BENCH_ITERS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		spec.Params["bench_iters"] = n
	}
	path := filepath.Join(b.TempDir(), "bench.arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}}); err != nil {
		b.Fatal(err)
	}
	r, err := format.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	s, err := New(Config{Reader: r})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	index := time.Since(start).Seconds()
	n, _, bytes := s.t.cur.Snapshots()
	report := func(b *testing.B) {
		b.ReportMetric(float64(r.NumEvents()), "events")
		b.ReportMetric(index, "index-s")
		b.ReportMetric(float64(n), "snapshots")
		b.ReportMetric(float64(bytes)/(1<<20), "snapshot-MiB")
	}
	b.Run("seek", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 1))
		for b.Loop() {
			if _, err := s.t.gotoEvent(rng.Uint64N(r.NumEvents())); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("step-back", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.t.stepBack(0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("step", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.t.step(0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEndOfTrace: continuing past every hit stops at the end of the trace
// with the replaylog reason on a thread whose pc gdb can read (a halted
// CPU's is the address after its HLT, the halt row's rip), so that gdb can
// step back from there; a reverse step then a step return to the end.
func TestEndOfTrace(t *testing.T) {
	s, r := newServer(t)
	c := dial(t, s)
	cpu, reason := parseStop(t, c.ask("c"))
	if reason != "replaylog:end;" {
		t.Fatalf("continue without breakpoints: reason %q", reason)
	}
	end, _, _ := s.Position()
	if end != r.NumEvents()-1 {
		t.Fatalf("stopped after seq %d, the trace ends at %d", end, r.NumEvents()-1)
	}
	cc, _ := s.t.cur.CPU(cpu)
	pc, ok := s.t.pc(cpu)
	if !ok || cc.Last != format.KindHalt || pc != cc.RIP {
		t.Fatalf("cpu%d at the end: pc %#x (known %v), last event %s at %#x", cpu, pc, ok, cc.Last, cc.RIP)
	}
	g := c.ask("g")
	if rip := g[16*16 : 16*16+16]; rip != string(appendHex(nil, le64(pc))) {
		t.Fatalf("rip in g at the end: %s", rip)
	}
	c.ask("Hc" + tid(cpu))
	c.ask("bs")
	if seq, _, _ := s.Position(); seq >= end {
		t.Fatal("reverse step at the end did not move")
	}
	if _, reason := parseStop(t, c.ask("s")); reason != "replaylog:end;" {
		t.Fatalf("stepping the CPU's last instruction: reason %q", reason)
	}
	if seq, _, _ := s.Position(); seq != end {
		t.Fatalf("reverse step, step at the end: after seq %d, want %d", seq, end)
	}
}

// TestReadWatch: a read watchpoint (Z3) on a variable stops after the
// first instruction that loads it (the whole array ftrace_recs), forwards, and just before it,
// backwards; an access watchpoint (Z4) catches its stores too.
func TestReadWatch(t *testing.T) {
	s, r := newServer(t)
	sym, ok := s.t.syms.Lookup("ftrace_recs")
	if !ok {
		t.Fatal("no ftrace_recs")
	}
	// The first load of it, and the first store, in the trace.
	var load, store format.Row
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		hit := row.Addr < sym.Addr+sym.Size && row.Addr+uint64(row.Size) > sym.Addr
		if row.Kind == format.KindLoad && hit && load.Seq == 0 {
			load = *row
		}
		if row.Kind == format.KindWrite && hit && store.Seq == 0 {
			store = *row
		}
	}
	if load.Seq == 0 || store.Seq == 0 {
		t.Fatal("the trace neither loads nor stores ftrace_recs")
	}
	c := dial(t, s)
	if got := c.ask(fmt.Sprintf("Z3,%x,%x", sym.Addr, sym.Size)); got != "OK" {
		t.Fatalf("Z3: %q", got)
	}
	cpu, reason := parseStop(t, c.ask("c"))
	if reason != fmt.Sprintf("rwatch:%x;", sym.Addr) || cpu != int(load.CPU) {
		t.Fatalf("continue: cpu%d reason %q, want rwatch on cpu%d", cpu, reason, load.CPU)
	}
	if seq, _, _ := s.Position(); seq < load.Seq {
		t.Fatalf("stopped after seq %d, before the load (%d)", seq, load.Seq)
	}
	_, reason = parseStop(t, c.ask("bc"))
	if reason != fmt.Sprintf("rwatch:%x;", sym.Addr) {
		t.Fatalf("reverse continue: %q", reason)
	}
	// Just before the loading instruction: the CPU's next step row, then
	// the load among its rows.
	row := nextRow(t, s)
	if seq, _, _ := s.Position(); !isStepRow(&row) || int(row.CPU) != cpu || seq >= load.Seq {
		t.Fatalf("reverse: after seq %d, next %s on cpu%d; the load is seq %d", seq, row.Kind, row.CPU, load.Seq)
	}
	c.ask(fmt.Sprintf("z3,%x,%x", sym.Addr, sym.Size))
	c.ask(fmt.Sprintf("Z4,%x,%x", sym.Addr, sym.Size))
	c.monitor("seq 0")
	first := min(load.Seq, store.Seq)
	_, reason = parseStop(t, c.ask("c"))
	if seq, _, _ := s.Position(); reason != fmt.Sprintf("awatch:%x;", sym.Addr) || seq < first {
		t.Fatalf("access watch: after seq %d reason %q; first access %d", seq, reason, first)
	}
}

// TestWatchAndBreakBounds: a client cannot set watchpoints or breakpoints
// without bound (each resume checks every store against every watchpoint:
// thousands made continue cost events times watchpoints); past the bound
// the server answers an error, as a target out of debug registers does,
// and removing one frees its place. A watched range that runs to the top
// of the address space still catches accesses (its end wrapped to 0 and
// matched nothing).
func TestWatchAndBreakBounds(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	for i := range MaxWatchpoints {
		if got := c.ask(fmt.Sprintf("Z2,%x,8", 0x1000+8*i)); got != "OK" {
			t.Fatalf("watchpoint %d: %q", i, got)
		}
	}
	if got := c.ask(fmt.Sprintf("Z2,%x,8", 0x1000+8*MaxWatchpoints)); !strings.HasPrefix(got, "E") {
		t.Fatalf("watchpoint %d: %q, want an error", MaxWatchpoints+1, got)
	}
	if got := c.ask("z2,1000,8"); got != "OK" {
		t.Fatalf("remove a watchpoint: %q", got)
	}
	if got := c.ask(fmt.Sprintf("Z2,%x,8", 0x1000+8*MaxWatchpoints)); got != "OK" {
		t.Fatalf("a watchpoint in the freed place: %q", got)
	}
	for i := range MaxBreakpoints {
		s.t.bps[uint64(i)] = true
	}
	if got := c.ask("Z0,ffffffff81000000,1"); !strings.HasPrefix(got, "E") {
		t.Fatalf("breakpoint %d: %q, want an error", MaxBreakpoints+1, got)
	}
	if got := c.ask("Z0,0,1"); got != "OK" {
		t.Fatalf("a breakpoint already set: %q", got)
	}
	if w := (watch{kind: '2', addr: 0xffffffffffffff00, n: 0x200}); !w.hits(0xffffffffffffff10, 8) {
		t.Error("a watch running past the top of the address space misses an access inside it")
	}
}

// TestMonitorFindingIncomplete: monitor finding over an analysis that is
// incomplete (a run stopped on an unsupported instruction, a cut trace)
// says so, never a bare "no findings" a user reads as clean.
func TestMonitorFindingIncomplete(t *testing.T) {
	s, _ := newServer(t)
	s.cfg.Findings = func() ([]Finding, error) { return nil, nil }
	s.cfg.FindingsNote = func() string {
		return "the run is incomplete: it stopped on an instruction the emulator does not implement"
	}
	c := dial(t, s)
	out := c.monitor("finding")
	if !strings.Contains(out, "INCOMPLETE (not clean): the run is incomplete") || !strings.Contains(out, "no findings up to there") {
		t.Fatalf("monitor finding: %q", out)
	}
	s.cfg.FindingsNote = func() string { return "" }
	if out := c.monitor("finding"); out != "no findings\n" {
		t.Fatalf("monitor finding, complete: %q", out)
	}
}

// TestRecordedClaimForged: a trace recorded without loads whose metadata
// was rewritten to claim them (patchtrace.recorded) is not believed: read
// and access watchpoints are refused as on a trace without loads (they
// would never fire: a false "nothing read here"), and monitor finding
// says why. The trace as recorded says the same by having no loads.
func TestRecordedClaimForged(t *testing.T) {
	orig := testTrace(t, true)
	forged := filepath.Join(t.TempDir(), "forged.arrow")
	testkit.RewriteTrace(t, orig, forged, func(md *format.Meta) { md.Loads = true }, nil)

	fr, err := format.Open(forged)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fr.Close() })
	var log strings.Builder
	s, err := New(Config{Reader: fr, Findings: func() ([]Finding, error) { return nil, nil }, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := dial(t, s)
	site := siteHex(t, s)
	for _, z := range []string{"Z3," + site + ",1", "Z4," + site + ",1"} {
		if got := c.ask(z); got != "" {
			t.Errorf("%s on a trace whose loads are claimed but missing: %q, want the empty reply (unsupported)", z, got)
		}
	}
	if got := c.ask("Z2," + site + ",1"); got != "OK" {
		t.Errorf("Z2: %q", got)
	}
	const want = "RETs that completed have no load row"
	if !strings.Contains(log.String(), "read and access watchpoints refused") || !strings.Contains(log.String(), want) {
		t.Errorf("log: %q", log.String())
	}
	if out := c.monitor("finding"); !strings.Contains(out, "read and access watchpoints are refused") || !strings.Contains(out, want) {
		t.Errorf("monitor finding: %q", out)
	}
}

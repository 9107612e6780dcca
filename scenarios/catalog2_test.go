package scenarios_test

// Ground truth for the seed 003/004/001 scenarios, without the analyzers:
// each scenario runs on the emulator with an event sink that checks the
// mechanism's observable effect directly from the machine's event stream
// (emu.Event), and the finding rows must show it while the clean rows must
// not, over many seeds with their injection points moved across the window.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

const c2PageShift = 12

// c2Stale is an instruction a CPU executed whose bytes (as the CPU decoded
// them) differ from memory at the time: cross-modified code it has not yet
// refetched.
type c2Stale struct {
	seq, cpu  uint64
	rip       uint64
	insn, mem []byte
	lastSer   uint64 // seq of the CPU's last serialization before it (0: none seen)
	lastWrite uint64 // seq of the last alias write to the bytes that differ
	nextSer   uint64 // seq of the CPU's next serialization (0: none)
	guarded   bool   // a stale int3, or the old bytes under a fresh int3 (see insn)
	tailStale bool   // bytes after the first differ: the tail was rewritten under it
}

// c2BadRet is a RET whose target is not the end of any call instruction
// executed so far (nor a context's first entry).
type c2BadRet struct {
	seq, cpu uint64
	from, to uint64
}

// c2Perm is a page permission change (non-alias).
type c2Perm struct {
	seq, cpu uint64
	page     uint64
	old, new emu.Perm
	svc      emu.ServiceID
}

// c2Pass is one task's way through a must_call site.
type c2Pass struct {
	open     bool
	task     uint32
	start    uint64
	inWindow bool
	hit      bool
}

type c2MustCall struct {
	site      uint64
	handlers  map[uint64]bool
	from, to  uint64
	open      bool               // the marker window is open
	passes    map[uint64]*c2Pass // by cpu<<32|task
	completed int                // passes that ended at site+5 inside the window
	called    int                // ... of which entered a handler
	calledAll int                // passes that entered a handler, window or not
	missed    []uint64
}

// c2Int3 follows an int3 at a site whose handler emulates a call: the
// IRETQ must land on the call's target with the return address pushed on
// the interrupted stack, and the target's RET must come back to site+5.
type c2Int3 struct {
	int3RSP  uint64 // RSP at the int3 (0: none pending)
	int3Site uint64
	depth    uint8
}

// c2EmuRet is an emulated call's return address waiting for its RET, in
// one task. (Event.Depth is per CPU and does not follow a task across a
// switch made on IRQ exit, so the stack slot identifies the RET.)
type c2EmuRet struct {
	rsp, to uint64 // the RET expected to consume it runs with RSP = rsp
}

type c2Observer struct {
	t   testing.TB
	m   *emu.Machine
	img *emu.Image

	// cross-modified code
	poked     map[uint64]bool   // pages written through the text-poke alias
	lastWrite map[uint64]uint64 // byte address -> seq of its last alias write
	lastSer   []uint64
	stale     []c2Stale
	pendStale [][]int // per CPU: stale entries waiting for the next serialize

	// returns
	produced map[uint64]bool // ends of call instructions executed
	entries  map[uint64]bool // first-entry return targets (ret_from_fork)
	pendRet  []*c2BadRet     // per CPU: a RET whose target is the next RIP
	badRets  []c2BadRet

	// permissions
	perm      map[uint64]emu.Perm // page -> perm, from sections and perm events
	perms     []c2Perm
	rwx       []c2Perm
	execW     uint64 // instructions fetched from a writable page
	execWAt   []uint64
	storeX    uint64 // non-alias stores to an executable page
	aliasPoke uint64 // alias stores

	// contract
	must    []*c2MustCall // passes are per CPU and task (not per Depth: see c2EmuRet)
	markers map[uint64]int

	// emulated calls
	emuSites map[uint64]bool
	emuTo    map[uint64]bool
	emu      []c2Int3             // per CPU: an int3 at an emulating site
	emuRet   map[uint64]*c2EmuRet // per cpu<<32|task
	emuCalls uint64               // IRETQs that emulated a call correctly
	emuRets  uint64               // RETs that consumed an emulated call's return address correctly
	emuBad   []string

	bp uint64 // #BP deliveries

	injected     map[[3]uint64]int // cpu, rip, vector of interrupts raised by a CPU on itself
	trapAtTarget uint64            // interrupts taken on an emulated call's target, its return address live
}

func c2NewObserver(t testing.TB, spec *scenario.Spec, img *emu.Image, cpus int) *c2Observer {
	o := &c2Observer{
		t: t, img: img,
		poked: map[uint64]bool{}, lastWrite: map[uint64]uint64{},
		lastSer: make([]uint64, cpus), pendStale: make([][]int, cpus),
		produced: map[uint64]bool{}, entries: map[uint64]bool{}, pendRet: make([]*c2BadRet, cpus),
		perm: map[uint64]emu.Perm{}, markers: map[uint64]int{},
		emuSites: map[uint64]bool{}, emuTo: map[uint64]bool{}, emu: make([]c2Int3, cpus), emuRet: map[uint64]*c2EmuRet{}, injected: map[[3]uint64]int{},
	}
	for _, sec := range img.Sections {
		if sec.Addr < 1<<63 {
			continue // the per-CPU template
		}
		for a := sec.Addr &^ (1<<c2PageShift - 1); a < sec.Addr+sec.Size; a += 1 << c2PageShift {
			o.perm[a>>c2PageShift] = sec.Perm
		}
	}
	if a, ok := img.Lookup("ret_from_fork"); ok {
		o.entries[a.Addr] = true
	}
	for _, mc := range spec.Contract.MustCall {
		w := &c2MustCall{site: o.addr(mc.Site), handlers: map[uint64]bool{}, from: mc.FromMarker, to: mc.UntilMarker,
			open: mc.FromMarker == 0, passes: map[uint64]*c2Pass{}}
		for _, h := range mc.Handlers {
			w.handlers[o.addr(h)] = true
		}
		o.must = append(o.must, w)
	}
	return o
}

func (o *c2Observer) addr(expr string) uint64 {
	a, err := o.img.Resolve(expr)
	if err != nil {
		o.t.Fatal(err)
	}
	return a
}

func (o *c2Observer) describe(a uint64) string { return o.img.Describe(a) }

// fired reports whether the injection rule in raised its interrupt.
func (o *c2Observer) fired(in scenario.Inject) bool {
	v := emu.VecTimer
	switch in.Kind {
	case "nmi":
		v = emu.VecNMI
	case "ipi":
		v = emu.VecCallFunction
	}
	return o.injected[[3]uint64{uint64(in.CPU), o.addr(in.At), uint64(v)}] > 0
}

func (o *c2Observer) Event(e *emu.Event) {
	cpu := int(e.CPU)
	switch e.Kind {
	case emu.EvInsn:
		o.resolveRet(e, cpu)
		o.insn(e, cpu)
	case emu.EvTrap:
		o.resolveRet(e, cpu)
		if e.Vector == emu.VecBP {
			o.bp++
		}
		if er := o.emuRet[uint64(cpu)<<32|uint64(e.Task)]; er != nil && o.emuTo[e.RIP] {
			o.trapAtTarget++
		}
	case emu.EvInject:
		if e.Addr == uint64(cpu) {
			o.injected[[3]uint64{uint64(cpu), e.RIP, uint64(e.Vector)}]++
		}
	case emu.EvIret:
		o.iret(e, cpu)
	case emu.EvWrite:
		page := e.Addr >> c2PageShift
		if e.Alias {
			o.aliasPoke++
			o.poked[page] = true
			for i := uint64(0); i < uint64(e.Size); i++ {
				o.lastWrite[e.Addr+i] = e.Seq
			}
		} else if o.perm[page]&emu.PermX != 0 {
			o.storeX++
		}
	case emu.EvPerm:
		if e.Alias {
			return
		}
		pc := c2Perm{seq: e.Seq, cpu: uint64(cpu), page: e.Addr, old: e.PermOld, new: e.PermNew, svc: e.Service}
		o.perm[e.Addr>>c2PageShift] = e.PermNew
		o.perms = append(o.perms, pc)
		if e.PermNew&emu.PermW != 0 && e.PermNew&emu.PermX != 0 {
			o.rwx = append(o.rwx, pc)
		}
	case emu.EvSerialize:
		o.lastSer[cpu] = e.Seq
		for _, i := range o.pendStale[cpu] {
			o.stale[i].nextSer = e.Seq
		}
		o.pendStale[cpu] = o.pendStale[cpu][:0]
	case emu.EvMarker:
		o.markers[e.Args[0]]++
		for _, w := range o.must {
			if w.from != 0 && e.Args[0] == w.from {
				w.open = true
			}
			if w.to != 0 && e.Args[0] == w.to {
				w.open = false
			}
		}
	}
}

func (o *c2Observer) resolveRet(e *emu.Event, cpu int) {
	r := o.pendRet[cpu]
	if r == nil {
		return
	}
	o.pendRet[cpu] = nil
	r.to = e.RIP
	if !o.produced[r.to] && !o.entries[r.to] {
		o.badRets = append(o.badRets, *r)
	}
}

func (o *c2Observer) insn(e *emu.Event, cpu int) {
	switch x86asm.Op(e.Op) {
	case x86asm.CALL:
		o.produced[e.RIP+uint64(e.Len)] = true
	case x86asm.RET:
		o.pendRet[cpu] = &c2BadRet{seq: e.Seq, cpu: uint64(cpu), from: e.RIP}
		key := uint64(cpu)<<32 | uint64(e.Task)
		if er := o.emuRet[key]; er != nil && e.RSP == er.rsp {
			var b [8]byte
			o.m.ReadMem(e.RSP, b[:])
			if c2LE64(b[:]) == er.to {
				o.emuRets++
			} else {
				o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: RET at %s consumes %#x, not the emulated call's %s",
					e.Seq, cpu, o.describe(e.RIP), c2LE64(b[:]), o.describe(er.to)))
			}
			delete(o.emuRet, key)
		}
	}
	page := e.RIP >> c2PageShift
	if o.perm[page]&emu.PermW != 0 {
		o.execW++
		if len(o.execWAt) < 4 {
			o.execWAt = append(o.execWAt, e.RIP)
		}
	}
	if o.poked[page] {
		mem := make([]byte, e.Len)
		o.m.ReadMem(e.RIP, mem)
		if ins := e.Bytes[:e.Len]; !bytes.Equal(ins, mem) {
			s := c2Stale{seq: e.Seq, cpu: uint64(cpu), rip: e.RIP, insn: append([]byte(nil), ins...), mem: mem,
				lastSer: o.lastSer[cpu], tailStale: !bytes.Equal(ins[1:], mem[1:])}
			// Guarded: the CPU ran a stale int3 (it only traps), or its
			// old instruction while the only change is the int3 on its
			// first byte (seed 003's first step, before the first sync).
			s.guarded = ins[0] == 0xcc || (mem[0] == 0xcc && !s.tailStale)
			for i := range mem {
				if ins[i] != mem[i] && o.lastWrite[e.RIP+uint64(i)] > s.lastWrite {
					s.lastWrite = o.lastWrite[e.RIP+uint64(i)]
				}
			}
			o.stale = append(o.stale, s)
			o.pendStale[cpu] = append(o.pendStale[cpu], len(o.stale)-1)
		}
	}
	for _, w := range o.must {
		key := uint64(cpu)<<32 | uint64(e.Task)
		p := w.passes[key]
		if p == nil {
			p = &c2Pass{}
			w.passes[key] = p
		}
		switch {
		case e.RIP == w.site:
			*p = c2Pass{open: true, task: e.Task, start: e.Seq, inWindow: w.open}
		case p.open && w.handlers[e.RIP] && e.Task == p.task:
			p.hit = true
		case p.open && e.RIP == w.site+5 && e.Task == p.task:
			p.open = false
			if p.hit {
				w.calledAll++
			}
			if p.inWindow {
				w.completed++
				if p.hit {
					w.called++
				} else {
					w.missed = append(w.missed, p.start)
				}
			}
		}
	}
	if o.emuSites[e.RIP] && e.Bytes[0] == 0xcc {
		o.emu[cpu] = c2Int3{int3RSP: e.RSP, int3Site: e.RIP, depth: e.Depth}
	}
}

func (o *c2Observer) iret(e *emu.Event, cpu int) {
	em := &o.emu[cpu]
	if em.int3RSP == 0 || e.Depth != em.depth {
		return
	}
	site, rsp := em.int3Site, em.int3RSP
	em.int3RSP = 0
	switch {
	case o.emuTo[e.Handler]:
		var b [8]byte
		o.m.ReadMem(e.RSP, b[:])
		if e.RSP != rsp-8 || c2LE64(b[:]) != site+5 {
			o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: int3 at %s emulated a call to %s with RSP %#x (int3 RSP %#x) holding %#x",
				e.Seq, cpu, o.describe(site), o.describe(e.Handler), e.RSP, rsp, c2LE64(b[:])))
			return
		}
		o.emuCalls++
		key := uint64(cpu)<<32 | uint64(e.Task)
		if o.emuRet[key] != nil {
			o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: a second emulated call before the first returned", e.Seq, cpu))
		}
		o.emuRet[key] = &c2EmuRet{rsp: e.RSP, to: site + 5}
		o.produced[site+5] = true // the emulated call produced this return address
	case e.Handler == site+5 && e.RSP == rsp:
		// a nop emulated: skip the site
	default:
		o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: int3 at %s returned to %s, RSP %#x (int3 RSP %#x)",
			e.Seq, cpu, o.describe(site), o.describe(e.Handler), e.RSP, rsp))
	}
}

func c2LE64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// unguardedStale are the stale executions that matter: the CPU ran bytes
// other than an int3 that differ from memory.
func (o *c2Observer) unguardedStale() []c2Stale {
	var out []c2Stale
	for _, s := range o.stale {
		if !s.guarded {
			out = append(out, s)
		}
	}
	return out
}

// c2Run runs spec for one seed with an observer attached.
func c2Run(t testing.TB, spec *scenario.Spec, seed uint64, setup ...func(*c2Observer)) (*c2Observer, *emu.Machine, emu.Result) {
	t.Helper()
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var o *c2Observer
	sink := c2SinkFunc(func(e *emu.Event) { o.Event(e) })
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: seed, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	o = c2NewObserver(t, spec, img, m.CPUs())
	o.m = m
	for _, f := range setup {
		f(o)
	}
	res := m.Run(src)
	if res.Err != nil {
		t.Fatalf("%s seed %d: %v", spec.ID, seed, res.Err)
	}
	return o, m, res
}

type c2SinkFunc func(e *emu.Event)

func (f c2SinkFunc) Event(e *emu.Event) { f(e) }

func c2Load(t testing.TB, id string, params map[string]uint64) *scenario.Spec {
	t.Helper()
	s, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	p := make(map[string]uint64, len(s.Params))
	for k, v := range s.Params {
		p[k] = v
	}
	for k, v := range params {
		if _, ok := p[k]; !ok {
			t.Fatalf("%s: no param %q", id, k)
		}
		p[k] = v
	}
	s.Params = p
	return s
}

func c2Sum(m *emu.Machine, name string) uint64 {
	var n uint64
	for c := 0; c < m.CPUs(); c++ {
		v, _ := m.PercpuU64(c, name)
		n += v
	}
	return n
}

func c2Percpu(m *emu.Machine, name string) []uint64 {
	out := make([]uint64, m.CPUs())
	for c := range out {
		out[c], _ = m.PercpuU64(c, name)
	}
	return out
}

// c2Mix is traced_fn's work (splitmix64's finalizer).
func c2Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// c2CallerSum is what caller_main on cpu leaves in caller_sum after n calls
// that all returned traced_fn's value to it.
func c2CallerSum(cpu, n uint64) uint64 {
	var s uint64
	for i := uint64(0); i < n; i++ {
		s += c2Mix(cpu<<32 | i)
	}
	return s
}

// c2InsnStarts returns "sym+off" for every instruction of the function sym,
// decoded from the slice (the places an injection rule can name).
func c2InsnStarts(t testing.TB, img *emu.Image, sym string) []string {
	t.Helper()
	s, ok := img.Lookup(sym)
	if !ok || s.Size == 0 {
		t.Fatalf("no function %s", sym)
	}
	var code []byte
	for _, sec := range img.Sections {
		if s.Addr >= sec.Addr && s.Addr+s.Size <= sec.Addr+sec.Size && sec.Data != nil {
			code = sec.Data[s.Addr-sec.Addr : s.Addr-sec.Addr+s.Size]
		}
	}
	var out []string
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			t.Fatalf("%s+%#x: %v", sym, off, err)
		}
		out = append(out, fmt.Sprintf("%s+%d", sym, off))
		off += in.Len
	}
	return out
}

func (s c2Stale) String(o *c2Observer) string {
	next := "none"
	if s.nextSer != 0 {
		next = fmt.Sprint(s.nextSer)
	}
	return fmt.Sprintf("seq %d cpu%d ran % x at %s, memory % x (alias write seq %d, last serialize seq %d, next %s)",
		s.seq, s.cpu, s.insn, o.describe(s.rip), s.mem, s.lastWrite, s.lastSer, next)
}

// ---- checks shared by the rows ----

// cleanErrors lists everything a clean run must not show: unguarded stale
// executions (cmc), RETs to addresses no call produced (return-slot),
// emulated calls that went wrong, rwx pages, execution from writable
// pages, non-alias stores to executable pages (wx), must-call passes that
// entered no handler (missed-call), and a run that did not finish.
func (o *c2Observer) cleanErrors(res emu.Result) []string {
	var errs []string
	if res.Stop != emu.StopDone {
		errs = append(errs, fmt.Sprintf("stopped %v: %s", res.Stop, res.Msg))
	}
	if u := o.unguardedStale(); len(u) > 0 {
		errs = append(errs, fmt.Sprintf("%d stale executions, first: %s", len(u), u[0].String(o)))
	}
	if len(o.badRets) > 0 {
		r := o.badRets[0]
		errs = append(errs, fmt.Sprintf("%d RETs to no call's return address, first: seq %d cpu%d %s -> %s",
			len(o.badRets), r.seq, r.cpu, o.describe(r.from), o.describe(r.to)))
	}
	if len(o.emuBad) > 0 {
		errs = append(errs, fmt.Sprintf("%d bad emulated calls, first: %s", len(o.emuBad), o.emuBad[0]))
	}
	if len(o.rwx) > 0 {
		p := o.rwx[0]
		errs = append(errs, fmt.Sprintf("page %#x became %v (%v) at seq %d", p.page, p.new, p.svc, p.seq))
	}
	if o.execW > 0 {
		errs = append(errs, fmt.Sprintf("%d instructions from writable pages, first at %#x", o.execW, o.execWAt[0]))
	}
	if o.storeX > 0 {
		errs = append(errs, fmt.Sprintf("%d non-alias stores to executable pages", o.storeX))
	}
	for _, w := range o.must {
		if len(w.missed) > 0 {
			errs = append(errs, fmt.Sprintf("%d of %d passes through %s entered no handler, first at seq %d",
				len(w.missed), w.completed, o.describe(w.site), w.missed[0]))
		}
	}
	return errs
}

// c2CheckCallerSums requires every caller CPU's caller_sum to be what calls
// returning traced_fn's value give.
func c2CheckCallerSums(t *testing.T, label string, m *emu.Machine, cpus []int, calls uint64) {
	t.Helper()
	for _, c := range cpus {
		got, _ := m.PercpuU64(c, "caller_sum")
		if want := c2CallerSum(uint64(c), calls); got != want {
			t.Errorf("%s: cpu%d caller_sum %#x, want %#x (a call did not return traced_fn's value to its caller)", label, c, got, want)
		}
	}
}

// c2Points lists injection places across the given functions.
func c2Points(t *testing.T, spec *scenario.Spec, syms ...string) []string {
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range syms {
		out = append(out, c2InsnStarts(t, img, s)...)
	}
	return out
}

// c2MoveInjections rewrites spec's injection rules for seed i so that over
// the seeds every rule visits the points (with the arrival count varied).
func c2MoveInjections(spec *scenario.Spec, base []scenario.Inject, points []string, i int) {
	spec.Inject = append([]scenario.Inject(nil), base...)
	for k := range spec.Inject {
		spec.Inject[k].At = points[(i*(2*k+1)+k*len(points)/2)%len(points)]
		spec.Inject[k].Hit = uint64(1 + (i+k)%4)
	}
}

const c2Seeds = 50

// c2Fired counts the injection rules of spec that raised their interrupt.
func c2Fired(o *c2Observer, spec *scenario.Spec) int {
	n := 0
	for _, in := range spec.Inject {
		if o.fired(in) {
			n++
		}
	}
	return n
}

// c2RequireFired wants most moved injections (two rules per seed) to have
// fired: a point a CPU never reached proves nothing.
func c2RequireFired(t *testing.T, fired int) {
	t.Helper()
	if fired < c2Seeds {
		t.Errorf("only %d of %d moved injections fired", fired, 2*c2Seeds)
	}
	t.Logf("%d of %d moved injections fired", fired, 2*c2Seeds)
}

// ---- seed 003 ----

// TestSeed003NosyncStale: in both modes of text-poke-bp-nosync a caller CPU
// executes its old decode of traced_fn's site after an alias write changed
// bytes it ran (the tail, for mode 0) and before it serialized, with no
// int3 in what it ran. Mode 0 also shows the int3 sitting in memory while
// the CPU runs past it; mode 1 has no int3 at all. The stale model is
// pinned: under the default torn one, mode 1's plain text_poke is also
// fetched half-written and the run dies of it (analyze's
// TestTornFetchExecutesHalfWritten covers that).
func TestSeed003NosyncStale(t *testing.T) {
	for _, mode := range []uint64{0, 1} {
		t.Run(fmt.Sprintf("mode%d", mode), func(t *testing.T) {
			var total, unseenInt3 int
			for seed := uint64(1); seed <= 10; seed++ {
				spec := c2Load(t, "text-poke-bp-nosync", map[string]uint64{"mode": mode, "patch_rounds": 12, "calls": 300})
				spec.Quirks.Fetch = "stale"
				o, m, res := c2Run(t, spec, seed)
				site := o.addr("traced_fn")
				if res.Stop != emu.StopDone {
					t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
				}
				var found []c2Stale
				for _, s := range o.unguardedStale() {
					if s.rip != site || s.cpu == 0 {
						t.Errorf("seed %d: stale execution away from the site: %s", seed, s.String(o))
						continue
					}
					if s.lastWrite <= s.lastSer || (s.nextSer != 0 && s.nextSer < s.seq) {
						t.Errorf("seed %d: not stale by the stream's own account: %s", seed, s.String(o))
					}
					if mode == 0 && !s.tailStale {
						continue
					}
					found = append(found, s)
					if s.mem[0] == 0xcc {
						unseenInt3++
					}
				}
				if len(found) == 0 {
					t.Errorf("seed %d: no CPU ran a stale site", seed)
					continue
				}
				total += len(found)
				if mode == 1 && o.bp != 0 {
					t.Errorf("seed %d: mode 1 took %d int3s", seed, o.bp)
				}
				if w := o.must[0]; len(w.missed) > 0 {
					t.Errorf("seed %d: %d passes missed the handler between markers 2 and 4", seed, len(w.missed))
				}
				if seed == 1 {
					t.Logf("seed 1: %d stale executions at the site, first: %s", len(found), found[0].String(o))
					t.Logf("seed 1: handler_calls %v", c2Percpu(m, "handler_calls"))
				}
			}
			if mode == 0 && unseenInt3 == 0 {
				t.Error("mode 0: no CPU ran past an int3 that was already in memory")
			}
			t.Logf("mode %d: %d stale executions over 10 seeds (%d past an int3 in memory)", mode, total, unseenInt3)
		})
	}
}

// TestSeed003SyncsPreventStale: the same machine model (stale fetch) with
// text-poke-bp's three syncs shows no unguarded stale execution (a CPU may
// run a stale int3, which only traps, or its old instruction while the only
// changed byte is the int3 that the first sync is about to make it see),
// and the nosync slice on a coherent machine shows none either: the finding
// needs both the missing sync and a CPU that keeps its decodes.
func TestSeed003SyncsPreventStale(t *testing.T) {
	var guarded int
	for seed := uint64(1); seed <= c2Seeds; seed++ {
		spec := c2Load(t, "text-poke-bp", map[string]uint64{"patch_rounds": 6, "calls": 150})
		spec.Quirks.Fetch = "stale"
		o, m, res := c2Run(t, spec, seed)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("text-poke-bp, stale fetch, seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		if w := o.must[0]; w.completed == 0 || w.called != w.completed {
			t.Errorf("seed %d: %d/%d passes between markers 2 and 4 called handler", seed, w.called, w.completed)
		}
		c2CheckCallerSums(t, fmt.Sprintf("text-poke-bp seed %d", seed), m, []int{1, 2, 3}, 150)
		guarded += len(o.stale)
	}
	t.Logf("text-poke-bp under stale fetch: %d stale int3 executions over %d seeds, no other stale bytes", guarded, c2Seeds)
	for _, mode := range []uint64{0, 1} {
		for seed := uint64(1); seed <= 10; seed++ {
			spec := c2Load(t, "text-poke-bp-nosync", map[string]uint64{"mode": mode, "patch_rounds": 6, "calls": 150})
			spec.Quirks.Fetch = "coherent"
			o, _, _ := c2Run(t, spec, seed)
			if u := o.unguardedStale(); len(u) > 0 {
				t.Errorf("nosync mode %d, coherent, seed %d: %s", mode, seed, u[0].String(o))
			}
		}
	}
}

// TestSeed003TextPokeBPWindow: text-poke-bp's must_call window (markers 2
// to 4) holds: every pass in it enters handler, under the scenario's own
// fetch model, and there are passes outside it that skip (the int3 while
// the nop goes back), which the old until_marker = 3 wrongly included.
func TestSeed003TextPokeBPWindow(t *testing.T) {
	var skipped uint64
	for seed := uint64(1); seed <= c2Seeds; seed++ {
		spec := c2Load(t, "text-poke-bp", map[string]uint64{"patch_rounds": 8, "calls": 200})
		o, m, res := c2Run(t, spec, seed)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		if w := o.must[0]; w.completed == 0 {
			t.Errorf("seed %d: no pass inside the window", seed)
		}
		c2CheckCallerSums(t, fmt.Sprintf("seed %d", seed), m, []int{1, 2, 3}, 200)
		skipped += o.bp
	}
	if skipped == 0 {
		t.Error("no int3 was ever hit: the window test proves nothing")
	}
}

// ---- seed 004 ----

// TestSeed004Int3EmulateCall: every int3 at the site that stands for a
// call returns (IRETQ) to the call's target with RSP one word below the
// int3's and site+5 in that word, and the target's RET consumes exactly
// that word and lands on site+5; every pass calls func_a or func_b; all
// callers get traced_fn's value back. Injections move over the #BP entry,
// int3_hook and the targets' first instructions.
func TestSeed004Int3EmulateCall(t *testing.T) {
	base := c2Load(t, "int3-emulate-call", nil)
	if len(base.Inject) != 2 {
		t.Fatalf("want the timer and NMI injections, got %d", len(base.Inject))
	}
	points := c2Points(t, base, "asm_exc_int3", "do_int3", "int3_hook", "func_a", "func_b")
	var emulated, rets uint64
	var fired int
	for i := 0; i < c2Seeds; i++ {
		spec := c2Load(t, "int3-emulate-call", map[string]uint64{"patch_rounds": 10, "calls": 250})
		c2MoveInjections(spec, base.Inject, points, i)
		o, m, res := c2Run(t, spec, uint64(i+1), func(o *c2Observer) {
			o.emuSites[o.addr("traced_fn")] = true
			o.emuTo[o.addr("func_a")] = true
			o.emuTo[o.addr("func_b")] = true
		})
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		if n := c2Sum(m, "bad_frame_count"); n != 0 {
			t.Errorf("%s: func_a/func_b saw %d bad frames", label, n)
		}
		if o.emuRets != o.emuCalls {
			t.Errorf("%s: %d emulated calls, %d RETs consumed their return address", label, o.emuCalls, o.emuRets)
		}
		if n := c2Sum(m, "emulated_calls"); n != o.emuCalls {
			t.Errorf("%s: emulated_calls %d, stream shows %d", label, n, o.emuCalls)
		}
		if w := o.must[0]; w.completed == 0 {
			t.Errorf("%s: no pass in the window", label)
		}
		c2CheckCallerSums(t, label, m, []int{1, 2, 3}, 250)
		emulated += o.emuCalls
		rets += o.emuRets
		fired += c2Fired(o, spec)
	}
	c2RequireFired(t, fired)
	if emulated == 0 {
		t.Fatal("no int3 ever emulated a call")
	}
	t.Logf("%d emulated calls over %d seeds, each returned to site+5 through the pushed word (%d)", emulated, c2Seeds, rets)
}

// TestSeed004Int3EmulateCallPlan: the scenario's own injection plan does
// what its description says: the timer raised at asm_exc_int3's IRETQ is
// taken on func_a/func_b with the emulated return address live, and the
// NMI lands in int3_hook() between the emulated push and the regs->ip store.
func TestSeed004Int3EmulateCallPlan(t *testing.T) {
	var atTarget uint64
	for seed := uint64(1); seed <= 10; seed++ {
		spec := c2Load(t, "int3-emulate-call", map[string]uint64{"patch_rounds": 10, "calls": 250})
		spec.Schedule.TimerRate, spec.Schedule.NMIRate = 0, 0
		o, _, res := c2Run(t, spec, seed, func(o *c2Observer) {
			o.emuSites[o.addr("traced_fn")] = true
			o.emuTo[o.addr("func_a")] = true
			o.emuTo[o.addr("func_b")] = true
		})
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("seed %d:\n  %s", seed, strings.Join(errs, "\n  "))
		}
		for _, in := range spec.Inject {
			if !o.fired(in) {
				t.Errorf("seed %d: %s at %s#%d never fired", seed, in.Kind, in.At, in.Hit)
			}
		}
		atTarget += o.trapAtTarget
	}
	if atTarget < 10 {
		t.Errorf("the timer hit an emulated call's target %d times in 10 seeds", atTarget)
	}
}

// TestSeed004ExcTramp: with the pop, every RET returns to a call's return
// address, every pass enters tracer_func, tracer_func never sees a bad
// frame and every caller gets traced_fn's value back. Injections move over
// the trampoline, the caller stub and the handler.
func TestSeed004ExcTramp(t *testing.T) {
	base := c2Load(t, "exc-tramp", nil)
	points := c2Points(t, base, "ftrace_regs_caller", "call_to_exception_trampoline", "ftrace_regs_handler")
	var fired int
	for i := 0; i < c2Seeds; i++ {
		spec := c2Load(t, "exc-tramp", map[string]uint64{"calls": 120})
		c2MoveInjections(spec, base.Inject, points, i)
		o, m, res := c2Run(t, spec, uint64(i+1))
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		if n := c2Sum(m, "tracer_bad_count"); n != 0 {
			t.Errorf("%s: tracer_func saw %d bad frames", label, n)
		}
		w := o.must[0]
		if w.completed == 0 || uint64(w.called) > c2Sum(m, "tracer_calls") {
			t.Errorf("%s: %d passes, tracer_calls %d", label, w.completed, c2Sum(m, "tracer_calls"))
		}
		c2CheckCallerSums(t, label, m, []int{1, 2, 3}, 120)
		fired += c2Fired(o, spec)
	}
	c2RequireFired(t, fired)
}

// TestSeed004ExcTrampNopop: without the pop, every pass through the site
// after the install ends with traced_fn's RET going to tracer_func's entry,
// which no CALL produced; tracer_func then runs with garbage and returns
// the caller a garbage value. Nothing else is wrong: no missed call, no
// oops, no wx.
func TestSeed004ExcTrampNopop(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		spec := c2Load(t, "exc-tramp-nopop", map[string]uint64{"calls": 120})
		o, m, res := c2Run(t, spec, seed)
		if res.Stop != emu.StopDone {
			t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
		}
		tracer := o.addr("traced_fn")
		tf, _ := o.img.Lookup("traced_fn")
		target := o.addr("tracer_func")
		perCPU := map[uint64]int{}
		for _, r := range o.badRets {
			if r.from < tracer || r.from >= tf.Addr+tf.Size || r.to != target || r.cpu == 0 {
				t.Errorf("seed %d: unexpected bad RET seq %d cpu%d %s -> %s", seed, r.seq, r.cpu, o.describe(r.from), o.describe(r.to))
			}
			perCPU[r.cpu]++
		}
		w := o.must[0]
		bad := c2Sum(m, "tracer_bad_count")
		if len(o.badRets) == 0 || uint64(len(o.badRets)) != bad || len(o.badRets) != w.calledAll || w.completed == 0 {
			t.Errorf("seed %d: %d bad RETs, tracer_bad_count %d, %d passes through the trampoline (%d after marker 1)",
				seed, len(o.badRets), bad, w.calledAll, w.completed)
		}
		if len(w.missed) != 0 || len(o.rwx) != 0 || o.execW != 0 || o.storeX != 0 || len(o.unguardedStale()) != 0 {
			t.Errorf("seed %d: findings other than return-slot: missed %d rwx %d execW %d storeX %d", seed, len(w.missed), len(o.rwx), o.execW, o.storeX)
		}
		for _, c := range []int{1, 2, 3} {
			got, _ := m.PercpuU64(c, "caller_sum")
			if got == c2CallerSum(uint64(c), 120) {
				t.Errorf("seed %d: cpu%d's caller got every value back", seed, c)
			}
		}
		if seed == 1 {
			r := o.badRets[0]
			t.Logf("seed 1: %d bad RETs (per CPU %v), first seq %d cpu%d %s -> %s", len(o.badRets), perCPU, r.seq, r.cpu, o.describe(r.from), o.describe(r.to))
		}
	}
}

// ---- seed 001 ----

const c2ModuleBase uint64 = 0xffffffffa0000000

// TestSeed001DynTrampWX: set_memory_x() makes the trampoline page rwx on
// CPU 0, and the callers then execute from it while it is writable.
func TestSeed001DynTrampWX(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		spec := c2Load(t, "dyn-tramp-wx", map[string]uint64{"calls": 150, "dwell": 500})
		o, m, res := c2Run(t, spec, seed)
		if res.Stop != emu.StopDone {
			t.Fatalf("seed %d: stopped %v: %s", seed, res.Stop, res.Msg)
		}
		if len(o.rwx) != 1 {
			t.Fatalf("seed %d: %d rwx changes, want 1", seed, len(o.rwx))
		}
		p := o.rwx[0]
		if p.page != c2ModuleBase || p.cpu != 0 || p.old != emu.PermRW || p.new != emu.PermRWX || p.svc != emu.SvcSetMemoryX {
			t.Errorf("seed %d: rwx change %+v", seed, p)
		}
		if o.execW == 0 || o.execWAt[0]>>c2PageShift != c2ModuleBase>>c2PageShift {
			t.Errorf("seed %d: %d instructions from writable pages (%#x)", seed, o.execW, o.execWAt)
		}
		if len(o.must[0].missed) != 0 || len(o.badRets) != 0 || o.storeX != 0 {
			t.Errorf("seed %d: findings other than wx", seed)
		}
		if c2Sum(m, "tracer_calls") == 0 || c2Sum(m, "other_calls") == 0 || c2Sum(m, "tracer_bad_count") != 0 {
			t.Errorf("seed %d: tracer %d other %d bad %d", seed, c2Sum(m, "tracer_calls"), c2Sum(m, "other_calls"), c2Sum(m, "tracer_bad_count"))
		}
		c2CheckCallerSums(t, fmt.Sprintf("seed %d", seed), m, []int{1, 2, 3}, 150)
		if seed == 1 {
			t.Logf("seed 1: page %#x %v -> %v by %v at seq %d; %d instructions executed from it while writable", p.page, p.old, p.new, p.svc, p.seq, o.execW)
		}
	}
}

// TestSeed001DynTrampRO: the page goes rw- -> r-- -> r-x, the ops switch
// is an alias store, nothing is ever rwx or executed from a writable page,
// over many seeds with the injections moved across the trampoline (by
// address: it has no symbol) and tracer_func.
func TestSeed001DynTrampRO(t *testing.T) {
	base := c2Load(t, "dyn-tramp-ro", nil)
	points := c2Points(t, base, "tracer_func")
	img, err := emu.LoadImage(base.ID, base.ELF)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := img.Lookup("ftrace_tramp_template")
	end, _ := img.Lookup("ftrace_tramp_end")
	var code []byte
	for _, sec := range img.Sections {
		if tmpl.Addr >= sec.Addr && end.Addr <= sec.Addr+sec.Size && sec.Data != nil {
			code = sec.Data[tmpl.Addr-sec.Addr : end.Addr-sec.Addr-8] // up to the ops word
		}
	}
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, fmt.Sprintf("%#x", uint64(c2ModuleBase)+uint64(off)))
		off += in.Len
	}
	var fired int
	for i := 0; i < c2Seeds; i++ {
		spec := c2Load(t, "dyn-tramp-ro", map[string]uint64{"calls": 100, "dwell": 300})
		c2MoveInjections(spec, base.Inject, points, i)
		o, m, res := c2Run(t, spec, uint64(i+1))
		label := fmt.Sprintf("seed %d (inject %s#%d, %s#%d)", i+1, spec.Inject[0].At, spec.Inject[0].Hit, spec.Inject[1].At, spec.Inject[1].Hit)
		if errs := o.cleanErrors(res); len(errs) > 0 {
			t.Errorf("%s:\n  %s", label, strings.Join(errs, "\n  "))
		}
		var seq []string
		for _, p := range o.perms {
			if p.page == c2ModuleBase {
				seq = append(seq, fmt.Sprintf("%v:%v", p.svc, p.new))
			}
		}
		if got := strings.Join(seq, " "); got != "module_alloc:rw- set_memory_ro:r-- set_memory_x:r-x" {
			t.Errorf("%s: trampoline page went %s", label, got)
		}
		if o.aliasPoke == 0 || c2Sum(m, "other_calls") == 0 || c2Sum(m, "tracer_bad_count") != 0 {
			t.Errorf("%s: alias stores %d, other_calls %d, bad %d", label, o.aliasPoke, c2Sum(m, "other_calls"), c2Sum(m, "tracer_bad_count"))
		}
		c2CheckCallerSums(t, label, m, []int{1, 2, 3}, 100)
		fired += c2Fired(o, spec)
	}
	c2RequireFired(t, fired)
}

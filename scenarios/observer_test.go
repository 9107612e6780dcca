package scenarios_test

// Ground truth for the scenarios of mails 001, 003 and 004 (see
// docs/background.md), without the analyzers: each scenario runs on the
// emulator with an event sink, the observer, that checks the mechanism's
// observable effect directly from the machine's event stream (emu.Event),
// and the finding rows must show it while the clean rows must not, over
// many seeds with their injection points moved across the window. This
// file holds the observer and the checks the rows share; mailNNN_test.go
// the rows of each mail.

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/scenario"
)

const pageShift = 12

// staleInsn is an instruction a CPU executed whose bytes (as the CPU decoded
// them) differ from memory at the time: cross-modified code it has not yet
// refetched.
type staleInsn struct {
	seq, cpu  uint64
	rip       uint64
	insn, mem []byte
	lastSer   uint64 // seq of the CPU's last serialization before it (0: none seen)
	lastWrite uint64 // seq of the last alias write to the bytes that differ
	nextSer   uint64 // seq of the CPU's next serialization (0: none)
	guarded   bool   // a stale int3, or the old bytes under a fresh int3 (see insn)
	tailStale bool   // bytes after the first differ: the tail was rewritten under it
}

// badRet is a RET whose target is not the end of any call instruction
// executed so far (nor a context's first entry).
type badRet struct {
	seq, cpu uint64
	from, to uint64
}

// permChange is a page permission change (non-alias).
type permChange struct {
	seq, cpu uint64
	page     uint64
	old, new emu.Perm
	svc      emu.ServiceID
}

// mustPass is one task's way through a must_call site.
type mustPass struct {
	open     bool
	task     uint32
	start    uint64
	inWindow bool
	hit      bool
}

type mustCall struct {
	site      uint64
	handlers  map[uint64]bool
	from, to  uint64
	open      bool                 // the marker window is open
	passes    map[uint64]*mustPass // by cpu<<32|task
	completed int                  // passes that ended at site+5 inside the window
	called    int                  // ... of which entered a handler
	calledAll int                  // passes that entered a handler, window or not
	missed    []uint64
}

// emuInt3 follows an int3 at a site whose handler emulates a call: the
// IRETQ must land on the call's target with the return address pushed on
// the interrupted stack, and the target's RET must come back to site+5.
type emuInt3 struct {
	int3RSP  uint64 // RSP at the int3 (0: none pending)
	int3Site uint64
	depth    uint8
}

// pendingEmuRet is an emulated call's return address waiting for its RET, in
// one task. (Event.Depth is per CPU and does not follow a task across a
// switch made on IRQ exit, so the stack slot identifies the RET.)
type pendingEmuRet struct {
	rsp, to uint64 // the RET expected to consume it runs with RSP = rsp
}

type observer struct {
	t   testing.TB
	m   *emu.Machine
	img *emu.Image

	// cross-modified code
	poked     map[uint64]bool   // pages written through the text-poke alias
	lastWrite map[uint64]uint64 // byte address -> seq of its last alias write
	lastSer   []uint64
	stale     []staleInsn
	pendStale [][]int // per CPU: stale entries waiting for the next serialize

	// returns
	produced map[uint64]bool // ends of call instructions executed
	entries  map[uint64]bool // first-entry return targets (ret_from_fork)
	pendRet  []*badRet       // per CPU: a RET whose target is the next RIP
	badRets  []badRet

	// permissions
	perm      map[uint64]emu.Perm // page -> perm, from sections and perm events
	perms     []permChange
	rwx       []permChange
	execW     uint64 // instructions fetched from a writable page
	execWAt   []uint64
	storeX    uint64 // non-alias stores to an executable page
	aliasPoke uint64 // alias stores

	// contract
	must    []*mustCall // passes are per CPU and task (not per Depth: see pendingEmuRet)
	markers map[uint64]int

	// emulated calls
	emuSites map[uint64]bool
	emuTo    map[uint64]bool
	emu      []emuInt3                 // per CPU: an int3 at an emulating site
	emuRet   map[uint64]*pendingEmuRet // per cpu<<32|task
	emuCalls uint64                    // IRETQs that emulated a call correctly
	emuRets  uint64                    // RETs that consumed an emulated call's return address correctly
	emuBad   []string

	bp uint64 // #BP deliveries

	injected     map[[3]uint64]int // cpu, rip, vector of interrupts raised by a CPU on itself
	trapAtTarget uint64            // interrupts taken on an emulated call's target, its return address live
}

func newObserver(t testing.TB, spec *scenario.Spec, img *emu.Image, cpus int) *observer {
	o := &observer{
		t: t, img: img,
		poked: map[uint64]bool{}, lastWrite: map[uint64]uint64{},
		lastSer: make([]uint64, cpus), pendStale: make([][]int, cpus),
		produced: map[uint64]bool{}, entries: map[uint64]bool{}, pendRet: make([]*badRet, cpus),
		perm: map[uint64]emu.Perm{}, markers: map[uint64]int{},
		emuSites: map[uint64]bool{}, emuTo: map[uint64]bool{}, emu: make([]emuInt3, cpus), emuRet: map[uint64]*pendingEmuRet{}, injected: map[[3]uint64]int{},
	}
	for _, sec := range img.Sections {
		if sec.Addr < 1<<63 {
			continue // the per-CPU template
		}
		for a := sec.Addr &^ (1<<pageShift - 1); a < sec.Addr+sec.Size; a += 1 << pageShift {
			o.perm[a>>pageShift] = sec.Perm
		}
	}
	if a, ok := img.Lookup("ret_from_fork"); ok {
		o.entries[a.Addr] = true
	}
	for _, mc := range spec.Contract.MustCall {
		w := &mustCall{site: o.addr(mc.Site), handlers: map[uint64]bool{}, from: mc.FromMarker, to: mc.UntilMarker,
			open: mc.FromMarker == 0, passes: map[uint64]*mustPass{}}
		for _, h := range mc.Handlers {
			w.handlers[o.addr(h)] = true
		}
		o.must = append(o.must, w)
	}
	return o
}

func (o *observer) addr(expr string) uint64 {
	a, err := o.img.Resolve(expr)
	if err != nil {
		o.t.Fatal(err)
	}
	return a
}

func (o *observer) describe(a uint64) string { return o.img.Describe(a) }

// fired reports whether the injection rule in raised its interrupt.
func (o *observer) fired(in scenario.Inject) bool {
	v := emu.VecTimer
	switch in.Kind {
	case "nmi":
		v = emu.VecNMI
	case "ipi":
		v = emu.VecCallFunction
	}
	return o.injected[[3]uint64{uint64(in.CPU), o.addr(in.At), uint64(v)}] > 0
}

func (o *observer) Event(e *emu.Event) {
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
		page := e.Addr >> pageShift
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
		pc := permChange{seq: e.Seq, cpu: uint64(cpu), page: e.Addr, old: e.PermOld, new: e.PermNew, svc: e.Service}
		o.perm[e.Addr>>pageShift] = e.PermNew
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

func (o *observer) resolveRet(e *emu.Event, cpu int) {
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

func (o *observer) insn(e *emu.Event, cpu int) {
	switch x86asm.Op(e.Op) {
	case x86asm.CALL:
		o.produced[e.RIP+uint64(e.Len)] = true
	case x86asm.RET:
		o.pendRet[cpu] = &badRet{seq: e.Seq, cpu: uint64(cpu), from: e.RIP}
		key := uint64(cpu)<<32 | uint64(e.Task)
		if er := o.emuRet[key]; er != nil && e.RSP == er.rsp {
			var b [8]byte
			o.m.ReadMem(e.RSP, b[:])
			if le64(b[:]) == er.to {
				o.emuRets++
			} else {
				o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: RET at %s consumes %#x, not the emulated call's %s",
					e.Seq, cpu, o.describe(e.RIP), le64(b[:]), o.describe(er.to)))
			}
			delete(o.emuRet, key)
		}
	}
	page := e.RIP >> pageShift
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
			s := staleInsn{seq: e.Seq, cpu: uint64(cpu), rip: e.RIP, insn: append([]byte(nil), ins...), mem: mem,
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
			p = &mustPass{}
			w.passes[key] = p
		}
		switch {
		case e.RIP == w.site:
			*p = mustPass{open: true, task: e.Task, start: e.Seq, inWindow: w.open}
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
		o.emu[cpu] = emuInt3{int3RSP: e.RSP, int3Site: e.RIP, depth: e.Depth}
	}
}

func (o *observer) iret(e *emu.Event, cpu int) {
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
		if e.RSP != rsp-8 || le64(b[:]) != site+5 {
			o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: int3 at %s emulated a call to %s with RSP %#x (int3 RSP %#x) holding %#x",
				e.Seq, cpu, o.describe(site), o.describe(e.Handler), e.RSP, rsp, le64(b[:])))
			return
		}
		o.emuCalls++
		key := uint64(cpu)<<32 | uint64(e.Task)
		if o.emuRet[key] != nil {
			o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: a second emulated call before the first returned", e.Seq, cpu))
		}
		o.emuRet[key] = &pendingEmuRet{rsp: e.RSP, to: site + 5}
		o.produced[site+5] = true // the emulated call produced this return address
	case e.Handler == site+5 && e.RSP == rsp:
		// a nop emulated: skip the site
	default:
		o.emuBad = append(o.emuBad, fmt.Sprintf("seq %d cpu%d: int3 at %s returned to %s, RSP %#x (int3 RSP %#x)",
			e.Seq, cpu, o.describe(site), o.describe(e.Handler), e.RSP, rsp))
	}
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// unguardedStale are the stale executions that matter: the CPU ran bytes
// other than an int3 that differ from memory.
func (o *observer) unguardedStale() []staleInsn {
	var out []staleInsn
	for _, s := range o.stale {
		if !s.guarded {
			out = append(out, s)
		}
	}
	return out
}

// observe runs spec for one seed with an observer attached.
func observe(t testing.TB, spec *scenario.Spec, seed uint64, setup ...func(*observer)) (*observer, *emu.Machine, emu.Result) {
	t.Helper()
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var o *observer
	sink := sinkFunc(func(e *emu.Event) { o.Event(e) })
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: seed, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	o = newObserver(t, spec, img, m.CPUs())
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

type sinkFunc func(e *emu.Event)

func (f sinkFunc) Event(e *emu.Event) { f(e) }

func sumPercpu(m *emu.Machine, name string) uint64 {
	var n uint64
	for c := 0; c < m.CPUs(); c++ {
		v, _ := m.PercpuU64(c, name)
		n += v
	}
	return n
}

func percpuValues(m *emu.Machine, name string) []uint64 {
	out := make([]uint64, m.CPUs())
	for c := range out {
		out[c], _ = m.PercpuU64(c, name)
	}
	return out
}

// mix is traced_fn's work (splitmix64's finalizer).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// callerSum is what caller_main on cpu leaves in caller_sum after n calls
// that all returned traced_fn's value to it.
func callerSum(cpu, n uint64) uint64 {
	var s uint64
	for i := uint64(0); i < n; i++ {
		s += mix(cpu<<32 | i)
	}
	return s
}

// insnStarts returns "sym+off" for every instruction of the function sym,
// decoded from the slice (the places an injection rule can name).
func insnStarts(t testing.TB, img *emu.Image, sym string) []string {
	t.Helper()
	s, ok := img.Lookup(sym)
	if !ok || s.Size == 0 {
		t.Fatalf("no function %s", sym)
	}
	code := img.Bytes(s.Addr, s.Size)
	offs, err := slice.Starts(len(code), decodeLength(code))
	if err != nil {
		t.Fatalf("%s: %v", sym, err)
	}
	var out []string
	for _, off := range offs {
		out = append(out, fmt.Sprintf("%s+%d", sym, off))
	}
	return out
}

func (s staleInsn) String(o *observer) string {
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
func (o *observer) cleanErrors(res emu.Result) []string {
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

// checkCallerSums requires every caller CPU's caller_sum to be what calls
// returning traced_fn's value give.
func checkCallerSums(t *testing.T, label string, m *emu.Machine, cpus []int, calls uint64) {
	t.Helper()
	for _, c := range cpus {
		got, _ := m.PercpuU64(c, "caller_sum")
		if want := callerSum(uint64(c), calls); got != want {
			t.Errorf("%s: cpu%d caller_sum %#x, want %#x (a call did not return traced_fn's value to its caller)", label, c, got, want)
		}
	}
}

// injectPoints lists injection places across the given functions.
func injectPoints(t *testing.T, spec *scenario.Spec, syms ...string) []string {
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range syms {
		out = append(out, insnStarts(t, img, s)...)
	}
	return out
}

const sweepSeeds = 50

// firedRules counts the injection rules of spec that raised their interrupt.
func firedRules(o *observer, spec *scenario.Spec) int {
	n := 0
	for _, in := range spec.Inject {
		if o.fired(in) {
			n++
		}
	}
	return n
}

// requireFired wants most moved injections (two rules per seed) to have
// fired: a point a CPU never reached proves nothing.
func requireFired(t *testing.T, fired int) {
	t.Helper()
	if fired < sweepSeeds {
		t.Errorf("only %d of %d moved injections fired", fired, 2*sweepSeeds)
	}
	t.Logf("%d of %d moved injections fired", fired, 2*sweepSeeds)
}

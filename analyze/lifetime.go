package analyze

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/format"
)

// lifetime judges accesses to memory whose scope has ended, and releases
// of code that a context will still return or resume into.
//
// Rules:
//
//   - dead frame: a load, store or instruction fetch into another
//     context's stack below that stack's current RSP is a finding. x86-64
//     kernel code has no red zone (-mno-red-zone), so the words below RSP
//     belong to no frame: the owner returned from (or popped) the frame
//     that held them. The 2022 text_poke_bp race is one: a CPU in the int3
//     handler read the patcher's on-stack descriptor pointer just before
//     the patcher cleared it, the patcher returned, and the CPU then
//     incremented a refcount in the patcher's dead frame (Linux commit
//     efd608fa7403, "x86/alternative: Fix race in try_get_desc()", which
//     moved the descriptor off the stack). The finding names the access,
//     the stack's owner and the seq (and instruction) at which the owner's
//     RSP rose above the address, and, when the accessing context had
//     loaded a pointer to it from memory that is no stack (a descriptor's
//     address published in a global), that load: whether it came before
//     the frame died (a stale pointer kept too long) or after (a pointer
//     published too long).
//   - stale pointer (use after scope in a reused frame): when a context
//     loaded a pointer into another context's stack from memory that is no
//     stack, the analyzer follows the frame instance it points into: the
//     owner's RSP rising above the value ends it, falling below it again
//     starts a new one over the same words. An access by that context
//     (same CPU, task and depth) in [pointer, bound) - bound: the next
//     return address above the pointer on the stack (a frame's locals lie
//     below its return address), at most ltPtrSpan - after both is a
//     finding naming the load, the scope's end and the reuse, even though
//     the words are live again: the 2022 race's dangerous form, the
//     handler incrementing a refcount inside the patcher's next frame.
//     The context's newest pointer covering the address decides (one
//     loaded after the reuse points into the new frame, no finding), and
//     a handler's pointers are forgotten when it returns (IRETQ).
//   - freed memory: a load, store or fetch in memory released by vfree or
//     module_memfree is a finding naming the free; the machine unmaps it,
//     so the access is the #PF (trap row with CR2) the kernel would take.
//     A text_poke whose target or source lies in released memory is one
//     too, at the call of text_poke (the machine oopses in the service,
//     recording no access row).
//   - freed or rewritten under a task (the rule synchronize_rcu_tasks()
//     enforces for trampolines): at a vfree/module_memfree, every live
//     resume address into the freed range - a return address a CALL pushed
//     or an interrupted RIP a delivery pushed, on any stack, still above
//     that stack's RSP - is a finding naming the task that will resume
//     there (switched out, i.e. preempted, or running deeper). At a
//     text_poke of [a, a+n), a resume address strictly inside the range is
//     one too: the task would resume in the middle of the new bytes (an
//     address at a itself resumes at an instruction start, which is what
//     text_poke_bp's int3 protocol makes safe; a #BP frame's saved RIP is
//     taken one byte back, at the int3, since its handler decides where
//     it resumes). A poke that writes the rest of an instruction whose
//     int3 the same CPU poked just before (text_poke_bp's second step)
//     covers the instruction from the int3 on. An interrupted task whose
//     straight-line path (fall-through and direct JMPs from its RIP, in
//     the code as it is now) jumps strictly inside that range is a
//     finding too: a kprobe's boost slot jumping back behind the probed
//     instruction that an optprobe's jump now covers (Linux commit
//     a30b85df7d59, "kprobes: Use synchronize_rcu_tasks() for optprobe
//     with CONFIG_PREEMPT=y"). Linux's dynamic ftrace trampolines are freed only after
//     synchronize_rcu_tasks() for this reason (commit 0598e4f08e3d,
//     "ftrace: Add use of synchronize_rcu_tasks() with dynamic
//     trampolines": a task can be preempted indefinitely on one).
//
// What is not a finding (the false positives this design avoids):
//
//   - a CPU's accesses to the stack it runs on, at the start or the end of
//     the instruction: its own pushes land below RSP by definition, and
//     interrupt handlers that run on the interrupted task's stack are on
//     it too;
//   - a handler nested in the stack's last user (same CPU and task, deeper
//     trap depth) writing below the interrupted RSP on purpose: an
//     emulated push from an IST handler (int3_emulate_push);
//   - the words a delivery pushes (write rows of the CPU right before its
//     trap row, inside the frame the trap row names) even onto an IST
//     stack whose previous handler left its RSP elsewhere;
//   - anything below the lowest RSP a stack ever had: that memory was
//     never part of the stack's frames (adjacent stacks, a new task's
//     initial frame built by its creator).
//
// Stacks are found from RSP alone: a CPU's RSP moving by less than
// stackNear stays on its stack and extends it; a jump lands on the known
// stack whose extent holds it, else starts a new one (a task's first run,
// an IST stack's first delivery). A stack's RSP is its last user's: the
// RSP saved by switch_to() for a switched-out task, the frame an IST
// handler returned from. RSP is read before every instruction (insn rows)
// and, when the trace has register deltas, after it, so a scope ends at
// the instruction that ended it; without deltas it ends one instruction
// late, which only delays findings. Without load rows (format version 3,
// record --no-loads) only stores and fetches are judged and the result
// says so.
//
// Not judged: an access to a reused frame with an address the context did
// not load from memory that is no stack (computed, or read from a stack:
// an on-stack list's next entry), or through a pointer the per-CPU ring of
// ltPtrs loads no longer holds (when it pointed into an ended frame the
// result says so: incomplete, never clean); stack scanning (our slices do
// none).
type lifetime struct {
	stacks   []*ltStack // by lo (extents never overlap)
	cpus     []ltCPU
	freed    []ltFreed             // released ranges, by lo
	frees    []ltFree              // the free services seen whose perm rows follow
	switched map[uint32]format.Row // the switch row that last switched each task out
	isCall   []bool                // by op index
	clock    uint64
	// What a bound made the analyzer forget (hostile streams only):
	// stacks evicted, resume addresses not kept, freed ranges dropped,
	// pointers into ended frames pushed out of a ring.
	lostStacks, lostCodes, lostFreed uint64
	lostPtrs                         uint64 // stale pointers pushed out of a CPU's ring
	nended                           int    // pointers in the CPUs' rings whose frame instance has ended
}

// Bounds for hostile streams (real runs have a few dozen stacks, call
// depths of tens and a handful of frees).
const (
	stackNear      = 4096
	maxStacks      = 1024
	maxDeadSegs    = 512
	maxCodeSlots   = 1024
	maxFreed       = 4096
	maxLtPending   = 64
	maxSwitched    = 4096
	ltRegRSP       = format.ColRegRSP - format.ColRegRAX
	pfFetchErrCode = 0x10 // #PF error code I/D bit (SDM Vol. 3 §4.7)
)

type ltStack struct {
	lo, hi   uint64 // the lowest and highest RSP (or frame top) seen on it
	cur      uint64 // the RSP of its last user
	cpu      uint16 // the last user
	task     uint32
	depth    uint8
	ownCPU   uint16 // the first user: whose stack it is
	ownTask  uint32
	ownDepth uint8
	dead     []ltSeg  // parts of [lo, cur), by address, with when each died
	codes    []ltCode // live resume addresses on it, by address
	used     uint64   // clock of the last use (eviction)
	nwatch   int      // pointers in the CPUs' rings into it
}

type ltSeg struct {
	lo, hi uint64
	seq    uint64 // the row at which RSP rose over it
	rip    uint64 // the instruction (or IRETQ row) that raised it
	kind   format.Kind
	op     uint16
	to     uint64 // an iret row's return RIP
	cpu    uint16
	task   uint32
	depth  uint8
}

type ltCode struct {
	at     uint64 // the stack word
	val    uint64 // the resume address it holds
	seq    uint64 // when it was pushed
	rip    uint64 // by the CALL at rip (op), or the delivery that interrupted rip
	op     uint16
	vector int // -1: a CALL's return address, else the delivery's vector
	cpu    uint16
	task   uint32
	depth  uint8
}

type ltCPU struct {
	stk      *ltStack // after the last row
	startStk *ltStack // at the start of the current instruction
	lastSeq  uint64
	lastRIP  uint64
	lastOp   uint16
	int3At   uint64 // where this CPU last text_poked a lone int3 (int3Set)
	int3Set  bool
	pending  []format.Row
	ptrs     [ltPtrs]ltPtr // the last loads of a value pointing into a stack (ring)
	nptrs    int
}

// ltPtr is a pointer into a stack that a context loaded from memory that
// is no stack, with the fate of the frame instance it pointed into.
type ltPtr struct {
	row    format.Row // the load
	stk    *ltStack   // the stack its value points into (nil: forgotten)
	hi     uint64     // the object's bound: the next return address above it on the stack, or ltPtrSpan
	ended  bool       // the owner's RSP rose above the value since the load (or before it)
	end    ltSeg      // the rise that ended that frame instance
	reused bool       // when ended: the owner's RSP went below the value again since (a new frame instance)
	reuse  ltSeg      // the row at which it did
}

// ltPtrs is how many stack pointers a CPU loaded the analyzer remembers,
// to tell where a dead-frame access got its address.
const ltPtrs = 8

// ltPtrSpan is how far past a loaded pointer an access still counts as
// through it (a member of the structure it points at).
const ltPtrSpan = 512

type ltFree struct {
	seq    uint64
	svc    format.Service
	addr   uint64
	n      uint64 // text_poke: its length
	caller uint64 // the call that reached the service
	cpu    uint16
	task   uint32
	depth  uint8
	row    format.Row
}

type ltFreed struct {
	lo, hi uint64
	free   ltFree
}

func (*lifetime) ID() string { return "lifetime" }
func (*lifetime) Doc() string {
	return "Memory used after its scope ended: an access into another context's stack below its RSP (a dead frame) or, through a pointer loaded while the frame was live, after the frame ended and its words were reused by a newer one, an access to memory released by vfree/module_memfree, or a free or text_poke of code that a preempted or interrupted task will still resume into (a live return address or interrupted RIP in the range)."
}

func (*lifetime) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindLoad, format.KindTrap, format.KindIret,
		format.KindService, format.KindPerm, format.KindSwitch},
		Columns: []int{format.ColLen, format.ColOp, format.ColRSP, format.ColAddr, format.ColSize, format.ColOld, format.ColNew,
			format.ColAlias, format.ColVector, format.ColHandler, format.ColIST, format.ColErrCode, format.ColPermOld, format.ColPermNew,
			format.ColService, format.ColArg0, format.ColArg1, format.ColArg2, format.ColRegRSP}}
}

func (a *lifetime) Start(ctx *Context) error {
	a.cpus = make([]ltCPU, len(ctx.St.CPUs))
	a.switched = map[uint32]format.Row{}
	names := ctx.St.Meta.OpNames
	a.isCall = make([]bool, len(names))
	for i, nm := range names {
		a.isCall[i] = nm == "CALL"
	}
	if !ctx.St.Meta.Loads {
		ctx.Warn("the trace records no loads (format version 3 or record --no-loads): only stores and instruction fetches into dead frames and freed memory were judged")
	}
	return nil
}

func (a *lifetime) Event(ctx *Context, r *format.Row) {
	c := int(r.CPU)
	if c >= len(a.cpus) {
		return
	}
	a.clock++
	cp := &a.cpus[c]
	if r.Kind != format.KindWrite && len(cp.pending) > 0 {
		a.flush(ctx, cp, r)
	}
	switch r.Kind {
	case format.KindInsn:
		s := a.stay(cp, r, r.RSP)
		if s == nil {
			s = a.move(cp, r, r.RSP, ltSeg{seq: cp.lastSeq, rip: cp.lastRIP, kind: format.KindInsn, op: cp.lastOp})
		}
		cp.startStk = s
		cp.lastSeq, cp.lastRIP, cp.lastOp = r.Seq, r.RIP, r.Op
		if int(r.Op) < len(a.isCall) && a.isCall[r.Op] && s != nil {
			if !s.addCode(ltCode{at: r.RSP - 8, val: r.RIP + uint64(r.Len), seq: r.Seq, rip: r.RIP, op: r.Op, vector: -1, cpu: r.CPU, task: r.Task, depth: r.Depth}) {
				a.lostCodes++
			}
		}
		if sp, ok := r.Reg(ltRegRSP); ok {
			a.move(cp, r, sp, ltSeg{seq: r.Seq, rip: r.RIP, kind: format.KindInsn, op: r.Op})
		}
		a.judge(ctx, r, r.RIP, 1, "")
	case format.KindWrite:
		if r.Alias || r.Size == 0 {
			return
		}
		a.noteStore(r)
		if a.judgeable(r, r.Addr, uint64(r.Size)) {
			if len(cp.pending) >= maxLtPending {
				a.flush(ctx, cp, nil)
			}
			cp.pending = append(cp.pending, *r)
		}
	case format.KindLoad:
		a.judge(ctx, r, r.Addr, uint64(r.Size), "")
		// A pointer into a stack read from memory that is no stack (a
		// descriptor's address published in a global, not a spill
		// reloaded or a register an entry restores).
		if r.Size == 8 && a.find(r.Addr) == nil {
			if s := a.find(r.New); s != nil {
				a.notePointer(cp, r, s)
			}
		}
	case format.KindTrap:
		s := a.move(cp, r, r.RSP, ltSeg{seq: r.Seq, rip: r.RIP, kind: format.KindTrap})
		if s != nil {
			if top := r.RSP + uint64(r.Size); top > s.hi {
				s.hi = top
			}
			at := r.RSP
			if vectorHasErrorCode(r.Vector) {
				at += 8
			}
			if !s.addCode(ltCode{at: at, val: r.RIP, seq: r.Seq, rip: r.Handler, vector: int(r.Vector), cpu: r.CPU, task: r.Task, depth: r.Depth}) {
				a.lostCodes++
			}
		}
		if r.Vector == 14 && r.HasAddr {
			what := "access"
			if r.HasErrCode && r.ErrCode&pfFetchErrCode != 0 {
				what = "instruction fetch"
			} else if r.HasErrCode && r.ErrCode&2 != 0 {
				what = "store"
			} else if r.HasErrCode {
				what = "load"
			}
			a.judgeFreed(ctx, r, r.Addr, 1, what+" (a #PF)")
		}
	case format.KindIret:
		a.move(cp, r, r.RSP, ltSeg{seq: r.Seq, rip: r.RIP, kind: format.KindIret, to: r.Handler})
		a.endDeliveries(r)
		a.endHandlerPointers(cp, r)
	case format.KindService:
		switch r.Service {
		case format.Service(svcVfree), format.Service(svcModuleFree):
			kept := *r
			kept.Handler = cp.lastRIP
			a.frees = append(a.frees[:0], ltFree{seq: r.Seq, svc: r.Service, addr: r.Args[0], caller: cp.lastRIP,
				cpu: r.CPU, task: r.Task, depth: r.Depth, row: kept})
		case format.Service(svcTextPoke):
			n := r.Args[2]
			var b [1]byte
			if n == 1 && ctx.St.Mem.Read(r.Args[1], b[:]) && b[0] == 0xcc {
				// text_poke_bp's first step: the int3 that guards the
				// instruction whose rest the next poke writes.
				cp.int3At, cp.int3Set = r.Args[0], true
			}
			lo := r.Args[0]
			if cp.int3Set && lo == cp.int3At+1 {
				lo = cp.int3At // the rest of the instruction the int3 starts
			}
			if hi := r.Args[0] + n; n > 0 && n <= 1<<16 && hi-lo > 1 {
				kept := *r
				kept.Handler = cp.lastRIP
				a.resumeIn(ctx, lo, hi, true, ltFree{seq: r.Seq, svc: r.Service, addr: r.Args[0], n: n, caller: cp.lastRIP,
					cpu: r.CPU, task: r.Task, depth: r.Depth, row: kept}, "rewrote")
			}
			if n > 0 && n <= 1<<16 {
				// A poke into (or from) released memory: patching code
				// whose text was freed (a jump entry in a module's init
				// text after do_init_module() freed it). The machine
				// oopses in the service, before any row of the write, so
				// the service row is the access; it is placed at the
				// call of text_poke, the row's own RIP being its stub.
				at := *r
				at.RIP = cp.lastRIP
				a.judgeFreed(ctx, &at, r.Args[0], n, fmt.Sprintf("text_poke of %d byte(s)", n))
				a.judgeFreed(ctx, &at, r.Args[1], n, fmt.Sprintf("text_poke's read of its %d-byte source", n))
			}
		}
		if sp, ok := r.Reg(ltRegRSP); ok {
			a.move(cp, r, sp, ltSeg{seq: r.Seq, rip: cp.lastRIP, kind: format.KindInsn, op: cp.lastOp})
		}
	case format.KindPerm:
		a.perm(ctx, r)
	case format.KindSwitch:
		if len(a.switched) < maxSwitched {
			a.switched[uint32(r.Old)] = format.Row{Seq: r.Seq, Kind: r.Kind, CPU: r.CPU, Task: r.Task, Depth: r.Depth, RIP: r.RIP, Old: r.Old, New: r.New}
		}
		delete(a.switched, uint32(r.New))
	}
}

// endDeliveries forgets, at an IRETQ that resumes a context (the row's CPU,
// task and depth), the interrupted RIPs that deliveries to that context or
// deeper ones pushed, on any stack: those handlers have returned. The RSP
// rise kills them only on the stack the IRETQ pops; an entry that copies
// its hardware frame and returns through the copy (the base's nested-NMI
// entry) leaves the original frame on its IST stack above the copy, dead
// but below no RSP.
func (a *lifetime) endDeliveries(r *format.Row) {
	for _, s := range a.stacks {
		out := s.codes[:0]
		for _, c := range s.codes {
			if c.vector < 0 || c.cpu != r.CPU || c.task != r.Task || c.depth < r.Depth {
				out = append(out, c)
			}
		}
		s.codes = out
	}
}

// Service ids (format.Services) the rules read.
const (
	svcVfree      = 13
	svcModuleFree = 14
)

// stay is move for an sp that is where cp's stack's RSP already is (most
// instructions): nothing rises or falls, the stack is only marked used by
// r's context. nil: sp is elsewhere (call move).
func (a *lifetime) stay(cp *ltCPU, r *format.Row, sp uint64) *ltStack {
	s := cp.stk
	if s == nil || sp != s.cur || sp < s.lo || sp > s.hi {
		return nil
	}
	s.used = a.clock
	s.cpu, s.task, s.depth = r.CPU, r.Task, r.Depth
	return s
}

// move sets cp's RSP to sp (at row r; a rise is attributed to seg's
// row) and returns the stack it is on.
func (a *lifetime) move(cp *ltCPU, r *format.Row, sp uint64, seg ltSeg) *ltStack {
	s := cp.stk
	if s == nil || sp < s.lo || sp > s.hi {
		if t := a.find(sp); t != nil {
			s = t
		} else if s == nil || sp+stackNear < s.lo || sp > s.hi+stackNear || a.between(s, sp) {
			s = a.newStack(r, sp)
		}
	}
	s.used = a.clock
	seg.cpu, seg.task, seg.depth = r.CPU, r.Task, r.Depth
	old := s.cur
	s.setRSP(sp, seg)
	if s.nwatch > 0 && sp != old {
		a.scopes(s, old, sp, seg)
	}
	s.cpu, s.task, s.depth = r.CPU, r.Task, r.Depth
	cp.stk = s
	return s
}

// between reports whether extending s to sp would reach over another
// stack.
func (a *lifetime) between(s *ltStack, sp uint64) bool {
	lo, hi := min(s.lo, sp), max(s.hi, sp)
	i := sort.Search(len(a.stacks), func(i int) bool { return a.stacks[i].hi >= lo })
	for ; i < len(a.stacks) && a.stacks[i].lo <= hi; i++ {
		if a.stacks[i] != s {
			return true
		}
	}
	return false
}

// find returns the stack whose extent holds addr.
func (a *lifetime) find(addr uint64) *ltStack {
	n := len(a.stacks)
	if n == 0 {
		return nil
	}
	if last := a.stacks[n-1]; addr >= last.lo {
		// At or above the highest stack (every instruction fetch of
		// text above the stacks): the search would end at it.
		if addr <= last.hi {
			return last
		}
		return nil
	}
	i := sort.Search(n, func(i int) bool { return a.stacks[i].lo > addr })
	if i == 0 {
		return nil
	}
	if s := a.stacks[i-1]; addr <= s.hi {
		return s
	}
	return nil
}

func (a *lifetime) newStack(r *format.Row, sp uint64) *ltStack {
	if len(a.stacks) >= maxStacks {
		// A hostile stream: forget the stack used longest ago.
		old := 0
		for i, s := range a.stacks {
			if s.used < a.stacks[old].used {
				old = i
			}
		}
		gone := a.stacks[old]
		a.lostStacks++
		a.stacks = append(a.stacks[:old], a.stacks[old+1:]...)
		for i := range a.cpus {
			if a.cpus[i].stk == gone {
				a.cpus[i].stk = nil
			}
			if a.cpus[i].startStk == gone {
				a.cpus[i].startStk = nil
			}
			for j := range a.cpus[i].ptrs {
				if a.cpus[i].ptrs[j].stk == gone {
					a.dropPointer(&a.cpus[i].ptrs[j])
				}
			}
		}
	}
	s := &ltStack{lo: sp, hi: sp, cur: sp, ownCPU: r.CPU, ownTask: r.Task, ownDepth: r.Depth}
	if r.Kind == format.KindTrap {
		s.ownDepth = r.Depth + 1
	}
	i := sort.Search(len(a.stacks), func(i int) bool { return a.stacks[i].lo > sp })
	a.stacks = append(a.stacks, nil)
	copy(a.stacks[i+1:], a.stacks[i:])
	a.stacks[i] = s
	return s
}

// setRSP moves the stack's RSP: a rise kills [cur, sp) (at seg's seq) and
// the resume addresses there; a fall revives what it covers.
func (s *ltStack) setRSP(sp uint64, seg ltSeg) {
	s.lo, s.hi = min(s.lo, sp), max(s.hi, sp)
	switch {
	case sp > s.cur:
		seg.lo, seg.hi = s.cur, sp
		if n := len(s.dead); n > 0 && s.dead[n-1].hi == seg.lo && s.dead[n-1].seq == seg.seq {
			s.dead[n-1].hi = sp
		} else {
			if n >= maxDeadSegs {
				// Merge the lowest two: their scope had ended by the
				// later of the two.
				s.dead[1].lo = s.dead[0].lo
				if s.dead[0].seq > s.dead[1].seq {
					s.dead[1].seq, s.dead[1].rip = s.dead[0].seq, s.dead[0].rip
				}
				// Shift down in place: reslicing the front away would
				// make every later append reallocate.
				s.dead = s.dead[:copy(s.dead, s.dead[1:])]
			}
			s.dead = append(s.dead, seg)
		}
		k := 0
		for k < len(s.codes) && s.codes[k].at < sp {
			k++
		}
		if k > 0 {
			// In place, keeping the capacity (each call pushes one,
			// each return pops one: no allocation per call).
			s.codes = s.codes[:copy(s.codes, s.codes[k:])]
		}
	case sp < s.cur:
		for n := len(s.dead); n > 0; n = len(s.dead) {
			d := &s.dead[n-1]
			if d.lo >= sp {
				s.dead = s.dead[:n-1]
				continue
			}
			if d.hi > sp {
				d.hi = sp
			}
			break
		}
	}
	s.cur = sp
}

// addCode records a resume address pushed at c.at (kept by address); false:
// the stack holds as many as the bound allows and this one is not kept.
func (s *ltStack) addCode(c ltCode) bool {
	i := sort.Search(len(s.codes), func(i int) bool { return s.codes[i].at >= c.at })
	if i < len(s.codes) && s.codes[i].at == c.at {
		s.codes[i] = c
		return true
	}
	if len(s.codes) >= maxCodeSlots {
		return false
	}
	s.codes = append(s.codes, ltCode{})
	copy(s.codes[i+1:], s.codes[i:])
	s.codes[i] = c
	return true
}

// noteStore follows a store over a pushed resume address (a kretprobe
// rewriting a return address, a handler rewriting regs->ip).
func (a *lifetime) noteStore(r *format.Row) {
	s := a.find(r.Addr)
	if s == nil {
		return
	}
	for i := range s.codes {
		if c := &s.codes[i]; c.at == r.Addr && r.Size == 8 {
			c.val = r.New
		}
	}
}

// dead returns the stack whose dead part [lo, cur) addr..addr+n overlaps
// and the segment that tells when, for an access by row r that is not
// its own stack's.
func (a *lifetime) dead(r *format.Row, addr, n uint64) (*ltStack, *ltSeg) {
	s := a.find(addr)
	if s == nil || addr >= s.cur || addr+n <= s.lo {
		return nil, nil
	}
	cp := &a.cpus[r.CPU]
	if s == cp.stk || s == cp.startStk || (s.cpu == r.CPU && s.task == r.Task) {
		return nil, nil
	}
	for i := len(s.dead) - 1; i >= 0; i-- {
		if d := &s.dead[i]; addr < d.hi && addr+n > d.lo {
			return s, d
		}
	}
	return nil, nil
}

// judgeable reports whether a store would be a finding (held until the
// CPU's next row: a delivery's pushes are not).
func (a *lifetime) judgeable(r *format.Row, addr, n uint64) bool {
	s, _ := a.dead(r, addr, n)
	return s != nil || a.stale(r, addr, n) != nil || a.freedAt(addr, n) != nil
}

// flush judges the stores cp held; those inside the frame a trap row r
// pushed are the delivery's.
func (a *lifetime) flush(ctx *Context, cp *ltCPU, r *format.Row) {
	ps := cp.pending
	cp.pending = nil
	for i := range ps {
		p := &ps[i]
		if r != nil && r.Kind == format.KindTrap && p.Addr >= r.RSP && p.Addr < r.RSP+uint64(r.Size) {
			continue
		}
		a.judge(ctx, p, p.Addr, uint64(p.Size), "")
	}
}

// judge reports an access by row r to addr..addr+n in a dead frame or
// freed memory (what names the access; "": from r's kind).
func (a *lifetime) judge(ctx *Context, r *format.Row, addr, n uint64, what string) {
	if s, d := a.dead(r, addr, n); s != nil {
		a.reportDead(ctx, r, addr, what, s, d)
		return
	}
	if p := a.stale(r, addr, n); p != nil {
		a.reportStale(ctx, r, addr, what, p)
		return
	}
	a.judgeFreed(ctx, r, addr, n, what)
}

// accessWhat names row r's access for a message ("8-byte load"); what,
// when not "", already does.
func accessWhat(r *format.Row, what string) string {
	switch {
	case what != "":
		return what
	case r.Kind == format.KindLoad:
		return fmt.Sprintf("%d-byte load", r.Size)
	case r.Kind == format.KindWrite:
		return fmt.Sprintf("%d-byte store", r.Size)
	}
	return "instruction fetch"
}

func (a *lifetime) reportDead(ctx *Context, r *format.Row, addr uint64, what string, s *ltStack, d *ltSeg) {
	what = accessWhat(r, what)
	rise := format.Row{Seq: d.seq, Kind: d.kind, CPU: d.cpu, Task: d.task, Depth: d.depth, RIP: d.rip, Op: d.op, Handler: d.to, RSP: d.lo}
	access := *r
	by := fmt.Sprintf("%s (seq %d, cpu%d %s)", placeLine(ctx, r.RIP), r.Seq, r.CPU, contextName(r))
	evidence := []uint64{d.seq, r.Seq}
	keep := []*format.Row{&rise, &access}
	how := ""
	if pp := a.pointerTo(r, addr); pp != nil {
		p := &pp.row
		// Where the address came from: the accessing CPU loaded a
		// pointer to it (a descriptor published by the owner).
		when := "after"
		if p.Seq < d.seq {
			when = "before"
		}
		how = fmt.Sprintf("; cpu%d had loaded the pointer %#x from %s at seq %d (%s), %s the frame died",
			p.CPU, p.New, ctx.Describe(p.Addr), p.Seq, placeLine(ctx, p.RIP), when)
		pr := *p
		keep = append(keep, &pr)
		evidence = []uint64{p.Seq, d.seq, r.Seq}
		if p.Seq > d.seq {
			evidence = []uint64{d.seq, p.Seq, r.Seq}
		}
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: evidence[0], SeqLast: r.Seq, RIP: r.RIP, Evidence: evidence,
		Context: contextName(r),
		Story:   ctx.story.tellWith(ctx.St, int(r.CPU), evidence, keep...),
		Message: fmt.Sprintf("%s at %#x by %s into a dead frame of %s: the address is below that stack's RSP (%#x), "+
			"which rose above it at seq %d when cpu%d %s at %s left the frame; the frame's scope had ended%s",
			what, addr, by, s.owner(), s.cur, d.seq, d.cpu, keyName(ctxKey{d.cpu, d.task, d.depth}), placeLine(ctx, d.rip), how),
	}, fmt.Sprintf("dead|%#x", r.RIP))
}

// pointerTo returns the newest pointer load of r's context (CPU, task,
// depth), before r, whose value addr lies at or just past (nil: none
// remembered).
func (a *lifetime) pointerTo(r *format.Row, addr uint64) *ltPtr {
	cp := &a.cpus[r.CPU]
	for i := 1; i <= min(cp.nptrs, ltPtrs); i++ {
		p := &cp.ptrs[(cp.nptrs-i)%ltPtrs]
		if p.stk != nil && p.row.Seq < r.Seq && p.row.Task == r.Task && p.row.Depth == r.Depth && p.row.New <= addr && addr-p.row.New < ltPtrSpan {
			return p
		}
	}
	return nil
}

// notePointer remembers the load r of a pointer into stack s (from memory
// that is no stack) by cp's context, with the frame instance it points
// into: live, or already ended at the rise that killed it.
func (a *lifetime) notePointer(cp *ltCPU, r *format.Row, s *ltStack) {
	if s == cp.stk || s == cp.startStk || (s.cpu == r.CPU && s.task == r.Task) {
		return // its own stack: never judged
	}
	v := r.New
	p := &cp.ptrs[cp.nptrs%ltPtrs]
	if p.stk != nil && p.ended {
		// A pointer to a frame instance that has ended, still held:
		// an access through it after a reuse would go unjudged.
		a.lostPtrs++
	}
	a.dropPointer(p)
	cp.nptrs++
	*p = ltPtr{row: *r, stk: s, hi: v + ltPtrSpan}
	s.nwatch++
	// The object ends below the next return address above it: a frame
	// holds its locals below the address its call pushed.
	i := sort.Search(len(s.codes), func(i int) bool { return s.codes[i].at >= v })
	for ; i < len(s.codes); i++ {
		if c := &s.codes[i]; c.vector < 0 {
			p.hi = min(p.hi, c.at)
			break
		}
	}
	if v < s.cur {
		for j := len(s.dead) - 1; j >= 0; j-- {
			if d := &s.dead[j]; v >= d.lo && v < d.hi {
				p.ended, p.end = true, *d
				a.nended++
				break
			}
		}
	}
}

// dropPointer forgets a remembered pointer.
func (a *lifetime) dropPointer(p *ltPtr) {
	if p.stk != nil {
		p.stk.nwatch--
		if p.ended {
			a.nended--
		}
	}
	*p = ltPtr{}
}

// scopes follows, at a move of s's RSP from old to sp (seg: the rise's
// row, or the fall's), the frame instances remembered pointers point into:
// a rise over a pointer's value ends its instance, a fall below it after
// that starts a new one (the owner reuses the words).
func (a *lifetime) scopes(s *ltStack, old, sp uint64, seg ltSeg) {
	for c := range a.cpus {
		for j := range a.cpus[c].ptrs {
			p := &a.cpus[c].ptrs[j]
			if p.stk != s {
				continue
			}
			v := p.row.New
			switch {
			case sp > old && !p.ended && v >= old && v < sp:
				p.ended, p.end = true, seg
				p.end.lo, p.end.hi = old, sp
				a.nended++
			case sp < old && p.ended && !p.reused && v >= sp && v < old:
				p.reused = true
				p.reuse = seg // the instruction (or delivery) that lowered RSP
				p.reuse.lo, p.reuse.hi = sp, old
			}
		}
	}
}

// endHandlerPointers forgets, at an IRETQ r that resumes cp's context, the
// pointers its handlers (deeper contexts of the task) loaded: they have
// returned, and a later handler at that depth loads its own.
func (a *lifetime) endHandlerPointers(cp *ltCPU, r *format.Row) {
	for j := range cp.ptrs {
		if p := &cp.ptrs[j]; p.stk != nil && p.row.Task == r.Task && p.row.Depth > r.Depth {
			a.dropPointer(p)
		}
	}
}

// stale returns the pointer through which row r's access to addr..addr+n,
// in a live part of another context's stack, uses a frame instance that
// has ended and been reused since r's context loaded it: the newest
// pointer of the context whose object bound holds addr, when its instance
// ended and the owner's RSP went below it again (nil otherwise, and when
// the context loaded a pointer to the new instance since).
func (a *lifetime) stale(r *format.Row, addr, n uint64) *ltPtr {
	if a.nended == 0 {
		return nil
	}
	s := a.find(addr)
	if s == nil || addr < s.cur {
		return nil // no stack, or its dead part (the dead-frame rule's)
	}
	cp := &a.cpus[r.CPU]
	if s == cp.stk || s == cp.startStk || (s.cpu == r.CPU && s.task == r.Task) {
		return nil
	}
	for i := 1; i <= min(cp.nptrs, ltPtrs); i++ {
		p := &cp.ptrs[(cp.nptrs-i)%ltPtrs]
		if p.stk != s || p.row.Seq >= r.Seq || p.row.Task != r.Task || p.row.Depth != r.Depth || addr < p.row.New || addr+n > p.hi {
			continue
		}
		if p.ended && p.reused {
			return p
		}
		return nil
	}
	return nil
}

// reportStale reports row r's access at addr through the stale pointer p.
func (a *lifetime) reportStale(ctx *Context, r *format.Row, addr uint64, what string, p *ltPtr) {
	what = accessWhat(r, what)
	s, d, u := p.stk, &p.end, &p.reuse
	load := p.row
	rise := format.Row{Seq: d.seq, Kind: d.kind, CPU: d.cpu, Task: d.task, Depth: d.depth, RIP: d.rip, Op: d.op, Handler: d.to, RSP: d.lo}
	reuse := format.Row{Seq: u.seq, Kind: u.kind, CPU: u.cpu, Task: u.task, Depth: u.depth, RIP: u.rip, Op: u.op, RSP: u.lo}
	access := *r
	evidence := []uint64{load.Seq, d.seq, u.seq, r.Seq}
	sort.Slice(evidence, func(i, j int) bool { return evidence[i] < evidence[j] })
	when := "while that frame was live"
	if load.Seq > d.seq {
		when = "after that frame had died"
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: evidence[0], SeqLast: r.Seq, RIP: r.RIP, Evidence: evidence,
		Context: contextName(r),
		Story:   ctx.story.tellWith(ctx.St, int(r.CPU), evidence, &load, &rise, &reuse, &access),
		Message: fmt.Sprintf("%s at %#x by %s (seq %d, cpu%d %s) through a stale pointer into %s: cpu%d had loaded the pointer %#x from %s at seq %d (%s) %s; "+
			"its scope ended at seq %d when cpu%d %s at %s raised RSP above it, and the owner reused the words from seq %d (cpu%d %s at %s took RSP to %#x), "+
			"so the access lands in a newer frame than the one the pointer was taken from (use after scope)",
			what, addr, placeLine(ctx, r.RIP), r.Seq, r.CPU, contextName(r), s.owner(), load.CPU, load.New, ctx.Describe(load.Addr), load.Seq, placeLine(ctx, load.RIP), when,
			d.seq, d.cpu, keyName(ctxKey{d.cpu, d.task, d.depth}), placeLine(ctx, d.rip),
			u.seq, u.cpu, keyName(ctxKey{u.cpu, u.task, u.depth}), placeLine(ctx, u.rip), u.lo),
	}, fmt.Sprintf("stale|%#x", r.RIP))
}

// owner names whose stack s is.
func (s *ltStack) owner() string {
	if s.ownDepth > 0 {
		return fmt.Sprintf("cpu%d's interrupt stack (first used by a handler of task %d)", s.ownCPU, s.ownTask)
	}
	if s.ownTask == 0 {
		return fmt.Sprintf("the boot stack of cpu%d (task 0)", s.ownCPU)
	}
	return fmt.Sprintf("the stack of task %d (cpu%d)", s.ownTask, s.ownCPU)
}

// placeLine names an instruction: "symbol+0xoff (file:line)".
func placeLine(ctx *Context, rip uint64) string {
	if fl := ctx.St.Syms.Line(rip); fl != "" {
		return ctx.Describe(rip) + " (" + fl + ")"
	}
	return ctx.Describe(rip)
}

func (a *lifetime) freedAt(addr, n uint64) *ltFreed {
	if len(a.freed) == 0 {
		return nil // (every fetch, load and store asks)
	}
	i := sort.Search(len(a.freed), func(i int) bool { return a.freed[i].hi > addr })
	if i < len(a.freed) && a.freed[i].lo < addr+n {
		return &a.freed[i]
	}
	return nil
}

func (a *lifetime) judgeFreed(ctx *Context, r *format.Row, addr, n uint64, what string) {
	f := a.freedAt(addr, n)
	if f == nil {
		return
	}
	what = accessWhat(r, what)
	access := *r
	by := " by " + placeLine(ctx, r.RIP)
	if r.RIP == addr {
		by = "" // fetched where a return or jump took the CPU
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, SeqFirst: f.free.seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{f.free.seq, r.Seq},
		Context: contextName(r),
		Story:   ctx.story.tellWith(ctx.St, int(r.CPU), []uint64{f.free.seq, r.Seq}, &f.free.row, &access),
		Message: fmt.Sprintf("%s at %#x%s (seq %d, cpu%d %s) in memory released at seq %d by %s(%#x) on cpu%d %s, called from %s",
			what, addr, by, r.Seq, r.CPU, contextName(r), f.free.seq, f.free.svc, f.free.addr, f.free.cpu,
			keyName(ctxKey{f.free.cpu, f.free.task, f.free.depth}), placeLine(ctx, f.free.caller)),
	}, fmt.Sprintf("freed|%#x", r.RIP))
}

// perm follows the pages a free unmapped (and any page mapped again).
func (a *lifetime) perm(ctx *Context, r *format.Row) {
	if r.Alias {
		return
	}
	n := uint64(max(r.Size, 1))
	lo, hi := r.Addr, r.Addr+n<<12
	if hi < lo {
		return
	}
	if r.PermNew != 0 {
		a.unfree(lo, hi)
		return
	}
	if (r.Service != format.Service(svcVfree) && r.Service != format.Service(svcModuleFree)) || len(a.frees) == 0 {
		return
	}
	f := a.frees[0]
	a.unfree(lo, hi)
	if len(a.freed) >= maxFreed {
		a.freed = a.freed[1:]
		a.lostFreed++
	}
	i := sort.Search(len(a.freed), func(i int) bool { return a.freed[i].lo >= lo })
	a.freed = append(a.freed, ltFreed{})
	copy(a.freed[i+1:], a.freed[i:])
	a.freed[i] = ltFreed{lo: lo, hi: hi, free: f}
	a.resumeIn(ctx, lo, hi, false, f, "released")
}

// unfree forgets freed ranges within [lo, hi) (mapped again).
func (a *lifetime) unfree(lo, hi uint64) {
	out := a.freed[:0]
	for _, f := range a.freed {
		if f.hi <= lo || f.lo >= hi {
			out = append(out, f)
		}
	}
	a.freed = out
}

// resumeIn reports every live resume address in [lo, hi) (strictly inside
// when strict) at the free or rewrite f.
func (a *lifetime) resumeIn(ctx *Context, lo, hi uint64, strict bool, f ltFree, verb string) {
	for _, s := range a.stacks {
		for i := range s.codes {
			c := &s.codes[i]
			if c.at < s.cur {
				continue
			}
			at := c.val
			if c.vector == 3 {
				at-- // the int3 itself: its handler decides where the CPU resumes
			}
			if at >= lo && at < hi && !(strict && at == lo) {
				a.reportResume(ctx, s, c, lo, hi, f, verb, "")
				continue
			}
			if strict && c.vector >= 0 && c.vector != 3 {
				// Where an interrupted task goes next without a
				// decision of its own: a rewrite that lands its
				// straight-line path inside the new bytes (a kprobe's
				// boost slot jumping back behind the probed
				// instruction) resumes it mid-instruction too.
				if jmp, to, ok := a.pathInto(ctx, c.val, lo, hi); ok {
					a.reportResume(ctx, s, c, lo, hi, f, verb,
						fmt.Sprintf(", whose straight-line path jumps at %s to %s, inside the rewritten bytes", placeLine(ctx, jmp), ctx.Describe(to)))
				}
			}
		}
	}
}

// pathMax bounds the instructions pathInto follows.
const pathMax = 8

// pathInto follows the straight-line code from rip in memory as it is now
// (fall-through and direct JMPs, up to pathMax instructions, stopping at
// any other transfer of control) and reports a JMP whose target lies
// strictly inside [lo, hi), with the target.
func (a *lifetime) pathInto(ctx *Context, rip, lo, hi uint64) (jmp, to uint64, ok bool) {
	var buf [15]byte
	for i := 0; i < pathMax; i++ {
		if !ctx.St.Mem.Read(rip, buf[:]) {
			return 0, 0, false
		}
		in, err := x86asm.Decode(buf[:], 64)
		if err != nil || in.Len == 0 {
			return 0, 0, false
		}
		next := rip + uint64(in.Len)
		switch {
		case in.Op == x86asm.JMP:
			rel, direct := in.Args[0].(x86asm.Rel)
			if !direct {
				return 0, 0, false
			}
			next += uint64(int64(rel))
			if next > lo && next < hi {
				return rip, next, true
			}
		case transfersControl(in.Op):
			return 0, 0, false
		}
		rip = next
	}
	return 0, 0, false
}

// transfersControl reports whether op may go anywhere but the next
// instruction (a JMP is followed by pathInto itself).
func transfersControl(op x86asm.Op) bool {
	switch op {
	case x86asm.CALL, x86asm.RET, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.INT, x86asm.INTO,
		x86asm.UD1, x86asm.UD2, x86asm.HLT, x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.SYSCALL, x86asm.SYSRET,
		x86asm.LJMP, x86asm.LCALL:
		return true
	}
	return strings.HasPrefix(op.String(), "J")
}

func (a *lifetime) reportResume(ctx *Context, s *ltStack, c *ltCode, lo, hi uint64, f ltFree, verb, path string) {
	kind := fmt.Sprintf("a return address into it (pushed by a call at seq %d)", c.seq)
	if c.vector >= 0 {
		kind = fmt.Sprintf("the RIP a %s interrupted there (its frame pushed at seq %d)", format.VectorName(uint8(c.vector)), c.seq)
	}
	if path != "" {
		kind = fmt.Sprintf("the RIP a %s interrupted (its frame pushed at seq %d)%s", format.VectorName(uint8(c.vector)), c.seq, path)
	}
	// The story tells the push (the call, or the delivery) and the
	// switch that left the task there.
	push := format.Row{Seq: c.seq, Kind: format.KindInsn, CPU: c.cpu, Task: c.task, Depth: c.depth, RIP: c.rip, Op: c.op, RSP: c.at + 8}
	if c.vector >= 0 {
		push = format.Row{Seq: c.seq, Kind: format.KindTrap, CPU: c.cpu, Task: c.task, Depth: c.depth, RIP: c.val, Vector: uint8(c.vector), Handler: c.rip}
	}
	keep := []*format.Row{&push, &f.row}
	evidence := []uint64{c.seq, f.seq}
	state := fmt.Sprintf("running on cpu%d", s.cpu)
	if sw, ok := a.switched[c.task]; ok {
		state = fmt.Sprintf("switched out (preempted) at seq %d and not run since", sw.Seq)
		keep = append(keep, &sw)
		evidence = []uint64{c.seq, sw.Seq, f.seq}
	}
	what := fmt.Sprintf("%s(%#x)", f.svc, f.addr)
	why := "code may be freed only once no task can resume in it: synchronize_rcu_tasks() waits out a task preempted there, not one asleep in a function it called, which has passed a voluntary switch; that needs a count of the tasks inside, as BPF trampolines keep since commit e21aa341785c"
	if f.svc == format.Service(svcTextPoke) {
		what = fmt.Sprintf("text_poke(%s, %d bytes)", ctx.Describe(f.addr), f.n)
		why = "a rewrite must leave every address a task can resume at an instruction boundary: text_poke_bp()'s int3 guards only an instruction's first byte, so what it replaces must be one instruction, and code spanning several must first be left by every task (synchronize_rcu_tasks())"
	}
	ctx.Report(Finding{
		CPU: int(f.cpu), Task: f.task, SeqFirst: c.seq, SeqLast: f.seq, RIP: f.caller, Evidence: evidence,
		Context: keyName(ctxKey{f.cpu, f.task, f.depth}),
		Story:   ctx.story.tellWith(ctx.St, int(f.cpu), evidence, keep...),
		Message: fmt.Sprintf("%s at seq %d on cpu%d %s (called from %s) %s %#x..%#x while task %d (cpu%d, %s) still holds %s: "+
			"%s at stack word %#x; it will resume there (%s)",
			what, f.seq, f.cpu, keyName(ctxKey{f.cpu, f.task, f.depth}), placeLine(ctx, f.caller), verb, lo, hi,
			c.task, c.cpu, state, kind, ctx.Describe(c.val), c.at, why),
	}, fmt.Sprintf("resume|%#x|%d|%#x", f.caller, c.task, c.val))
}

func (a *lifetime) Finish(ctx *Context) {
	for i := range a.cpus {
		if len(a.cpus[i].pending) > 0 {
			a.flush(ctx, &a.cpus[i], nil)
		}
	}
	// A bound reached means something was not judged: the result must not
	// be clean because of it.
	if a.lostStacks > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d stacks were forgotten (more than %d at once): accesses to their dead frames were not judged", a.lostStacks, maxStacks))
	}
	if a.lostCodes > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d return addresses or interrupted RIPs were not kept (more than %d live on one stack): frees and rewrites under them were not judged", a.lostCodes, maxCodeSlots))
	}
	if a.lostPtrs > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d pointers into ended frames were forgotten (more than %d stack pointers loaded on one CPU): accesses through them to the reused frames were not judged", a.lostPtrs, ltPtrs))
	}
	if a.lostFreed > 0 {
		ctx.CannotCheck(fmt.Sprintf("%d freed ranges were forgotten (more than %d): accesses to them were not judged", a.lostFreed, maxFreed))
	}
}

package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"golang.org/x/arch/x86/x86asm"
)

// progress reports a run that did not finish: one the emulator stopped
// (outcome unsupported or error: the finding names where, and the result
// is incomplete as well), or one that ended on its
// instruction budget (outcome budget; not a finding when the scenario
// declares contract.terminates = false) or with no CPU able to go on
// (hung). Each CPU that had not called pt_cpu_done is a finding saying
// where it was: the loop it repeated at the end (the shortest cycle of
// instruction addresses its last instructions repeat), as a symbol+offset
// range, and the memory that loop polled (the loop's memory operands,
// decoded from the executed bytes, named by symbol when they are
// RIP-relative, absolute or per-CPU). A livelock or a lost IPI reads as a
// CPU spinning on a flag nobody will set.
//
// A trace that does not record its outcome (format versions 1 and 2) is
// judged by its events: a CPU that never called pt_cpu_done in a run that
// did not end on a fault is reported the same way, unless the file was cut
// short; so is one that records outcome done while its events show a CPU
// that never called pt_cpu_done (the footer and the events disagree).
type progress struct {
	doneSvc format.Service
	done    []bool
	ring    [][progressWindow]insnSeen
	percpu  [][progressWindow]string // the per-CPU variable each ring entry read, if any
	n       []int
	faulted bool
	// Each CPU's last event (kind, seq and task), from the replay state
	// at Finish (the analyzer sees only the kinds it needs).
	last     []format.Kind
	lastSeq  []uint64
	lastTask []uint32
}

// progressWindow is how many of each CPU's last instructions the loop is
// looked for in.
const progressWindow = 512

type insnSeen struct {
	seq    uint64
	rip    uint64
	len    uint8
	depth  uint8
	bytes  [15]byte
	percpu string // the per-CPU variable the instruction read, if any (set when told)
}

func (*progress) ID() string { return "progress" }
func (*progress) Doc() string {
	return "A run that did not finish (instruction budget, hang, or stopped by the emulator): the CPUs that did not reach pt_cpu_done, the loop each was spinning in and the memory it polled."
}

func (a *progress) Start(ctx *Context) error {
	n := len(ctx.St.CPUs)
	a.done = make([]bool, n)
	a.ring = make([][progressWindow]insnSeen, n)
	a.percpu = make([][progressWindow]string, n)
	a.n = make([]int, n)
	a.last, a.lastSeq, a.lastTask = nil, nil, nil
	for _, s := range format.Services {
		if s.Name == "pt_cpu_done" {
			a.doneSvc = format.Service(s.Value)
		}
	}
	return nil
}

func (a *progress) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindInsn, format.KindPercpuRead, format.KindLoad, format.KindService, format.KindFault},
		Columns: []int{format.ColLen, format.ColBytes, format.ColPercpuVar, format.ColPercpuCPU, format.ColService}}
}

func (a *progress) Event(ctx *Context, r *format.Row) {
	c := int(r.CPU)
	if c >= len(a.done) {
		return
	}
	switch r.Kind {
	case format.KindInsn:
		i := uint(a.n[c]) % progressWindow
		e := &a.ring[c][i]
		e.seq, e.rip, e.len, e.depth, e.bytes = r.Seq, r.RIP, r.Len, r.Depth, r.Bytes
		if a.percpu[c][i] != "" {
			a.percpu[c][i] = ""
		}
		a.n[c]++
	case format.KindPercpuRead, format.KindLoad:
		if a.n[c] > 0 && r.Percpu {
			i := uint(a.n[c]-1) % progressWindow
			if a.ring[c][i].rip == r.RIP && r.PercpuVar != "" {
				a.percpu[c][i] = r.PercpuVar
			}
		}
	case format.KindService:
		if r.Service == a.doneSvc {
			a.done[c] = true
		}
	case format.KindFault:
		a.faulted = true
	}
}

func (a *progress) Finish(ctx *Context) {
	n := len(ctx.St.CPUs)
	a.last, a.lastSeq, a.lastTask = make([]format.Kind, n), make([]uint64, n), make([]uint32, n)
	for c, cpu := range ctx.St.CPUs {
		a.last[c], a.lastSeq[c], a.lastTask[c] = cpu.Last, cpu.LastSeq, cpu.LastTask
	}
	why := ""
	switch ctx.Outcome {
	case format.OutcomeBudget:
		if ctx.St.Spec != nil && ctx.St.Spec.OpenEnded() {
			return
		}
		why = "the run ended on its instruction budget"
	case format.OutcomeHung:
		why = "the run hung: no CPU could make progress"
	case format.OutcomeUnsupported, format.OutcomeError:
		a.stopped(ctx)
		return
	case "":
		if ctx.Truncated || a.faulted {
			return
		}
		why = "the trace does not record how the run ended (outcome not recorded) and"
	case format.OutcomeDone:
		// The machine ends a run done only once every CPU called
		// pt_cpu_done: a trace saying done whose events show a CPU that
		// never did (a rewritten footer, a writer that lost events) is
		// not a finished run.
		why = "the trace records outcome done (every CPU finished), but"
	default:
		return
	}
	var stuck []int
	for c, d := range a.done {
		if !d {
			stuck = append(stuck, c)
		}
	}
	if len(stuck) == 0 {
		if ctx.Outcome == "" || ctx.Outcome == format.OutcomeDone {
			return // every CPU finished
		}
		// Every CPU called pt_cpu_done yet the run did not end: those
		// still executing are the ones that did not finish.
		for c := range a.done {
			if a.last[c] != format.KindHalt {
				stuck = append(stuck, c)
			}
		}
	}
	if len(stuck) == 0 {
		ctx.Report(Finding{CPU: 0, SeqFirst: ctx.St.Seq, SeqLast: ctx.St.Seq,
			Message: fmt.Sprintf("%s (%s) with every CPU idle", why, ctx.OutcomeDetail), Story: []string{}}, "run")
		return
	}
	names := make([]string, len(stuck))
	for i, c := range stuck {
		names[i] = fmt.Sprintf("cpu%d", c)
	}
	others := strings.Join(names, ", ")
	for _, c := range stuck {
		a.report(ctx, c, why, others)
	}
}

// stopped reports a run the emulator stopped (an instruction it does not
// implement, or an error) at the place the outcome names ("cpuN at
// symbol+off: ..."): whatever the slice would have done next is unknown.
func (a *progress) stopped(ctx *Context) {
	f := Finding{SeqFirst: ctx.St.Seq, SeqLast: ctx.St.Seq}
	var cpu int
	var where string
	if n, _ := fmt.Sscanf(ctx.OutcomeDetail, "cpu%d at %s", &cpu, &where); n == 2 && cpu >= 0 && cpu < len(a.done) {
		f.CPU, f.Task, f.Where = cpu, a.lastTask[cpu], strings.TrimSuffix(where, ":")
		f.Symbol, _, _ = strings.Cut(f.Where, "+")
		if a.n[cpu] > 0 {
			last := a.seen(cpu, a.n[cpu]-1)
			f.SeqFirst, f.SeqLast, f.Evidence = last.seq, last.seq, []uint64{last.seq}
		}
	}
	what := "the emulator could not go on"
	if ctx.Outcome == format.OutcomeUnsupported {
		what = "it reached an instruction the emulator does not implement"
	}
	f.Message = fmt.Sprintf("the run stopped before its CPUs finished: %s (%s); what the slice would have done next is unknown, so the run is incomplete", what, ctx.OutcomeDetail)
	ctx.Report(f, "stopped")
}

// seen is cpu c's instruction number i (of those kept), with the per-CPU
// variable it read.
func (a *progress) seen(c, i int) insnSeen {
	in := a.ring[c][i%progressWindow]
	in.percpu = a.percpu[c][i%progressWindow]
	return in
}

// report tells where cpu c was when the run ended.
func (a *progress) report(ctx *Context, c int, why, stuck string) {
	detail := ""
	if ctx.OutcomeDetail != "" {
		detail = " (" + ctx.OutcomeDetail + ")"
	}
	head := fmt.Sprintf("%s%s; %s did not finish", why, detail, stuck)
	if ctx.Outcome == "" || ctx.Outcome == format.OutcomeDone {
		head = fmt.Sprintf("%s %s never called pt_cpu_done", why, stuck)
	}
	cnt := min(a.n[c], progressWindow)
	if cnt == 0 {
		ctx.Report(Finding{CPU: c, Task: a.lastTask[c], SeqFirst: a.lastSeq[c], SeqLast: a.lastSeq[c],
			Message: fmt.Sprintf("%s: cpu%d executed no instruction", head, c)}, fmt.Sprintf("cpu%d", c))
		return
	}
	insns := make([]insnSeen, cnt)
	for j := range insns {
		insns[j] = a.seen(c, a.n[c]-cnt+j)
	}
	last := insns[cnt-1]
	if a.last[c] == format.KindHalt {
		ctx.Report(Finding{CPU: c, Task: a.lastTask[c], SeqFirst: last.seq, SeqLast: a.lastSeq[c], RIP: last.rip, Evidence: []uint64{last.seq, a.lastSeq[c]},
			Message: fmt.Sprintf("%s: cpu%d halted at %s waiting for an interrupt that never came", head, c, ctx.Describe(last.rip+uint64(last.len)))},
			fmt.Sprintf("cpu%d", c))
		return
	}
	loop, reps, whole := findLoop(insns)
	if loop == nil {
		ctx.Report(Finding{CPU: c, Task: a.lastTask[c], SeqFirst: last.seq, SeqLast: last.seq, RIP: last.rip, Evidence: []uint64{last.seq},
			Message: fmt.Sprintf("%s: cpu%d was running at %s, repeating no loop in its last %d instructions", head, c, ctx.Describe(last.rip), cnt)},
			fmt.Sprintf("cpu%d", c))
		return
	}
	lo, hi, head0 := loop[0].rip, loop[0].rip, 0
	for i, in := range loop {
		if in.rip < lo {
			lo, head0 = in.rip, i
		}
		hi = max(hi, in.rip)
	}
	// Show the loop from its lowest address (its head, for a loop that
	// branches back).
	loop = append(loop[head0:len(loop):len(loop)], loop[:head0]...)
	at := ctx.Describe(lo)
	if hi != lo {
		at += ".." + ctx.Describe(hi)
	}
	times := fmt.Sprintf("%d times", reps)
	if whole {
		times = fmt.Sprintf("at least %d times (all of its last %d instructions)", reps, cnt)
	}
	msg := fmt.Sprintf("%s: cpu%d was spinning in a %d-instruction loop at %s, repeated %s up to the end", head, c, len(loop), at, times)
	if polled := a.polled(ctx, loop); len(polled) > 0 {
		msg += ", polling " + strings.Join(polled, ", ")
	} else {
		msg += ", touching no memory"
	}
	if len(loop) <= 8 {
		var ins []string
		for _, in := range loop {
			ins = append(ins, intel(ctx, in))
		}
		msg += " (loop: " + strings.Join(ins, "; ") + ")"
	}
	first := loop[0]
	ctx.Report(Finding{CPU: c, Task: a.lastTask[c], SeqFirst: first.seq, SeqLast: last.seq, RIP: first.rip, Evidence: []uint64{first.seq, last.seq},
		Message: msg}, fmt.Sprintf("cpu%d", c))
}

// findLoop finds the shortest cycle of instruction addresses that the end
// of insns repeats at least twice, at the depth of the last instruction
// (an interrupt taken inside the loop is skipped). It returns the last
// iteration, how many whole iterations the window holds, and whether the
// loop fills the whole window.
func findLoop(insns []insnSeen) (loop []insnSeen, reps int, whole bool) {
	d := insns[len(insns)-1].depth
	var xs []insnSeen
	for _, in := range insns {
		if in.depth == d {
			xs = append(xs, in)
		}
	}
	n := len(xs)
	for p := 1; p <= n/2; p++ {
		ok := true
		for i := 0; i < p; i++ {
			if xs[n-1-i].rip != xs[n-1-i-p].rip {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		k := n - 1 - p
		for k >= 0 && xs[k].rip == xs[k+p].rip {
			k--
		}
		span := n - 1 - k // instructions covered by the repetition
		return xs[n-p:], span / p, k < 0 && len(xs) == len(insns)
	}
	return nil, 0, false
}

// polled names the memory operands of the loop's instructions: by symbol
// when RIP-relative, absolute or per-CPU, as the operand otherwise.
func (a *progress) polled(ctx *Context, loop []insnSeen) []string {
	var out []string
	seen := map[string]bool{}
	for _, in := range loop {
		inst, err := x86asm.Decode(in.bytes[:in.len], 64)
		if err != nil {
			continue
		}
		switch inst.Op {
		case x86asm.LEA, x86asm.NOP, x86asm.PUSH, x86asm.POP, x86asm.CALL, x86asm.RET:
			continue
		}
		for _, arg := range inst.Args {
			m, ok := arg.(x86asm.Mem)
			if !ok {
				continue
			}
			name := a.memName(ctx, in, inst, m)
			s := fmt.Sprintf("%s (%s at %s)", name, intel(ctx, in), ctx.Describe(in.rip))
			if !seen[name] {
				seen[name] = true
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// intel prints an instruction in Intel syntax with symbols.
func intel(ctx *Context, in insnSeen) string {
	inst, err := x86asm.Decode(in.bytes[:in.len], 64)
	if err != nil {
		return hexBytes(in.bytes[:in.len])
	}
	text := x86asm.IntelSyntax(inst, in.rip, func(addr uint64) (string, uint64) {
		if s, ok := ctx.St.Syms.At(addr); ok {
			return s.Name, s.Addr
		}
		return "", 0
	})
	// Branch targets inside a symbol print as hex: name them.
	for _, arg := range inst.Args {
		if rel, ok := arg.(x86asm.Rel); ok {
			to := in.rip + uint64(inst.Len) + uint64(int64(rel))
			text = strings.Replace(text, fmt.Sprintf("%#x", to), ctx.Describe(to), 1)
		}
	}
	return text
}

func (a *progress) memName(ctx *Context, in insnSeen, inst x86asm.Inst, m x86asm.Mem) string {
	switch {
	case m.Segment == x86asm.GS && m.Base == 0 && m.Index == 0:
		if in.percpu != "" {
			return "per-CPU " + in.percpu
		}
		off := uint64(m.Disp)
		if s, ok := ctx.St.Syms.PercpuAt(off); ok {
			if off == s.Addr {
				return "per-CPU " + s.Name
			}
			return fmt.Sprintf("per-CPU %s+%#x", s.Name, off-s.Addr)
		}
		return fmt.Sprintf("%%gs:%#x", off)
	case m.Base == x86asm.RIP:
		return ctx.Describe(in.rip + uint64(inst.Len) + uint64(m.Disp))
	case m.Base == 0 && m.Index == 0:
		return ctx.Describe(uint64(m.Disp))
	}
	return strings.ToLower(m.String())
}

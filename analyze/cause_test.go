package analyze_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/replay"
)

// A cause a story line claims: the store at seq w on CPU wcpu produced
// what the event at seq at (on CPU cpu) loaded (load) or executed (insn).
type causeClaim struct {
	w, at     uint64
	wcpu, cpu int
	insn      bool
	stale     bool   // insn: it says the CPU ran a stale decode
	perm      bool   // the event is a page fault, w the permission change of its page
	addr      uint64 // perm: the fault address
	line      string
}

var (
	permCause = regexp.MustCompile(`^seq (\d+) cpu(\d+) task \d+: .*\[cause: cpu(\d+) task \d+ faulted on this page at seq (\d+), address (0x[0-9a-f]+)\]`)
	loadCause = regexp.MustCompile(`^seq (\d+) cpu(\d+) task \d+.*\[cause: read by cpu(\d+) task \d+ at seq (\d+), `)
	codeCause = regexp.MustCompile(`^seq (\d+) cpu(\d+) task \d+.*\[cause: cpu(\d+) task \d+ (executed these bytes|ran a stale decode instead of these bytes) at seq (\d+), `)
)

var beforeStore = regexp.MustCompile(`, before its store at seq (\d+)\]`)

// checkDeep checks a story's causes of causes: each load said to come
// before a store that caused the failure is on the storing CPU, before
// that store, which the story names as a cause.
func checkDeep(t *testing.T, f *analyze.Finding) {
	t.Helper()
	cs := claims(f)
	for _, c := range cs {
		m := beforeStore.FindStringSubmatch(c.line)
		if m == nil {
			continue
		}
		s, _ := strconv.ParseUint(m[1], 10, 64)
		if c.at >= s || !slices.ContainsFunc(cs, func(o causeClaim) bool { return o.w == s && o.wcpu == c.cpu && !o.insn && !o.perm }) {
			t.Errorf("%s\n  the load at seq %d on cpu%d is not before a store at seq %d the story names as cpu%d's cause", c.line, c.at, c.cpu, s, c.cpu)
		}
	}
}

// claims reads the causes a finding's story names.
func claims(f *analyze.Finding) []causeClaim {
	var out []causeClaim
	for _, l := range f.Story {
		if m := permCause.FindStringSubmatch(l); m != nil {
			w, _ := strconv.ParseUint(m[1], 10, 64)
			at, _ := strconv.ParseUint(m[4], 10, 64)
			addr, _ := strconv.ParseUint(m[5], 0, 64)
			wcpu, _ := strconv.Atoi(m[2])
			cpu, _ := strconv.Atoi(m[3])
			out = append(out, causeClaim{w: w, at: at, wcpu: wcpu, cpu: cpu, perm: true, addr: addr, line: l})
			continue
		}
		for _, re := range []*regexp.Regexp{loadCause, codeCause} {
			if m := re.FindStringSubmatch(l); m != nil {
				w, _ := strconv.ParseUint(m[1], 10, 64)
				at, _ := strconv.ParseUint(m[len(m)-1], 10, 64)
				wcpu, _ := strconv.Atoi(m[2])
				cpu, _ := strconv.Atoi(m[3])
				out = append(out, causeClaim{w: w, at: at, wcpu: wcpu, cpu: cpu, insn: re == codeCause, stale: strings.Contains(l, "stale decode"), line: l})
			}
		}
	}
	return out
}

// verifyClaims checks every claim against the trace file, with the
// replay package's own record of the last store to each byte (what
// `patchtrace events` prints as "stored at seq N by cpuM"): the event
// claimed is a load (or an instruction) of the CPU claimed, and the last
// store to its bytes before it is the store claimed; an instruction said
// to run a stale decode executed bytes other than memory's, and one said to
// execute the bytes executed memory's (the replayed state's).
func verifyClaims(t *testing.T, path string, cs []causeClaim) {
	t.Helper()
	if len(cs) == 0 {
		return
	}
	byAt := map[uint64][]causeClaim{}
	for _, c := range cs {
		byAt[c.at] = append(byAt[c.at], c)
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Meta()
	e := replay.NewEventText(replay.MetaSymbols(md), r.OpName, md.CPUs)
	e.FromStart()
	st, err := replay.NewState(md)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	lastPerm := map[uint64][2]uint64{} // page -> seq, cpu of its last permission change
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range byAt[row.Seq] {
			if c.perm {
				p, ok := lastPerm[c.addr>>12]
				if row.Kind != format.KindTrap || row.Vector != 14 || int(row.CPU) != c.cpu || row.Addr != c.addr {
					t.Errorf("%s\n  seq %d is not a #PF at %#x on cpu%d", c.line, c.at, c.addr, c.cpu)
				} else if !ok || p[0] != c.w || int(p[1]) != c.wcpu {
					t.Errorf("%s\n  the last permission change of page %#x before seq %d is seq %d on cpu%d (found %v)", c.line, c.addr>>12<<12, c.at, p[0], p[1], ok)
				}
				checked++
				continue
			}
			addr, size := row.Addr, row.Size
			if c.insn {
				addr, size = row.RIP, uint32(row.Len)
			}
			wantKind := format.KindLoad
			if c.insn {
				wantKind = format.KindInsn
			}
			if row.Kind != wantKind || int(row.CPU) != c.cpu {
				t.Errorf("%s\n  seq %d is a %s on cpu%d, not a %s on cpu%d", c.line, c.at, row.Kind, row.CPU, wantKind, c.cpu)
				continue
			}
			seq, cpu, ok := e.Writer(addr, size)
			if !ok || seq != c.w || int(cpu) != c.wcpu {
				t.Errorf("%s\n  the last store to %#x (%d bytes) before seq %d is seq %d on cpu%d (found %v), not seq %d on cpu%d", c.line, addr, size, c.at, seq, cpu, ok, c.w, c.wcpu)
			}
			if c.insn {
				mem := make([]byte, row.Len)
				st.Mem.Read(row.RIP, mem)
				if stale := string(mem) != string(row.Instruction()); stale != c.stale {
					t.Errorf("%s\n  cpu%d executed % x, memory held % x", c.line, row.CPU, row.Instruction(), mem)
				}
			}
			checked++
		}
		e.Observe(row)
		st.Apply(row)
		if row.Kind == format.KindPerm && !row.Alias {
			for pg := row.Addr >> 12; pg < row.Addr>>12+uint64(max(row.Size, 1)); pg++ {
				lastPerm[pg] = [2]uint64{row.Seq, uint64(row.CPU)}
			}
		}
	}
	if checked != len(cs) {
		t.Errorf("%d of %d claims checked (an event claimed is not in the trace)", checked, len(cs))
	}
}

// storyCase is a catalog scenario whose finding's story must name a cause:
// kinds lists what the finding of the analyzer must show ("cross-load": a
// load whose store another CPU made; "cross-code": an instruction whose
// bytes another CPU wrote; "evidence-load": a load whose store is the
// finding's own evidence; "frame-store": a load whose store is the
// frame finding's store; "preempted-task": the switch that took off its
// CPU the task the finding's message names as preempted; "free": the
// permission change, by another CPU, of the page the failing context
// faulted on; "trip": the switches that took the finding's task off its
// CPU and back while a cause happened; "deep": a cause's cause, the load the storing CPU made of
// another CPU's store before its own).
//
// A case with beyond set is one whose live story runs out of its CPU's
// ring before the finding's first evidence (it says "beyond the story's
// reach"): analyzing the trace file names, before the ring's oldest step,
// a cause of each kind, checked against the trace like the others.
type storyCase struct {
	id       string
	analyzer string
	kinds    []string
	beyond   bool
}

var storyCases = []storyCase{
	{"ftrace-int3-skip", "missed-call", []string{"cross-load", "cross-code", "deep", "trip"}, false},
	{"text-poke-bp-early-clear", "trap", []string{"cross-load"}, false},
	{"text-poke-bp-nosync", "cmc", []string{"cross-code"}, false},
	{"int3-emulate-call-nogap", "frame", []string{"cross-load"}, false},
	{"int3-emulate-call-nogap", "trap", []string{"frame-store"}, false},
	{"exc-tramp-nopop", "return-slot", []string{"evidence-load"}, false},
	{"kretprobe-wrongframe", "return-slot", []string{"evidence-load"}, false},
	{"bpf-dispatcher-nosync", "cmc", []string{"cross-code"}, false},
	{"bpf-dispatcher-nosync", "lifetime", []string{"preempted-task"}, false},
	{"text-poke-bp-desc-stack", "lifetime", []string{"cross-load"}, false},
	{"tramp-free-nowait", "trap", []string{"free"}, false},
	{"bpf-dispatcher-nosync", "cmc", []string{"cross-load"}, true},
	{"bpf-dispatcher-nosync", "lifetime", []string{"cross-load"}, true},
}

// beyondReach reads the seq a story says its causes are told from (its
// ring's oldest step), when it says the events before are beyond reach.
var beyondReach = regexp.MustCompile(`^cause: cpu\d+ task \d+'s events before seq (\d+) are beyond the story's reach`)

// fromFile returns the finding of res that live finding f is, as the
// analysis of the trace file tells it, with the seq before which f's live
// story told no causes; it checks every cause the file's stories name
// against the trace.
func fromFile(t *testing.T, path string, f *analyze.Finding, files map[string]*analyze.Result) (*analyze.Finding, uint64) {
	t.Helper()
	var from uint64
	for _, l := range f.Story {
		if m := beyondReach.FindStringSubmatch(l); m != nil {
			from, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	if from == 0 {
		t.Fatalf("the live %s finding's story is not beyond reach (the case tests nothing):\n%s", f.Analyzer, strings.Join(f.Story, "\n"))
	}
	res := files[path]
	if res == nil {
		var err error
		res, err = analyze.AnalyzeFile(path, analyze.All())
		if err != nil {
			t.Fatal(err)
		}
		var all []causeClaim
		for _, g := range res.Findings {
			all = append(all, claims(g)...)
		}
		verifyClaims(t, path, all)
		files[path] = res
	}
	for _, g := range res.Findings {
		if g.Analyzer == f.Analyzer && g.SeqFirst == f.SeqFirst && g.Message == f.Message {
			if slices.ContainsFunc(g.Story, beyondReach.MatchString) {
				t.Errorf("the file's story still says it is beyond reach:\n%s", strings.Join(g.Story, "\n"))
			}
			return g, from
		}
	}
	t.Fatalf("the file's analysis has no %s finding at seq %d", f.Analyzer, f.SeqFirst)
	return nil, 0
}

// preempted reads the task a lifetime finding names as preempted: its id,
// CPU and the seq of the switch.
var preempted = regexp.MustCompile(`task (\d+) \(cpu(\d+), switched out \(preempted\) at seq (\d+)`)

// TestStoryCauses: the story of each catalog finding names, across CPUs,
// the store that produced what the failing context loaded (the other
// CPU's store that set a flag or cleared a handler), or the text_poke that
// wrote the bytes it executed (the int3), and every cause named is the
// last store to those bytes before the event, as the replay package
// computes it from the trace file.
func TestStoryCauses(t *testing.T) {
	runs := map[string]*analyze.Result{}
	paths := map[string]string{}
	files := map[string]*analyze.Result{}
	dir := t.TempDir() // the traces outlive each subtest: a later case reads them again
	for _, c := range storyCases {
		t.Run(c.id+"/"+c.analyzer, func(t *testing.T) {
			res, path := runs[c.id], paths[c.id]
			if res == nil {
				path = filepath.Join(dir, c.id+".arrow")
				r, err := check.Run(testkit.Load(t, c.id, nil), check.Options{Options: emu.Options{Seed: 1}, Path: path})
				if err == nil {
					err = r.Run.Err
				}
				if err != nil {
					t.Fatal(err)
				}
				res = r.Analysis
				var all []causeClaim
				for _, f := range res.Findings {
					all = append(all, claims(f)...)
					checkDeep(t, f)
				}
				verifyClaims(t, path, all)
				runs[c.id], paths[c.id] = res, path
			}
			var f *analyze.Finding
			for _, g := range res.Findings {
				if g.Analyzer == c.analyzer {
					f = g
					break
				}
			}
			if f == nil {
				t.Fatalf("no %s finding:\n%s", c.analyzer, summary(res))
			}
			cs := claims(f)
			if c.beyond {
				var from uint64
				f, from = fromFile(t, path, f, files)
				cs = slices.DeleteFunc(claims(f), func(cl causeClaim) bool { return cl.at >= from })
			}
			for _, k := range c.kinds {
				ok := slices.ContainsFunc(cs, func(cl causeClaim) bool { return claimIs(k, cl, f, res) })
				switch k {
				case "preempted-task":
					ok = namesPreempted(f)
				case "trip":
					ok = checkTrip(t, path, f, cs)
				}
				if !ok {
					t.Errorf("the %s finding's story names no %s cause:\n%s", c.analyzer, k, strings.Join(f.Story, "\n"))
				}
			}
		})
	}
}

var (
	tripOut = regexp.MustCompile(`^seq (\d+) cpu\d+ task \d+.* switches task (\d+) -> \d+.*\[task (\d+) switched out\]`)
	tripIn  = regexp.MustCompile(`^seq (\d+) cpu\d+ task \d+.* switches task \d+ -> (\d+).*\[task (\d+) switched back in\]`)
)

// checkTrip reports whether f's story tells its task's trip off the CPU
// (a switch out, then in) during which a cause it names happened, and
// checks the trip against the trace: the switch out took the task off,
// the switch in is the first that brought it back.
func checkTrip(t *testing.T, path string, f *analyze.Finding, cs []causeClaim) bool {
	t.Helper()
	var out, in uint64
	for _, l := range f.Story {
		if m := tripOut.FindStringSubmatch(l); m != nil && m[2] == m[3] && m[3] == strconv.Itoa(int(f.Task)) {
			out, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := tripIn.FindStringSubmatch(l); m != nil && m[2] == m[3] && m[3] == strconv.Itoa(int(f.Task)) {
			in, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	if out == 0 || in <= out || !slices.ContainsFunc(cs, func(c causeClaim) bool { return c.w > out && c.w < in }) {
		return false
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	back := uint64(0)
	for row, err := range r.Scan(format.Projection{Kinds: []format.Kind{format.KindSwitch}, Columns: []int{format.ColOld, format.ColNew}}) {
		if err != nil {
			t.Fatal(err)
		}
		if row.Seq == out && uint32(row.Old) != f.Task {
			t.Errorf("seq %d does not switch task %d out", out, f.Task)
		}
		if row.Seq > out && uint32(row.New) == f.Task && back == 0 {
			back = row.Seq
		}
	}
	if back != in {
		t.Errorf("task %d came back at seq %d after its switch out at seq %d, the story says %d", f.Task, back, out, in)
	}
	return true
}

// namesPreempted reports whether f's story tells the switch that took the
// task its message names as preempted off its CPU.
func namesPreempted(f *analyze.Finding) bool {
	m := preempted.FindStringSubmatch(f.Message)
	if m == nil {
		return false
	}
	head := fmt.Sprintf("seq %s cpu%s task %s ", m[3], m[2], m[1])
	return slices.ContainsFunc(f.Story, func(l string) bool {
		return strings.HasPrefix(l, head) && strings.Contains(l, "switches task "+m[1]+" -> ") && strings.Contains(l, "[task "+m[1]+" switched out")
	})
}

func claimIs(kind string, c causeClaim, f *analyze.Finding, res *analyze.Result) bool {
	switch kind {
	case "deep":
		return beforeStore.MatchString(c.line) && c.cpu != f.CPU
	case "free":
		return c.perm && c.cpu == f.CPU && c.wcpu != f.CPU
	case "cross-load":
		return !c.insn && c.cpu == f.CPU && c.wcpu != f.CPU
	case "cross-code":
		return c.insn && c.cpu == f.CPU && c.wcpu != f.CPU
	case "evidence-load":
		return !c.insn && slices.Contains(f.Evidence, c.w)
	case "frame-store":
		for _, g := range res.Findings {
			if g.Analyzer == "frame" && !c.insn && slices.Contains(g.Evidence, c.w) && c.w == slices.Max(g.Evidence) {
				return true
			}
		}
	}
	return false
}

// TestStoryCausesNoLoads: a trace recorded without load rows cannot name
// the stores a context read: its stories say so and name none, and still
// name the text_poke that wrote the bytes executed (stores are recorded).
func TestStoryCausesNoLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "noloads.arrow")
	r, err := check.Run(testkit.Load(t, "ftrace-int3-skip", nil), check.Options{Options: emu.Options{Seed: 1, NoLoads: true}, Path: path})
	if err == nil {
		err = r.Run.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	var all []causeClaim
	for _, f := range r.Analysis.Findings {
		story := strings.Join(f.Story, "\n")
		if !strings.Contains(story, "cause: loads not recorded") {
			t.Errorf("%s finding at seq %d: the story does not say loads were not recorded:\n%s", f.Analyzer, f.SeqFirst, story)
		}
		cs := claims(f)
		for _, c := range cs {
			if !c.insn {
				t.Errorf("a load cause in a trace without loads: %s", c.line)
			}
		}
		if !slices.ContainsFunc(cs, func(c causeClaim) bool { return c.insn && c.wcpu != f.CPU }) {
			t.Errorf("%s finding at seq %d: no text_poke by another CPU named:\n%s", f.Analyzer, f.SeqFirst, story)
		}
		all = append(all, cs...)
	}
	if len(r.Analysis.Findings) == 0 {
		t.Fatal("no finding")
	}
	verifyClaims(t, path, all)
}

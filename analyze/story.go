package analyze

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// storyDepth is how many notable events per CPU a story can draw on.
const storyDepth = 24

// storyWindow keeps, per CPU, the last notable events (traps, returns,
// services, markers, switches, alias and per-CPU stores, function entries)
// so that a finding can be told as the interleaving that led to it.
//
// Rows are kept raw and told only when a finding asks; the one thing telling
// needs from memory (the bytes at an int3) is captured when the row is kept.
type storyWindow struct {
	ring [][storyDepth]format.Row
	n    []int
	// lastInsn is each CPU's last instruction: for a service row, the
	// call (or jump) that reached the service, which a kept service row
	// carries in its Handler field (services have no handler) so the
	// story can say where in the slice's source the service was called.
	lastInsn []uint64
}

func newStoryWindow(cpus int) *storyWindow {
	return &storyWindow{ring: make([][storyDepth]format.Row, cpus), n: make([]int, cpus), lastInsn: make([]uint64, cpus)}
}

// storyNeeds is what the story window reads of the rows: the notable
// kinds, with the columns tellRow tells.
var storyNeeds = Needs{
	Kinds: []format.Kind{format.KindInsn, format.KindWrite, format.KindPercpuRead, format.KindLoad, format.KindTrap, format.KindIret, format.KindPerm,
		format.KindSerialize, format.KindSwitch, format.KindService, format.KindMarker, format.KindFault, format.KindInject},
	Columns: []int{format.ColAddr, format.ColSize, format.ColOld, format.ColNew, format.ColAlias, format.ColAliasAddr,
		format.ColPercpuCPU, format.ColPercpuVar, format.ColVector, format.ColHandler, format.ColPermOld, format.ColPermNew,
		format.ColCause, format.ColService, format.ColArg0, format.ColArg1, format.ColArg2, format.ColMsg},
}

// notable reports whether the story keeps r: every row of the kinds in
// storyNeeds but an instruction that is not a function's entry and a
// store that is neither through the text-poke alias nor to a per-CPU
// variable.
func notable(st *replay.State, r *format.Row) bool {
	switch r.Kind {
	case format.KindInsn:
		return st.Syms.IsEntry(r.RIP)
	case format.KindWrite:
		return r.Alias || r.PercpuVar != ""
	case format.KindLoad:
		// The reads a percpu_read row would tell (a trace without
		// loads): of the scenario's per-CPU return slots.
		return r.PercpuVar != "" && st.Spec != nil && slices.Contains(st.Spec.Contract.ReturnSlots, r.PercpuVar)
	}
	return storyKind[r.Kind&63]
}

var storyKind = func() (k [64]bool) {
	for _, kind := range storyNeeds.Kinds {
		k[kind] = true
	}
	return k
}()

func (w *storyWindow) add(st *replay.State, r *format.Row) {
	c := int(r.CPU)
	if c >= len(w.ring) {
		return
	}
	if r.Kind == format.KindInsn {
		// Kept only at a function's entry; either way the CPU's last
		// instruction from now on.
		if st.Syms.IsEntry(r.RIP) {
			w.ring[c][w.n[c]%storyDepth] = *r
			w.n[c]++
		}
		w.lastInsn[c] = r.RIP
		return
	}
	if !notable(st, r) {
		return
	}
	i := w.n[c] % storyDepth
	w.ring[c][i] = *r
	if r.Kind == format.KindService {
		w.ring[c][i].Handler = w.lastInsn[c]
	}
	if r.Kind == format.KindTrap && r.Vector == 3 {
		st.Mem.Read(r.RIP-1, w.ring[c][i].Bytes[:5]) // the site as it was
	}
	w.n[c]++
}

// tell returns the last few notable events of the finding's CPU and of every
// other CPU that acted in the same stretch, merged in sequence order.
func (w *storyWindow) tell(st *replay.State, cpu int, evidence []uint64) []string {
	return w.tellWith(st, cpu, evidence)
}

type storyLine struct {
	seq  uint64
	text string
}

// tellWith is tell with the given rows (an analyzer's evidence the window
// may have let go, or never kept: a plain stack store) always told, in
// sequence order among the rest.
func (w *storyWindow) tellWith(st *replay.State, cpu int, evidence []uint64, keep ...*format.Row) []string {
	type line = storyLine
	var lines []line
	var lo uint64
	if cpu < len(w.ring) && w.n[cpu] > 0 {
		k := min(w.n[cpu], 8)
		first := (w.n[cpu] - k) % storyDepth
		lo = w.ring[cpu][first].Seq
	}
	for _, ev := range evidence {
		if ev < lo {
			lo = ev
		}
	}
	for c := range w.ring {
		cnt := min(w.n[c], storyDepth)
		var mine []line
		for j := 0; j < cnt; j++ {
			i := (w.n[c] - cnt + j) % storyDepth
			if r := &w.ring[c][i]; r.Seq >= lo {
				mine = append(mine, line{r.Seq, tellRow(st, r)})
			}
		}
		if c != cpu && len(mine) > 4 {
			mine = mine[len(mine)-4:]
		}
		lines = append(lines, mine...)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].seq < lines[j].seq })
	if len(lines) > 16 {
		lines = lines[len(lines)-16:]
	}
	have := func(seq uint64) bool { return slices.ContainsFunc(lines, func(l line) bool { return l.seq == seq }) }
	for _, r := range keep {
		if !have(r.Seq) {
			lines = append(lines, line{r.Seq, tellRow(st, r)})
		}
	}
	// The evidence the window still holds is told, whichever CPU's and
	// however far back.
	for c := range w.ring {
		for j := 0; j < min(w.n[c], storyDepth); j++ {
			if r := &w.ring[c][j]; slices.Contains(evidence, r.Seq) && !have(r.Seq) {
				lines = append(lines, line{r.Seq, tellRow(st, r)})
			}
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].seq < lines[j].seq })
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return out
}

func hexBytes(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", x)
	}
	return sb.String()
}

// tellRow renders one event as a person would tell it.
func tellRow(st *replay.State, r *format.Row) string {
	d := st.Syms.Describe
	// dl adds the source line to the places an instruction ran (not to
	// values, handlers or function entries: their symbol says it).
	dl := func(a uint64) string {
		if fl := st.Syms.Line(a); fl != "" {
			return d(a) + " (" + fl + ")"
		}
		return d(a)
	}
	head := fmt.Sprintf("seq %d cpu%d task %d", r.Seq, r.CPU, r.Task)
	if r.Depth > 0 {
		head += fmt.Sprintf(" (trap depth %d)", r.Depth)
	}
	var what string
	switch r.Kind {
	case format.KindInsn:
		what = fmt.Sprintf("enters %s", d(r.RIP))
		if !st.Syms.IsEntry(r.RIP) && int(r.Op) < len(st.Meta.OpNames) {
			// An analyzer's evidence (tellWith), not a function entry.
			op := strings.ToLower(st.Meta.OpNames[r.Op])
			if op == "int" && r.Len >= 1 && r.Bytes[0] == 0xcc {
				op = "int3" // x86asm names CC and CD 03 alike; objdump and events say int3
			}
			what = fmt.Sprintf("executes %s at %s (rsp %#x)", op, d(r.RIP), r.RSP)
		}
	case format.KindWrite:
		switch {
		case r.Alias:
			what = fmt.Sprintf("text_poke writes %s (%d bytes, %#x -> %#x) through the alias %#x", d(r.Addr), r.Size, r.Old, r.New, r.AliasAddr)
		case r.PercpuVar == "":
			what = fmt.Sprintf("%s stores %#x at %#x (%d bytes, was %#x)", d(r.RIP), r.New, r.Addr, r.Size, r.Old)
		default:
			what = fmt.Sprintf("%s writes per-CPU %s[cpu%d] = %s (was %s)", dl(r.RIP), r.PercpuVar, r.PercpuCPU, d(r.New), d(r.Old))
		}
	case format.KindPercpuRead:
		what = fmt.Sprintf("%s reads per-CPU %s[cpu%d] = %s", dl(r.RIP), r.PercpuVar, r.PercpuCPU, d(r.New))
	case format.KindLoad:
		if r.Percpu {
			what = fmt.Sprintf("%s reads per-CPU %s[cpu%d] = %s", dl(r.RIP), r.PercpuVar, r.PercpuCPU, d(r.New))
		} else {
			what = fmt.Sprintf("%s reads %s = %s (%d bytes)", dl(r.RIP), d(r.Addr), d(r.New), r.Size)
		}
	case format.KindTrap:
		what = fmt.Sprintf("takes %s at %s -> %s", format.VectorName(r.Vector), dl(r.RIP), d(r.Handler))
		if r.Vector == 3 {
			what = fmt.Sprintf("hits int3 at %s (bytes %s) -> %s", dl(r.RIP-1), hexBytes(r.Bytes[:5]), d(r.Handler))
		}
	case format.KindIret:
		what = fmt.Sprintf("iretq from %s back to %s", dl(r.RIP), dl(r.Handler))
	case format.KindPerm:
		what = fmt.Sprintf("%s: page %#x %s -> %s", r.Service, r.Addr, format.PermString(r.PermOld), format.PermString(r.PermNew))
		if r.Alias {
			what = fmt.Sprintf("%s: alias of %s %s -> %s", r.Service, d(r.Addr), format.PermString(r.PermOld), format.PermString(r.PermNew))
		}
	case format.KindSerialize:
		what = fmt.Sprintf("serializes (%s)", r.Cause)
	case format.KindSwitch:
		what = fmt.Sprintf("switches task %d -> %d", r.Old, r.New)
	case format.KindService:
		what = fmt.Sprintf("calls %s(%#x, %#x, %#x)", r.Service, r.Args[0], r.Args[1], r.Args[2])
		if r.Service == 1 { // text_poke
			what = fmt.Sprintf("calls text_poke(%s, %d bytes)", d(r.Args[0]), r.Args[2])
		}
		if r.Handler != 0 { // the call that reached it (storyWindow.add)
			what += " from " + dl(r.Handler)
		}
	case format.KindMarker:
		what = fmt.Sprintf("marker %d (%d)", r.Args[0], r.Args[1])
	case format.KindFault:
		what = r.Msg
	case format.KindInject:
		what = fmt.Sprintf("%s raised on cpu%d", format.VectorName(r.Vector), r.Addr)
	default:
		what = r.Kind.String()
	}
	return head + ": " + what
}

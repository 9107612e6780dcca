package analyze

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// A finding whose first evidence is further back than its CPU's ring of
// causeRing steps reaches has causes the one-pass tracker cannot name.
// Analyzing a file, a second pass over it names them: it replays the
// stores up to the end of the last such window, keeping the last store to
// each byte as the live tracker does (the same shadow, bounded by
// causeMaxPages), and at each load of a failing context between its first
// evidence and its ring's oldest step names the store read, as causesOf
// does for the loads in the ring. The pass runs only when a story ran out
// of ring, reads only the stores, loads and instructions, and looks back
// at most causeFileReach events before a ring's oldest step; a story
// whose evidence starts further back still says so.

// causeFileReach bounds, in events, how far before its ring's oldest step
// the file pass looks for a finding's causes.
const causeFileReach = 1 << 20

// reachGap is a finding whose cause walk ran out of ring: its failing
// context's events in [lo, from) were not told.
type reachGap struct {
	f                   *Finding
	cpu                 int
	lo, from, born      uint64
	cross, task, direct int    // causes of each kind still to tell (what the ring left of the bounds)
	reachNote, noneNote string // the notes the file pass replaces
	// What the file pass found, oldest first: the loads of another CPU's
	// (xs) or another task's (ts) store, and of the finding's own
	// instructions (ds); loads counts the context's loads looked at.
	xs, ts, ds []xload
	loads      int
	insn       uint64 // the seq of the context's last instruction seen
}

// start is the first seq the file pass looks at for g.
func (g *reachGap) start() uint64 {
	return max(g.lo, g.from-min(g.from, causeFileReach))
}

// keepLast appends x to s, keeping its last n and, of the loads of one
// store, the last.
func keepLast(s []xload, x xload, n int) []xload {
	if n <= 0 {
		return s
	}
	s = slices.DeleteFunc(s, func(o xload) bool { return o.w.seq == x.w.seq })
	if len(s) == n {
		s = append(s[:0], s[1:]...)
	}
	return append(s, x)
}

// fileReach names, from the trace file r, the causes of the findings
// whose cause walk ran out of ring (t.gaps), and tells them in their
// stories in place of the note that said they were beyond reach.
func fileReach(r *format.Reader, st *replay.State, t *causeTracker) error {
	if len(t.gaps) == 0 || !t.loads {
		return nil
	}
	byCPU := map[uint16][]*reachGap{}
	var end uint64
	for _, g := range t.gaps {
		byCPU[uint16(g.cpu)] = append(byCPU[uint16(g.cpu)], g)
		end = max(end, g.from)
	}
	ft := newCauseTracker(st)
	proj := format.Projection{
		Kinds:   []format.Kind{format.KindInsn, format.KindWrite, format.KindLoad, format.KindPercpuRead, format.KindService},
		Columns: []int{format.ColAddr, format.ColSize, format.ColOld, format.ColNew, format.ColAlias, format.ColAliasAddr, format.ColPercpuCPU, format.ColPercpuVar},
	}
	for row, err := range r.Scan(proj) {
		if err != nil {
			return err
		}
		if row.Seq >= end {
			break
		}
		c := int(row.CPU)
		if c >= len(ft.lastInsn) {
			continue
		}
		switch row.Kind {
		case format.KindWrite:
			ft.noteWrite(row, false)
		case format.KindService:
			ft.caller[c] = ft.lastInsn[c]
		case format.KindInsn:
			ft.lastInsn[c] = row.RIP
			for _, g := range byCPU[row.CPU] {
				if row.Task == g.f.Task {
					g.insn = row.Seq
				}
			}
		case format.KindLoad, format.KindPercpuRead:
			if !row.HasAddr && row.Kind == format.KindPercpuRead {
				continue
			}
			for _, g := range byCPU[row.CPU] {
				if row.Task != g.f.Task || row.Seq < g.start() || row.Seq >= g.from {
					continue
				}
				g.loads++
				x := xload{s: step{seq: row.Seq, rip: row.RIP, addr: row.Addr, val: row.New, size: row.Size, task: row.Task, depth: row.Depth, kind: row.Kind,
					percpuCPU: row.PercpuCPU, percpuVar: ft.varIndex(row.PercpuVar), hasW: true}}
				if !ft.writer(&x.w, row.Addr, row.Size) {
					continue
				}
				w := &x.w
				switch {
				case slices.Contains(g.f.Evidence, g.insn):
					g.ds = keepLast(g.ds, x, g.direct)
				case w.cpu != row.CPU && w.seq > g.born && w.size != 0:
					g.xs = keepLast(g.xs, x, g.cross)
				case w.cpu == row.CPU && w.task != row.Task && w.seq > g.born && w.size != 0:
					g.ts = keepLast(g.ts, x, g.task)
				}
			}
		}
	}
	for _, g := range t.gaps {
		tellGap(st, ft, g)
	}
	return nil
}

// tellGap puts what the file pass found for g into its finding's story.
func tellGap(st *replay.State, ft *causeTracker, g *reachGap) {
	f := g.f
	where := fmt.Sprintf("cpu%d task %d", g.cpu, f.Task)
	var lines []causeLine
	for _, xs := range [][]xload{g.ds, g.xs, g.ts} {
		for i := range xs {
			x := &xs[i]
			note := fmt.Sprintf("[cause: read by cpu%d task %d at seq %d, %s]", g.cpu, x.s.task, x.s.seq, placeOf(st, x.s.rip))
			lines = append(lines, causeLine{x.w.seq, ft.tellStore(st, &x.w) + " " + note, note})
			lines = append(lines, causeLine{x.s.seq, ft.tellLoad(st, g.cpu, &x.s) + " " + storedBy(&x.w), storedBy(&x.w)})
		}
	}
	start := g.start()
	var notes []string
	if start > g.lo {
		notes = append(notes, fmt.Sprintf("cause: %s's events before seq %d are beyond the story's reach (its last %d instructions and loads, and the %d events before them searched in the trace file)", where, start, causeRing, causeFileReach))
	}
	if ft.reset != 0 && ft.reset >= start {
		notes = append(notes, fmt.Sprintf("cause: the record of the last store to each byte started over at seq %d (more than %d pages written): the stores read before it cannot be named", ft.reset, causeMaxPages))
	}
	found := len(g.xs)+len(g.ts) > 0
	if !found {
		notes = append(notes, fmt.Sprintf("cause: none of the %d loads of %s in seq %d..%d (before its last %d instructions and loads, searched in the trace file) read a value another CPU or task stored", g.loads, where, start, g.from-1, causeRing))
	}
	story := slices.DeleteFunc(slices.Clone(f.Story), func(l string) bool {
		return l == g.reachNote || (found && g.noneNote != "" && l == g.noneNote)
	})
	// Lines already told (the ring's causes, the window) keep theirs.
	told := map[uint64]bool{}
	for _, l := range story {
		if seq, ok := storyLineSeq(l); ok && (strings.Contains(l, "[cause: ") || strings.Contains(l, "[stored at ")) {
			told[seq] = true
		}
	}
	lines = slices.DeleteFunc(lines, func(c causeLine) bool {
		if told[c.seq] {
			return true
		}
		told[c.seq] = true
		return false
	})
	f.Story = withCauses(story, lines, notes)
}

package replay

import "github.com/patchtrace/patchtrace/format"

// RegFile is one CPU's general registers, RSP and RFLAGS as the trace's
// register deltas say (format version 4), in format.RegNames order. Known
// has bit i set once register i's value is known (the CPU's start row sets
// them all).
type RegFile struct {
	Vals  [17]uint64
	Known uint32
}

// Apply folds r's register deltas (none before format version 4).
func (f *RegFile) Apply(r *format.Row) {}

func (e *EventText) regChanges(r *format.Row) string { return "" }

func (e *EventText) regMaps(r *format.Row) (map[string]string, map[string]string) { return nil, nil }

func (e *EventText) loadWhat(r *format.Row) string { return r.Kind.String() }

func isLoad(r *format.Row) bool { return r.Kind == format.KindLoad }

// Get returns register i (an index into format.RegNames) and whether its
// value is known.
func (f *RegFile) Get(i int) (uint64, bool) {
	if i < 0 || i >= len(f.Vals) || f.Known&(1<<i) == 0 {
		return 0, false
	}
	return f.Vals[i], true
}

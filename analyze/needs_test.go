package analyze_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
)

// blind hides an analyzer's Needs: it is handed every row with every
// column.
type blind struct{ analyze.Analyzer }

// TestNeedsComplete: each analyzer's Needs name every kind and column it
// reads. Every built-in scenario's trace is analyzed as AnalyzeFile does
// (the columns of the Needs decoded, each analyzer called for its kinds)
// and with the Needs hidden (every column, every row): the results must
// be the same. A kind or column an analyzer reads but does not declare
// changes what it sees, and so, on some scenario, what it finds.
func TestNeedsComplete(t *testing.T) {
	ids := catalogIDs(t)
	if testing.Short() {
		ids = []string{"ftrace-int3-skip", "text-poke-bp-nosync", "kretprobe-wrongframe", "ftrace-sti-shadow-nmi"}
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			spec := testkit.Load(t, id, nil)
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}}); err != nil {
				t.Fatal(err)
			}
			var hidden []analyze.Analyzer
			for _, a := range analyze.All() {
				hidden = append(hidden, blind{a})
			}
			got, err := analyze.AnalyzeFile(path, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			want, err := analyze.AnalyzeFile(path, hidden)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := json.MarshalIndent(got, "", " ")
			w, _ := json.MarshalIndent(want, "", " ")
			if string(g) != string(w) {
				t.Fatalf("with the analyzers' Needs:\n%s\nwith every row and column:\n%s", g, w)
			}
		})
	}
}

// TestIdleAnalyzerReadsNoColumn: an analyzer passed no row in a trace
// (missed-call without must_call sites, regs without register rules, as
// on bench-fentry) adds no column to what a reader decodes: every
// analyzer together decodes what the busy ones alone decode.
func TestIdleAnalyzerReadsNoColumn(t *testing.T) {
	path, _ := recordFentry(t, t.TempDir(), 100)
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	all, err := analyze.NewLive(r.Meta(), analyze.All())
	if err != nil {
		t.Fatal(err)
	}
	busy, err := analyze.Select([]string{"return-slot", "wx", "cmc", "trap", "frame", "lifetime", "progress", "unmatched"})
	if err != nil {
		t.Fatal(err)
	}
	some, err := analyze.NewLive(r.Meta(), busy)
	if err != nil {
		t.Fatal(err)
	}
	cols := func(p format.Projection) []int {
		if p.Columns == nil {
			t.Fatal("every column decoded")
		}
		s := slices.Clone(p.Columns)
		slices.Sort(s)
		return slices.Compact(s)
	}
	if got, want := cols(all.Projection()), cols(some.Projection()); !slices.Equal(got, want) {
		t.Errorf("every analyzer decodes columns %v, the busy ones %v", got, want)
	}
	if slices.Contains(cols(all.Projection()), format.ColRegRAX) {
		t.Errorf("rax decoded for no analyzer")
	}
}

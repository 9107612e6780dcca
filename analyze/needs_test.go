package analyze_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
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

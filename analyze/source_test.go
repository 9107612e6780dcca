package analyze_test

import (
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestSourceLocatorLibraries: a symbol defined in a built-in library the
// scenario's uses = [...] lists is found there, in the base and in the
// scenario's own files too.
func TestSourceLocatorLibraries(t *testing.T) {
	loc := analyze.SourceLocator(scenarios.FS)
	for _, tc := range []struct{ scenario, symbol, file string }{
		{"ftrace-int3-skip", "ftrace_rec_being_updated", "scenarios/lib/ftrace/ftrace.c"},
		{"ftrace-int3-skip", "do_int3", "scenarios/base/traps.c"},
		{"text-poke-bp", "caller_main", "scenarios/text-poke-bp/patch.c"},
	} {
		file, line, ok := loc(tc.scenario, tc.symbol)
		if !ok || file != tc.file || line == 0 {
			t.Errorf("%s %s: located at %s:%d (%v), want %s", tc.scenario, tc.symbol, file, line, ok, tc.file)
		}
	}
}

package analyze

import (
	"fmt"
	"strings"
	"testing"
)

// TestFoldedContexts: occurrences folded into one finding on other CPUs or
// contexts are named in the text header and the JUnit text, so a header
// does not name one context for hits spread over several.
func TestFoldedContexts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hits     [][2]any // cpu, context
		header   string   // wanted in the text header
		not      string   // must not appear
		contexts int      // len(Contexts), in JSON as "contexts"
	}{
		{"one context", [][2]any{{1, "task 3"}, {1, "task 3"}, {1, "task 3"}},
			"cpu1 task 3 at f+0x5 (seq 10..30) [3 times; first shown]", "also on", 1},
		{"several", [][2]any{{1, "task 3"}, {2, "task 4"}, {1, "task 3, trap depth 1"}, {2, "task 4, trap depth 2"}, {0, "task 1 in #BP"}},
			"cpu1 task 3 at f+0x5 (seq 10..50) [5 times, also on cpu2 task 4, cpu0 task 1 in #BP; first shown]", "depth", 3},
		{"many", func() (h [][2]any) {
			for c := range 12 {
				h = append(h, [2]any{c, "task 1"})
			}
			return h
		}(), "[12 times, also on cpu1 task 1, cpu2 task 1, cpu3 task 1, cpu4 task 1, cpu5 task 1, cpu6 task 1, cpu7 task 1, cpu8 task 1 and 3 more; first shown]", "cpu9", 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &Context{ids: []string{"missed-call"}, byKey: map[string]*Finding{}}
			for i, h := range tc.hits {
				seq := uint64(10 * (i + 1))
				ctx.Report(Finding{CPU: h[0].(int), Context: h[1].(string), Where: "f+0x5", Symbol: "f", Story: []string{}, SeqFirst: seq, SeqLast: seq, Message: "missed call"}, "f")
			}
			if len(ctx.findings) != 1 {
				t.Fatalf("%d findings, want 1 folded", len(ctx.findings))
			}
			var b strings.Builder
			WriteText(&b, []*Result{{File: "t.arrow", Scenario: "s", Findings: ctx.findings}})
			if !strings.Contains(b.String(), tc.header) {
				t.Errorf("no %q in\n%s", tc.header, b.String())
			}
			if tc.not != "" && strings.Contains(b.String(), tc.not) {
				t.Errorf("%q in\n%s", tc.not, b.String())
			}
			// JSON names every context, the first's first, none cut.
			f := ctx.findings[0]
			if len(f.Contexts) != tc.contexts || f.Contexts[0] != fmt.Sprintf("cpu%d %s", tc.hits[0][0], tc.hits[0][1]) {
				t.Errorf("contexts %q, want %d starting with the first hit's", f.Contexts, tc.contexts)
			}
			var js strings.Builder
			if err := WriteJSON(&js, []*Result{{File: "t.arrow", Scenario: "s", Findings: ctx.findings}}); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%q", f.Contexts[len(f.Contexts)-1]); !strings.Contains(js.String(), `"contexts"`) || !strings.Contains(js.String(), want) {
				t.Errorf("JSON does not list the contexts (%s):\n%s", want, js.String())
			}
		})
	}
}

package analyze_test

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestStoryNamesTheCall: a cmc finding's story tells the text_poke call
// that was in progress (its service row is evidence) and where in the
// slice's source it was called from: a line of the patcher that calls
// text_poke.
func TestStoryNamesTheCall(t *testing.T) {
	spec := testkit.Load(t, "text-poke-bp-nosync", nil)
	res := analyzeRun(t, spec, emu.Options{Seed: 1})
	from := regexp.MustCompile(`calls text_poke\([^)]*\) from \S+ \(([^:]+):(\d+)\)`)
	found := 0
	for _, f := range res.Findings {
		if f.Analyzer != "cmc" {
			continue
		}
		for _, l := range f.Story {
			m := from.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			found++
			src, err := fs.ReadFile(scenarios.FS, m[1])
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			n, _ := strconv.Atoi(m[2])
			if lines := strings.Split(string(src), "\n"); n < 1 || n > len(lines) || !strings.Contains(lines[n-1], "text_poke(") {
				t.Errorf("%s: line %d of %s does not call text_poke", l, n, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatalf("no story line names the text_poke call's place:\n%s", summary(res))
	}
}

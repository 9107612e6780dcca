package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/scenario"
)

func parseExpect(t *testing.T, expr string) scenario.Expect {
	t.Helper()
	spec, err := scenario.Parse("s.toml", []byte("id = \"t\"\nslice = \"t.elf\"\ncpus = 4\nexpect = "+expr+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return spec.Expect
}

// TestCompare: each expect entry is judged on its analyzer, cpu, symbol,
// line and count, and says which was not met; a finding no entry covers is
// unexpected in a clean or strict (table) expectation, and an unmatched
// finding always unless expected.
func TestCompare(t *testing.T) {
	f := func(analyzer string, cpu int, symbol, source string, contexts ...string) *analyze.Finding {
		return &analyze.Finding{Analyzer: analyzer, CPU: cpu, Symbol: symbol, Where: symbol, Source: source, Message: "m", Contexts: contexts}
	}
	cmc1 := f("cmc", 1, "traced_fn", "lib/traced/traced.fentry.c:20", "cpu1 task 2", "cpu3 task 4")
	trap2 := f("trap", 2, "asm_exc_int3", "base/entry.S:26")
	un := f("unmatched", 0, "", "")
	for _, c := range []struct {
		name       string
		expect     string
		findings   []*analyze.Finding
		unmet      []string // substrings, in order
		unexpected []string
	}{
		{"clean", `"clean"`, nil, nil, nil},
		{"clean with a finding", `"clean"`, []*analyze.Finding{trap2}, nil, []string{"trap on cpu2 at asm_exc_int3 (base/entry.S:26): m"}},
		{"ids: others may report", `["cmc"]`, []*analyze.Finding{cmc1, trap2}, nil, nil},
		{"ids: missing", `["cmc"]`, []*analyze.Finding{trap2}, []string{"cmc: 0 finding(s), want at least 1"}, nil},
		{"ids: unmatched is unexpected", `["cmc"]`, []*analyze.Finding{cmc1, un}, nil, []string{"unmatched on cpu0"}},
		{"ids: unmatched expected", `["unmatched"]`, []*analyze.Finding{un}, nil, nil},
		{"table: symbol", `[{ analyzer = "cmc", symbol = "traced_fn" }]`, []*analyze.Finding{cmc1}, nil, nil},
		{"table: wrong symbol", `[{ analyzer = "cmc", symbol = "other_fn" }]`, []*analyze.Finding{cmc1},
			[]string{`{ analyzer = "cmc", symbol = "other_fn" }: 0 finding(s), want at least 1`}, []string{"cmc on cpu1 at traced_fn"}},
		{"table: cpu of a folded occurrence", `[{ analyzer = "cmc", cpu = 3 }]`, []*analyze.Finding{cmc1}, nil, nil},
		{"table: cpu never", `[{ analyzer = "cmc", cpu = 2 }]`, []*analyze.Finding{cmc1}, []string{"cpu = 2"}, []string{"cmc on cpu1"}},
		{"table: line by tail", `[{ analyzer = "cmc", line = "traced.fentry.c:20" }]`, []*analyze.Finding{cmc1}, nil, nil},
		{"table: line staged", `[{ analyzer = "cmc", line = "lib/traced/traced.fentry.c:20" }]`, []*analyze.Finding{cmc1}, nil, nil},
		{"table: other line", `[{ analyzer = "cmc", line = "traced.fentry.c:21" }]`, []*analyze.Finding{cmc1}, []string{`line = "traced.fentry.c:21"`}, []string{"cmc"}},
		{"table: not a tail", `[{ analyzer = "cmc", line = "d.fentry.c:20" }]`, []*analyze.Finding{cmc1}, []string{"0 finding(s)"}, []string{"cmc"}},
		{"table: strict", `[{ analyzer = "cmc" }]`, []*analyze.Finding{cmc1, trap2}, nil, []string{"trap on cpu2"}},
		{"table and id: strict", `[{ analyzer = "cmc" }, "trap"]`, []*analyze.Finding{cmc1, trap2}, nil, nil},
		{"count exact", `[{ analyzer = "cmc", count = 2 }]`, []*analyze.Finding{cmc1}, []string{"1 finding(s), want 2"}, nil},
		{"count range", `[{ analyzer = "cmc", count = "1-2" }]`, []*analyze.Finding{cmc1, cmc1}, nil, nil},
		{"count above range", `[{ analyzer = "cmc", count = "0-1" }]`, []*analyze.Finding{cmc1, cmc1}, []string{"2 finding(s), want 0 to 1"}, nil},
		{"count zero met", `[{ analyzer = "trap", count = 0 }]`, nil, nil, nil},
		{"count zero broken", `[{ analyzer = "trap", count = 0 }]`, []*analyze.Finding{trap2}, []string{"1 finding(s), want 0"}, nil},
		{"optional", `[{ analyzer = "cmc" }, { analyzer = "trap", count = "0-" }]`, []*analyze.Finding{cmc1}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := analyze.Compare(parseExpect(t, c.expect), c.findings)
			check := func(kind string, got, want []string) {
				if len(got) != len(want) {
					t.Errorf("%s = %q, want %d matching %q", kind, got, len(want), want)
					return
				}
				for i := range want {
					if !strings.Contains(got[i], want[i]) {
						t.Errorf("%s[%d] = %q, want it to contain %q", kind, i, got[i], want[i])
					}
				}
			}
			check("unmet", m.Unmet, c.unmet)
			check("unexpected", m.Unexpected, c.unexpected)
			if m.OK() != (len(c.unmet) == 0 && len(c.unexpected) == 0) {
				t.Errorf("OK() = %v", m.OK())
			}
		})
	}
	// An Expect built in Go from analyzer ids alone is the id list.
	if m := analyze.Compare(scenario.Expect{Findings: []string{"cmc"}}, []*analyze.Finding{trap2}); len(m.Unmet) != 1 {
		t.Errorf("Expect{Findings: cmc} against a trap: %+v", m)
	}
}

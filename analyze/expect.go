package analyze

import (
	"fmt"
	"strings"

	"github.com/patchtrace/patchtrace/scenario"
)

// unmatchedID is the unmatched analyzer's id: its findings are unexpected
// unless an entry names it.
const unmatchedID = "unmatched"

// Mismatch is how a run's findings differ from what its scenario expects:
// the expectations they did not meet and the findings no expectation
// covers, each said for a person.
type Mismatch struct {
	Unmet      []string `json:"unmet,omitempty"`
	Unexpected []string `json:"unexpected,omitempty"`
}

// OK reports whether the findings are as expected.
func (m Mismatch) OK() bool { return len(m.Unmet) == 0 && len(m.Unexpected) == 0 }

// String says what did not go as expected, "" when everything did.
func (m Mismatch) String() string {
	var parts []string
	for _, u := range m.Unmet {
		parts = append(parts, "not met: "+u)
	}
	for _, u := range m.Unexpected {
		parts = append(parts, "unexpected: "+u)
	}
	return strings.Join(parts, "; ")
}

// Compare judges findings against e (scenario.Expect): each entry must
// match its count of findings (its analyzer's, with its cpu, symbol and
// line when set); a finding no entry matches is unexpected when e is
// clean or strict (a table was written), and, whatever e is, when it is
// the unmatched analyzer's: a rule of the scenario that never matched
// means the run did not test what the scenario says, unless the scenario
// expects exactly that. A list of analyzer ids alone lets other analyzers
// report too (a corrupted return often ends in an oops the trap analyzer
// also reports). Compare does not look at how the run ended: see
// Result.Matches.
func Compare(e scenario.Expect, findings []*Finding) Mismatch {
	entries := e.Entries
	if entries == nil {
		// An Expect built in Go with Findings alone: the list of ids.
		for _, id := range e.Findings {
			entries = append(entries, scenario.ExpectEntry{Analyzer: id, CPU: -1, Min: 1, Max: -1})
		}
	}
	var m Mismatch
	matched := make([]bool, len(findings))
	for _, en := range entries {
		n := 0
		for i, f := range findings {
			if entryMatches(en, f) {
				n++
				matched[i] = true
			}
		}
		if n < en.Min || en.Max >= 0 && n > en.Max {
			what := en.Analyzer
			if e.Strict {
				what = en.String()
			}
			m.Unmet = append(m.Unmet, fmt.Sprintf("%s: %d finding(s), want %s", what, n, countWant(en)))
		}
	}
	strict := e.Strict || len(entries) == 0
	for i, f := range findings {
		if matched[i] || !strict && f.Analyzer != unmatchedID {
			continue
		}
		where := f.Where
		if f.Source != "" {
			where += " (" + f.Source + ")"
		}
		m.Unexpected = append(m.Unexpected, fmt.Sprintf("%s on cpu%d at %s: %s", f.Analyzer, f.CPU, where, f.Message))
	}
	return m
}

// countWant says an entry's count for a person.
func countWant(en scenario.ExpectEntry) string {
	switch {
	case en.Max < 0:
		return fmt.Sprintf("at least %d", en.Min)
	case en.Min == en.Max:
		return fmt.Sprint(en.Min)
	}
	return fmt.Sprintf("%d to %d", en.Min, en.Max)
}

// entryMatches reports whether finding f is one of en's: its analyzer,
// and, when en sets them, on its CPU (the CPU of the finding or of any
// occurrence folded into it), in its symbol, at its line (the finding's
// file:line, or its tail after a '/').
func entryMatches(en scenario.ExpectEntry, f *Finding) bool {
	if f.Analyzer != en.Analyzer || en.Symbol != "" && f.Symbol != en.Symbol {
		return false
	}
	if en.Line != "" && f.Source != en.Line && !strings.HasSuffix(f.Source, "/"+en.Line) {
		return false
	}
	if en.CPU >= 0 && f.CPU != en.CPU {
		on := false
		prefix := fmt.Sprintf("cpu%d ", en.CPU)
		for _, c := range f.Contexts {
			on = on || strings.HasPrefix(c, prefix)
		}
		if !on {
			return false
		}
	}
	return true
}

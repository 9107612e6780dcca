package main

import (
	"fmt"
	"io"
	"strings"
)

// writeKTAP prints check's rows as KTAP version 1, the format of the
// kernel's kselftest and KUnit (Documentation/dev-tools/ktap.rst): a plan
// "1..N", one "ok N ID" / "not ok N ID" per scenario, and under each, as
// an indented subtest, one result per seed ("seedK") with "#" diagnostics
// for a seed that did not go as expected (what was expected and got, the
// run's outcome, its trace). It ends with kselftest's "# Totals:" line.
func writeKTAP(w io.Writer, rows []checkRow, outDir string) {
	fmt.Fprintln(w, "KTAP version 1")
	fmt.Fprintf(w, "1..%d\n", len(rows))
	pass, fail := 0, 0
	for i, r := range rows {
		const in = "    "
		fmt.Fprintln(w, in+"KTAP version 1")
		fmt.Fprintf(w, "%s# Subtest: %s\n", in, r.ID)
		if r.Error != "" {
			fmt.Fprintf(w, "%s# error: %s\n", in, ktapDiag(r.Error))
		}
		fmt.Fprintf(w, "%s1..%d\n", in, len(r.Seeds))
		for j, cs := range r.Seeds {
			fmt.Fprintf(w, "%s%s %d seed%d\n", in, okWord(cs.OK), j+1, cs.Seed)
			if cs.OK {
				continue
			}
			got := cs.Said()
			what := "outcome " + cs.Outcome
			if cs.Detail != "" {
				what += " (" + cs.Detail + ")"
			}
			if cs.Error != "" {
				what = "error: " + cs.Error
			}
			trace := cs.Trace
			if trace == "" {
				trace = "none"
			}
			fmt.Fprintf(w, "%s# seed%d: expected %s, got %s\n", in, cs.Seed, r.Expect, ktapDiag(got))
			fmt.Fprintf(w, "%s# seed%d: %s; trace %s\n", in, cs.Seed, ktapDiag(what), trace)
			for _, u := range cs.Unmet {
				fmt.Fprintf(w, "%s# seed%d: not met: %s\n", in, cs.Seed, ktapDiag(u))
			}
			for _, u := range cs.Unexpected {
				fmt.Fprintf(w, "%s# seed%d: unexpected: %s\n", in, cs.Seed, ktapDiag(u))
			}
		}
		fmt.Fprintf(w, "%s %d %s\n", okWord(r.OK), i+1, r.ID)
		fmt.Fprintf(w, "# %s: expected %s, got %s; findings %s; outcomes %s; %d events; %.1fs\n",
			r.ID, r.Expect, r.Got, countString(r.Findings), countString(r.Outcomes), r.Events, r.Seconds)
		if r.OK {
			pass++
		} else {
			fail++
		}
	}
	if outDir != "" {
		fmt.Fprintf(w, "# traces, JSON reports and HTML pages in %s (index.html links them; summary check.json)\n", outDir)
	}
	fmt.Fprintf(w, "# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", pass, fail)
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "not ok"
}

// ktapDiag keeps a diagnostic on one line.
func ktapDiag(s string) string { return strings.Join(strings.Fields(s), " ") }

package analyze_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestUnmatched: a scenario rule that never matched in a finished run is
// a finding naming the rule (an open-ended scenario's run that ended on its
// budget is finished); a run that did not finish is not judged, its
// outcome is the finding; a run whose rules all matched has none.
func TestUnmatched(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "ftrace-sti-shadow")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		spec     *scenario.Spec
		maxInsns uint64
		want     []string
	}{
		{"done", spec, 0, nil},
		{"budget", spec, 600, nil},
		{"budget, open-ended", openEnded(t, spec), 600, []string{
			`[[inject]] 1 (kind = "timer", cpu = 1, at = "bp_call_tramp_sti+9", hit = 1) never fired`,
			`[[inject]] 3 (kind = "timer", cpu = 1, at = "bp_call_tramp_sti", hit = 2) never fired: cpu1 never reached a 2nd time bp_call_tramp_sti`,
			`contract.must_call 1 (site = "lp_fn1") never matched: its window never opened: no pt_marker(1, ...) ran`,
			`contract.must_call 2 (site = "lp_fn2") never matched`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := record.Run(tc.spec, path, record.Options{Options: emu.Options{Seed: 1, MaxInsns: tc.maxInsns}}); err != nil {
				t.Fatal(err)
			}
			as, err := analyze.Select([]string{"unmatched"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := analyze.AnalyzeFile(path, as)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, f.Message)
			}
			all := strings.Join(got, "\n")
			if len(tc.want) == 0 && len(got) != 0 {
				t.Fatalf("unexpected findings:\n%s", all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("no finding %q; got:\n%s", w, all)
				}
			}
			if len(tc.want) != 0 && len(got) != 5 {
				t.Errorf("%d findings, want 5 (three injections, two must_call):\n%s", len(got), all)
			}
		})
	}
}

// TestUnmatchedBoot: a finished run that never reached
// contract.boot_until_marker is a finding (wx held it to early boot's
// rules throughout: it checked nothing); one that reached it is not.
func TestUnmatchedBoot(t *testing.T) {
	for _, reach := range []bool{false, true} {
		f := newFeed(t, "dyn-tramp-boot", "unmatched")
		c := ctx{cpu: 0, task: 1}
		f.insn(c, f.sym("patcher_main", 0), "NOP", 0xffffffff81111f00)
		if reach {
			f.marker(c, 3, 0)
		}
		var got []string
		for _, fd := range f.finish().Findings {
			if strings.Contains(fd.Message, "boot_until_marker") {
				got = append(got, fd.Message)
			}
		}
		if reach && len(got) != 0 {
			t.Errorf("marker reached: %q", got)
		}
		if !reach && (len(got) != 1 || !strings.Contains(got[0], "no pt_marker(3, ...) ran")) {
			t.Errorf("marker never reached: %q, want one finding naming pt_marker(3, ...)", got)
		}
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

// TestReplayVerifyHonoursRecordedMaxInsns: a run recorded with --max-insns
// (an override the scenario text does not carry) replays to the same stop
// (issue 17: the replay used the scenario's budget and reported a false
// divergence).
func TestReplayVerifyHonoursRecordedMaxInsns(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int // a run ended by its budget is not a clean exit
		want format.Budget
	}{
		{"max-insns", []string{"--max-insns", "20011"}, exitFinding, format.Budget{MaxInsns: 20011, MaxDecisions: 2*20011 + 1<<16}},
		{"no-budget", []string{"--no-budget"}, exitOK, format.Budget{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trace := filepath.Join(t.TempDir(), "t.arrow")
			args := append([]string{"record", "text-poke-bp", "-o", trace}, tc.args...)
			code, out, errs := runCLI(t, args...)
			if code != tc.code {
				t.Fatalf("record: exit %d, want %d: %s", code, tc.code, errs)
			}
			if tc.want.MaxInsns != 0 && !strings.Contains(out, "outcome: budget") {
				t.Fatalf("the recording did not stop on its budget: %s", out)
			}
			r, err := format.Open(trace)
			if err != nil {
				t.Fatal(err)
			}
			b := r.Meta().Budget
			r.Close()
			if b == nil || *b != tc.want {
				t.Errorf("recorded budget %+v, want %+v", b, tc.want)
			}
			code, out, errs = runCLI(t, "replay", "--verify", trace)
			if code != exitOK || !strings.Contains(out, "verified:") {
				t.Fatalf("replay --verify: exit %d: %s %s", code, out, errs)
			}
		})
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckSaysWhatDiffers: check names the expectation that was not met
// and the finding nobody expected (text, KTAP and JSON), and passes the
// same run when the expect entries describe it.
func TestCheckSaysWhatDiffers(t *testing.T) {
	const id = "text-poke-bp-nosync"
	expect := func(e string) func(string) string {
		return func(s string) string {
			i := strings.Index(s, "expect = [")
			j := strings.Index(s[i:], "\n]\n")
			if i < 0 || j < 0 {
				t.Fatal("no expect list in " + id)
			}
			return s[:i] + "expect = " + e + s[i+j+2:]
		}
	}
	dir := scenarioDir(t, id, expect(`[{ analyzer = "cmc", symbol = "other_fn" }]`))
	code, out, errs := runCLI(t, "check", dir)
	if code != exitFinding {
		t.Fatalf("check: exit %d, want %d\n%s%s", code, exitFinding, out, errs)
	}
	for _, want := range []string{
		`  not met: { analyzer = "cmc", symbol = "other_fn" }: 0 finding(s), want at least 1`,
		"  unexpected: cmc on cpu1 at traced_fn (lib/traced/traced.fentry.c:20): ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCLI(t, "check", "--format", "ktap", dir)
	if !strings.Contains(out, "# seed1: not met: ") || !strings.Contains(out, "# seed1: unexpected: cmc on cpu1") {
		t.Errorf("ktap lacks the mismatch:\n%s", out)
	}
	_, out, _ = runCLI(t, "check", "--json", dir)
	var rows []struct {
		Seeds []struct {
			Unmet      []string `json:"unmet"`
			Unexpected []string `json:"unexpected"`
		} `json:"seeds"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || len(rows[0].Seeds) != 1 ||
		len(rows[0].Seeds[0].Unmet) != 1 || len(rows[0].Seeds[0].Unexpected) != 1 {
		t.Errorf("json: %v: %s", err, out)
	}

	for _, e := range []string{
		`[{ analyzer = "cmc", symbol = "traced_fn", cpu = 1, line = "traced.fentry.c:20", count = 1 }]`,
		`[{ analyzer = "cmc", count = "1-2" }, { analyzer = "trap", count = 0 }]`,
		`["cmc"]`,
	} {
		dir := scenarioDir(t, id, expect(e))
		if code, out, errs := runCLI(t, "check", dir); code != exitOK {
			t.Errorf("expect = %s: exit %d\n%s%s", e, code, out, errs)
		}
	}
	// An unknown analyzer in any entry is refused before anything runs.
	dir = scenarioDir(t, id, expect(`[{ analyzer = "cmc" }, { analyzer = "nosuch", count = 0 }]`))
	if code, _, errs := runCLI(t, "check", dir); code != exitError || !strings.Contains(errs, `expect: unknown analyzer "nosuch"`) {
		t.Errorf("unknown analyzer: exit %d: %s", code, errs)
	}
}

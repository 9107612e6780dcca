package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestUnmatchedRules: an injection rule or a must_call window that never
// matched is reported, never silently ignored (issue 12 item 3): run
// warns, check fails the seed naming the rule, analyze FILE reports an
// unmatched finding. A must_call window that never opened used to be
// judged clean (a patcher that never patched passed).
func TestUnmatchedRules(t *testing.T) {
	const id = "ftrace-sti-shadow"
	cases := []struct {
		name string
		edit func(string) string
		run  string // run's warning ("" none)
		want string // in check's failure line and analyze's finding
	}{
		{
			name: "inject-never-reached",
			// patcher_main runs on CPU 0 only: CPU 2 never gets there.
			edit: func(s string) string {
				return s + "\n[[inject]]\nkind = \"nmi\"\ncpu = 2\nat = \"patcher_main\"\n"
			},
			run:  `[[inject]] 4 (kind = "nmi", cpu = 2, at = "patcher_main") never fired`,
			want: `[[inject]] 4 (kind = "nmi", cpu = 2, at = "patcher_main") never fired`,
		},
		{
			name: "inject-nth-arrival-never-reached",
			edit: func(s string) string {
				return s + "\n[[inject]]\nkind = \"timer\"\ncpu = 0\nat = \"patcher_main\"\nhit = 2\n"
			},
			run:  `[[inject]] 4 (kind = "timer", cpu = 0, at = "patcher_main", hit = 2) never fired`,
			want: "never reached a 2nd time",
		},
		{
			name: "must_call-window-never-opened",
			edit: func(s string) string {
				return strings.Replace(s, `handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 1 },`,
					`handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 77 },`, 1)
			},
			want: `contract.must_call 1 (site = "lp_fn1") never matched: its window never opened: no pt_marker(77, ...) ran`,
		},
		{
			name: "must_call-site-never-passed",
			edit: func(s string) string {
				return strings.Replace(s, `{ site = "lp_fn2", handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 1 },`,
					`{ site = "lp_fn2", handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 1 },
	{ site = "patcher_main", handlers = ["lp_handler"], from_marker = 1 },`, 1)
			},
			want: `contract.must_call 3 (site = "patcher_main") never matched`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := scenarioDir(t, id, tc.edit)
			code, _, errs := runCLI(t, "run", dir)
			if code != exitOK {
				t.Fatalf("run: exit %d: %s", code, errs)
			}
			if tc.run != "" && !strings.Contains(errs, "warning: "+tc.run) {
				t.Errorf("run: no warning %q; stderr:\n%s", tc.run, errs)
			}
			if tc.run == "" && strings.Contains(errs, "warning") {
				t.Errorf("run: unexpected warning:\n%s", errs)
			}
			code, out, errs := runCLI(t, "check", dir)
			if code == exitOK {
				t.Fatalf("check passed a run whose rule never matched:\n%s%s", out, errs)
			}
			if !strings.Contains(out, "got unmatched") || !strings.Contains(out, tc.want) {
				t.Errorf("check does not name the rule (%q):\n%s", tc.want, out)
			}
			trace := filepath.Join(t.TempDir(), "t.arrow")
			if code, _, errs := runCLI(t, "record", "-o", trace, dir); code != exitOK {
				t.Fatalf("record: exit %d: %s", code, errs)
			}
			code, out, errs = runCLI(t, "analyze", trace)
			if code == exitOK || !strings.Contains(out, "unmatched") || !strings.Contains(out, tc.want) {
				t.Errorf("analyze: exit %d, no unmatched finding naming %q:\n%s%s", code, tc.want, out, errs)
			}
		})
	}
	// The scenario as built in matches all of its rules.
	code, _, errs := runCLI(t, "run", id)
	if code != exitOK || strings.Contains(errs, "warning") {
		t.Errorf("run %s: exit %d: %s", id, code, errs)
	}
}

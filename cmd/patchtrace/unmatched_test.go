package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenarios"
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
				return strings.Replace(s, `{ site = "lp_fn1", handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 1,`,
					`{ site = "lp_fn1", handlers = ["lp_handler", "ftrace_list_caller"], from_marker = 77,`, 1)
			},
			want: `contract.must_call 1 (site = "lp_fn1") never matched: its window never opened: no pt_marker(77, ...) ran`,
		},
		{
			name: "must_call-site-never-passed",
			edit: func(s string) string {
				return strings.Replace(s, "\n]\nreturn_slots", "\n\t{ site = \"patcher_main\", handlers = [\"lp_handler\"], from_marker = 1 },\n]\nreturn_slots", 1)
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

// TestFileLineRules: an [[inject]] written as file:line that its CPU never
// reaches is reported like any other (run warns, check fails naming it),
// and one at a line with no code is an error naming the file:line and the
// nearest lines that have some.
func TestFileLineRules(t *testing.T) {
	const id = "ftrace-sti-shadow"
	src, err := scenarios.FS.ReadFile("lib/ftrace/ftrace.c")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	comment := 0 // the " */" closing patcher_main's comment
	for i, l := range lines {
		if strings.HasPrefix(l, "void patcher_main(") {
			comment = i
		}
	}
	if comment == 0 || strings.TrimSpace(lines[comment-1]) != "*/" {
		t.Fatalf("lib/ftrace/ftrace.c: no comment before patcher_main (line %d)", comment)
	}
	// A line of patcher_main (CPU 0 only) with code: its entry's.
	elf, err := scenarios.FS.ReadFile(id + "/" + id + ".elf")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(id, elf)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := img.Resolve("patcher_main")
	if err != nil {
		t.Fatal(err)
	}
	code := 0
	if l := img.Line(pm); strings.HasPrefix(l, "lib/ftrace/ftrace.c:") {
		code, _ = strconv.Atoi(strings.TrimPrefix(l, "lib/ftrace/ftrace.c:"))
	}
	if code == 0 {
		t.Fatalf("patcher_main is at %q, not in lib/ftrace/ftrace.c", img.Line(pm))
	}
	at := fmt.Sprintf("ftrace.c:%d", code)
	dir := scenarioDir(t, id, func(s string) string {
		return s + "\n[[inject]]\nkind = \"nmi\"\ncpu = 2\nat = \"" + at + "\"\n"
	})
	rule := `[[inject]] 4 (kind = "nmi", cpu = 2, at = "` + at + `") never fired`
	if code, _, errs := runCLI(t, "run", dir); code != exitOK || !strings.Contains(errs, "warning: "+rule) {
		t.Errorf("run: exit %d, no warning %q:\n%s", code, rule, errs)
	}
	if code, out, errs := runCLI(t, "check", dir); code == exitOK || !strings.Contains(out, rule) {
		t.Errorf("check: exit %d, does not fail naming %q:\n%s%s", code, rule, out, errs)
	}
	// On CPU 0 the same line fires: no warning.
	dir = scenarioDir(t, id, func(s string) string {
		return s + "\n[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"" + at + "\"\n"
	})
	if code, _, errs := runCLI(t, "run", dir); code != exitOK || strings.Contains(errs, "warning") {
		t.Errorf("run with the rule on cpu0: exit %d:\n%s", code, errs)
	}
	bad := fmt.Sprintf("ftrace.c:%d", comment)
	dir = scenarioDir(t, id, func(s string) string {
		return s + "\n[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"" + bad + "\"\n"
	})
	code, _, errs := runCLI(t, "run", dir)
	if want := "lib/ftrace/ftrace.c:" + fmt.Sprint(comment) + ": no code at this line (the nearest lines with code: "; code != exitError || !strings.Contains(errs, want) {
		t.Errorf("run at a comment line: exit %d, want %d and %q:\n%s", code, exitError, want, errs)
	}
}

// TestMustCallAtFileLine: a must_call site written as the file:line of the
// function's opening (the line Line names its entry) is the function's
// entry, fentry nop included: ftrace-int3-skip so written checks as built.
func TestMustCallAtFileLine(t *testing.T) {
	const id = "ftrace-int3-skip"
	elf, err := scenarios.FS.ReadFile(id + "/" + id + ".elf")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(id, elf)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := img.Resolve("lp_fn1")
	if err != nil {
		t.Fatal(err)
	}
	fl := img.Line(fn)
	if !strings.HasPrefix(fl, "lib/ftrace/sites.fentry.c:") {
		t.Fatalf("lp_fn1 is at %q", fl)
	}
	at := strings.TrimPrefix(fl, "lib/ftrace/")
	dir := scenarioDir(t, id, func(s string) string {
		r := strings.Replace(s, `{ site = "lp_fn1",`, `{ site = "`+at+`",`, 1)
		if r == s {
			t.Fatal("no lp_fn1 must_call site to rewrite")
		}
		return r
	})
	code, out, errs := runCLI(t, "check", dir)
	if code != exitOK || !strings.Contains(out, "missed-call:2") {
		t.Errorf("check with site = %q: exit %d\n%s%s", at, code, out, errs)
	}
	// The pass starts at the entry: the finding is at lp_fn1, not past
	// its nop.
	trace := filepath.Join(t.TempDir(), "t.arrow")
	if code, _, errs := runCLI(t, "record", "-o", trace, dir); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	_, out, _ = runCLI(t, "analyze", "--format", "json", trace)
	if !strings.Contains(out, `"where": "lp_fn1",`) {
		t.Errorf("no missed-call finding at lp_fn1 itself:\n%s", out)
	}
}

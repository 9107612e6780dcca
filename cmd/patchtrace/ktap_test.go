package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// ktapTest is one test of a parsed KTAP document.
type ktapTest struct {
	Name     string
	OK       bool
	Subtests []*ktapTest
}

// A strict KTAP version 1 parser following the rules of the kernel's
// tools/testing/kunit/kunit_parser.py (and Documentation/dev-tools/ktap.rst):
// a version line ("KTAP version 1", or "TAP version 14"), an optional
// "# Subtest: NAME" line for a subtest, the plan "1..N", then test lines
// numbered 1..N in order, a subtest indented four spaces more than its
// parent and closed by the parent's result line with the subtest's name.
// Stricter than kunit_parser, which logs what it does not expect: any
// other line, a count that differs from the plan, a name that differs from
// the "# Subtest:" line and a parent "ok" over a failing subtest are errors.
var (
	ktapVersion = regexp.MustCompile(`^(KTAP version 1|TAP version 14)$`)
	ktapSubtest = regexp.MustCompile(`^# Subtest: (.*)$`)
	ktapPlan    = regexp.MustCompile(`^1\.\.([0-9]+)$`)
	ktapResult  = regexp.MustCompile(`^(ok|not ok) ([0-9]+)( - )?([^#]*)( # .*)?$`)
)

type ktapParser struct {
	lines []string
	i     int
}

func parseKTAP(doc string) (*ktapTest, error) {
	p := &ktapParser{lines: strings.Split(strings.TrimSuffix(doc, "\n"), "\n")}
	root := &ktapTest{Name: "(root)", OK: true}
	if err := p.parse(root, 0); err != nil {
		return nil, err
	}
	if p.i != len(p.lines) {
		return nil, fmt.Errorf("line %d: %q after the last test", p.i+1, p.lines[p.i])
	}
	return root, nil
}

// line returns the next line at indentation depth (its text without the
// indentation), or ok=false when the next line is not at that depth.
func (p *ktapParser) line(depth int) (string, bool) {
	if p.i >= len(p.lines) {
		return "", false
	}
	l, ind := p.lines[p.i], strings.Repeat(" ", 4*depth)
	if !strings.HasPrefix(l, ind) || strings.HasPrefix(l[len(ind):], " ") {
		return "", false
	}
	return l[len(ind):], true
}

func (p *ktapParser) errf(format string, a ...any) error {
	return fmt.Errorf("line %d: %s", p.i+1, fmt.Sprintf(format, a...))
}

// parse reads a test's header, plan and results at depth into t.
func (p *ktapParser) parse(t *ktapTest, depth int) error {
	l, ok := p.line(depth)
	if !ok || !ktapVersion.MatchString(l) {
		return p.errf("want a KTAP version line at indentation %d, got %q", 4*depth, l)
	}
	p.i++
	subName := ""
	if l, ok := p.line(depth); ok && depth > 0 {
		if m := ktapSubtest.FindStringSubmatch(l); m != nil {
			subName = m[1]
			p.i++
		}
	}
	for {
		l, ok = p.line(depth)
		if !ok || !strings.HasPrefix(l, "#") {
			break
		}
		p.i++
	}
	m := ktapPlan.FindStringSubmatch(l)
	if !ok || m == nil {
		return p.errf("want a plan 1..N, got %q", l)
	}
	plan, _ := strconv.Atoi(m[1])
	p.i++
	t.Name = subName
	for p.i < len(p.lines) {
		l, ok := p.line(depth)
		if !ok {
			// A subtest (one level deeper) or the end of this level.
			if _, deeper := p.line(depth + 1); deeper {
				sub := &ktapTest{}
				if err := p.parse(sub, depth+1); err != nil {
					return err
				}
				r, ok := p.line(depth)
				m := ktapResult.FindStringSubmatch(r)
				if !ok || m == nil {
					return p.errf("want the result line of subtest %q, got %q", sub.Name, r)
				}
				if err := p.result(t, m, sub); err != nil {
					return err
				}
				continue
			}
			break
		}
		if strings.HasPrefix(l, "#") {
			p.i++
			continue
		}
		m := ktapResult.FindStringSubmatch(l)
		if m == nil {
			return p.errf("not a KTAP line: %q", l)
		}
		if err := p.result(t, m, &ktapTest{}); err != nil {
			return err
		}
	}
	if len(t.Subtests) != plan {
		return p.errf("plan 1..%d but %d tests", plan, len(t.Subtests))
	}
	return nil
}

func (p *ktapParser) result(t *ktapTest, m []string, sub *ktapTest) error {
	n, _ := strconv.Atoi(m[2])
	if n != len(t.Subtests)+1 {
		return p.errf("test number %d, want %d", n, len(t.Subtests)+1)
	}
	name := strings.TrimSpace(m[4])
	if name == "" {
		return p.errf("test %d has no name", n)
	}
	if sub.Name != "" && sub.Name != name {
		return p.errf("result %q closes subtest %q", name, sub.Name)
	}
	sub.Name, sub.OK = name, m[1] == "ok"
	for _, c := range sub.Subtests {
		if !c.OK && sub.OK && !strings.Contains(m[5], "SKIP") {
			return p.errf("test %q is ok but its subtest %q is not", name, c.Name)
		}
	}
	t.Subtests = append(t.Subtests, sub)
	if !sub.OK {
		t.OK = false
	}
	p.i++
	return nil
}

// TestKTAPParserRejects: the parser the KTAP output is checked with can
// fail.
func TestKTAPParserRejects(t *testing.T) {
	good := "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: a\n    1..1\n    ok 1 seed1\nok 1 a\n"
	if _, err := parseKTAP(good); err != nil {
		t.Fatalf("good document: %v", err)
	}
	for name, doc := range map[string]string{
		"no version":       "1..1\nok 1 a\n",
		"plan mismatch":    "KTAP version 1\n1..2\nok 1 a\n",
		"misnumbered":      "KTAP version 1\n1..2\nok 1 a\nok 3 b\n",
		"ok over failure":  "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: a\n    1..1\n    not ok 1 seed1\nok 1 a\n",
		"wrong close name": "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: a\n    1..1\n    ok 1 seed1\nok 1 b\n",
		"bad indentation":  "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 seed1\nok 1 a\n",
		"stray line":       "KTAP version 1\n1..1\nhello\nok 1 a\n",
		"no name":          "KTAP version 1\n1..1\nok 1\n",
	} {
		if _, err := parseKTAP(doc); err == nil {
			t.Errorf("%s: accepted:\n%s", name, doc)
		}
	}
}

// TestCheckKTAP: check --format ktap is KTAP version 1 (parsed strictly):
// one test per scenario with one subtest per seed, a failing seed "not
// ok" with diagnostics, and exit statuses as kselftest's (0 all passed,
// 1 a failure).
func TestCheckKTAP(t *testing.T) {
	code, out, errs := runCLI(t, "check", "--format", "ktap", "--seeds", "2", "text-poke-bp", "ftrace-int3-skip")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	root, err := parseKTAP(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(root.Subtests) != 2 || root.Subtests[0].Name != "text-poke-bp" || root.Subtests[1].Name != "ftrace-int3-skip" || !root.OK {
		t.Fatalf("tests %+v", root.Subtests)
	}
	for _, s := range root.Subtests {
		if len(s.Subtests) != 2 || s.Subtests[0].Name != "seed1" || s.Subtests[1].Name != "seed2" {
			t.Errorf("%s: seeds %+v", s.Name, s.Subtests)
		}
	}

	orig := recordRun
	defer func() { recordRun = orig }()
	recordRun = func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error) {
		if opt.Seed == 2 {
			opt.Source = &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}, {Kind: emu.DecStep, CPU: 99, N: 1}}}
		}
		return orig(spec, path, opt)
	}
	t.Setenv("TMPDIR", t.TempDir())
	code, out, errs = runCLI(t, "check", "--format", "ktap", "--seeds", "2", "text-poke-bp")
	if code != exitFinding {
		t.Fatalf("a failing seed: exit %d\n%s%s", code, out, errs)
	}
	root, err = parseKTAP(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tp := root.Subtests[0]
	if root.OK || tp.OK || !tp.Subtests[0].OK || tp.Subtests[1].OK {
		t.Errorf("want seed1 ok, seed2 and the scenario not ok:\n%s", out)
	}
	if !strings.Contains(out, "    # seed2: expected clean, got") || !strings.Contains(out, "# Totals: pass:0 fail:1") {
		t.Errorf("diagnostics:\n%s", out)
	}
	if code, _, errs := runCLI(t, "check", "--format", "xml"); code != exitUsage || !strings.Contains(errs, "ktap") {
		t.Errorf("--format xml: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "check", "--format", "ktap", "--json"); code != exitUsage || !strings.Contains(errs, "pick one") {
		t.Errorf("--format ktap --json: exit %d %q", code, errs)
	}
}

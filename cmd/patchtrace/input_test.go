package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/scenarios"
)

// scenarioDir writes a copy of built-in scenario id (its scenario.toml
// edited by edit, and its slice ELF) to a temporary directory.
func scenarioDir(t *testing.T, id string, edit func(string) string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "scen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	text, err := scenarios.FS.ReadFile(id + "/scenario.toml")
	if err != nil {
		t.Fatal(err)
	}
	elf, err := scenarios.FS.ReadFile(id + "/" + id + ".elf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scenario.toml"), []byte(edit(string(text))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".elf"), elf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func setKey(key, val string) func(string) string {
	return func(text string) string {
		var out []string
		for _, ln := range strings.Split(text, "\n") {
			if strings.HasPrefix(ln, key+" =") {
				ln = key + " = " + val
			}
			out = append(out, ln)
		}
		return strings.Join(out, "\n")
	}
}

// TestScenarioInputErrors: scenarios from other people (issue 17 items 2,
// 4, 5, 6) give a clear error and exit 2, never a crash, a hang or a file
// outside --out.
func TestScenarioInputErrors(t *testing.T) {
	t.Run("unknown expected analyzer", func(t *testing.T) {
		dir := scenarioDir(t, "text-poke-bp", setKey("expect", `["no-such-analyzer"]`))
		code, _, errs := runCLI(t, "run", dir)
		if code != exitError || !strings.Contains(errs, `expect: unknown analyzer "no-such-analyzer"`) {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("id escaping --out", func(t *testing.T) {
		root := t.TempDir()
		out := filepath.Join(root, "a", "b", "out")
		dir := scenarioDir(t, "text-poke-bp", setKey("id", `"../../escape"`))
		code, _, errs := runCLI(t, "check", dir, "--out", out)
		if code != exitError || !strings.Contains(errs, `id = "../../escape"`) {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if _, err := os.Stat(filepath.Join(root, "a", "escape")); err == nil {
			t.Fatal("check wrote outside --out")
		}
	})
	t.Run("slice is /dev/zero", func(t *testing.T) {
		dir := scenarioDir(t, "text-poke-bp", func(s string) string { return s })
		elf := filepath.Join(dir, "text-poke-bp.elf")
		os.Remove(elf)
		if err := os.Symlink("/dev/zero", elf); err != nil {
			t.Skip(err)
		}
		code, _, errs := runCLI(t, "run", dir)
		if code != exitError || !strings.Contains(errs, "not a regular file but a character device") || !strings.Contains(errs, "scenario.toml") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	for _, tc := range []struct {
		name string
		elf  []byte
		want string
	}{
		{"empty slice", nil, "empty file (0 bytes)"},
		// An i386 executable header: class 32, EXEC, EM_386, version 1.
		{"32-bit slice", append([]byte("\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00\x01"), make([]byte, 52-21)...), "a 32-bit ELF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := scenarioDir(t, "text-poke-bp", func(s string) string { return s })
			if err := os.WriteFile(filepath.Join(dir, "text-poke-bp.elf"), tc.elf, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"run", "record"} {
				args := []string{cmd, dir}
				if cmd == "record" {
					args = append(args, "-o", filepath.Join(t.TempDir(), "t.arrow"))
				}
				code, _, errs := runCLI(t, args...)
				if code != exitError || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "text-poke-bp.elf") {
					t.Errorf("%s: exit %d: %s", cmd, code, errs)
				}
			}
		})
	}
}

// TestCheckOutUnwritable: an --out that cannot be created is reported as
// itself, before any run (it surfaced as "check.json: no such file or
// directory" at the end).
func TestCheckOutUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(file, "out")
	code, stdout, errs := runCLI(t, "check", "text-poke-bp", "--out", out)
	if code != exitError || !strings.Contains(errs, "--out "+out+": mkdir "+file+": not a directory") || stdout != "" {
		t.Fatalf("exit %d: stdout %q, stderr %q", code, stdout, errs)
	}
}

// TestCheckOut: check --out says where it wrote, names the mail column
// MAIL (the scheduler seeds are 1..N), and refuses to write into a
// non-empty directory without --force.
func TestCheckOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errs := runCLI(t, "check", "text-poke-bp", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	for _, want := range []string{"  MAIL  EXPECT", "traces, JSON reports and HTML pages in " + out + " "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in\n%s", want, stdout)
		}
	}
	for _, f := range []string{"check.json", "text-poke-bp/seed1.arrow", "text-poke-bp/seed1.json"} {
		if !fileExists(filepath.Join(out, f)) {
			t.Errorf("%s not written", f)
		}
	}
	code, stdout, errs = runCLI(t, "check", "text-poke-bp", "--out", out)
	if code != exitError || !strings.Contains(errs, "--out "+out+": directory is not empty") || !strings.Contains(errs, "--force") || stdout != "" {
		t.Errorf("second check into %s: exit %d, stdout %q, stderr %q: want a refusal naming --force", out, code, stdout, errs)
	}
	if code, stdout, errs = runCLI(t, "check", "text-poke-bp", "--out", out, "--force"); code != exitOK {
		t.Errorf("check --force: exit %d\n%s%s", code, stdout, errs)
	}
}

// TestInspectSymbolAddrs: --symbols prints addresses as 16 hex digits.
func TestInspectSymbolAddrs(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "t.arrow")
	if code, out, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatalf("record: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := runCLI(t, "inspect", trace, "--symbols")
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	_, syms, _ := strings.Cut(out, "\nsymbols:\n")
	lines := strings.Split(strings.TrimSpace(syms), "\n")
	if len(lines) < 10 {
		t.Fatalf("too few symbols:\n%s", out)
	}
	for _, l := range lines {
		addr := strings.Fields(l)[0]
		if len(addr) != 18 || !strings.HasPrefix(addr, "0x") {
			t.Errorf("address %q is not 0x and 16 hex digits: %q", addr, l)
		}
	}
}

// TestCheckDuplicateIDs: two scenarios with the same id in one check (a
// built-in and a directory copied from it to tweak, or the same id twice)
// would write their traces to the same ID/seedN.arrow, under --out and in
// the failing seeds' directory: one row's trace replaced by another's (a
// failing row pointing at a clean run). check refuses before any run.
func TestCheckDuplicateIDs(t *testing.T) {
	dir := scenarioDir(t, "text-poke-bp", func(s string) string { return s })
	for _, args := range [][]string{{"text-poke-bp", dir}, {"text-poke-bp", "text-poke-bp"}} {
		out := filepath.Join(t.TempDir(), "out")
		code, stdout, errs := runCLI(t, append([]string{"check", "--out", out}, args...)...)
		if code != exitError || !strings.Contains(errs, "text-poke-bp") || !strings.Contains(errs, "twice") || stdout != "" {
			t.Fatalf("check %v: exit %d: stdout %q, stderr %q", args, code, stdout, errs)
		}
		if fileExists(filepath.Join(out, "text-poke-bp")) {
			t.Errorf("check %v ran before refusing", args)
		}
	}
}

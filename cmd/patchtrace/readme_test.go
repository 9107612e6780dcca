package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/format"
)

const readmePath = "../../README.md"

// readmeBlock returns the code block that follows the line "<!-- name -->"
// in README.md, and where its body starts and ends in the file.
func readmeBlock(t *testing.T, readme []byte, name string) (body string, start, end int) {
	t.Helper()
	marker := []byte("<!-- " + name + " -->\n```\n")
	i := bytes.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q block", name)
	}
	start = i + len(marker)
	n := bytes.Index(readme[start:], []byte("```\n"))
	if n < 0 {
		t.Fatalf("README.md: the %q block does not end", name)
	}
	end = start + n
	return string(readme[start:end]), start, end
}

var exitStatusNote = regexp.MustCompile(`# exit status (\d+)`)

// TestReadmeTour runs every command of README's tour, as written and in
// order, with sh in a fresh directory and a freshly built patchtrace on
// PATH, as a new user following it would. A line whose comment says "exit
// status N" must exit N, every other one 0.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("the tour records, explores and exports traces (~30s): not with -short")
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	tour, _, _ := readmeBlock(t, readme, "tour")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "patchtrace"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	n := 0
	for _, line := range strings.Split(tour, "\n") {
		if strings.TrimSpace(line) == "" || line[0] == ' ' || line[0] == '#' {
			continue // a comment continued from the line above
		}
		n++
		want := 0
		if m := exitStatusNote.FindStringSubmatch(line); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir, cmd.Env = dir, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if code != want {
			t.Fatalf("tour line %d exits %d, want %d:\n  %s\n%s", n, code, want, line, tail(out.String(), 40))
		}
	}
	if n < 10 {
		t.Fatalf("only %d tour commands found in README.md", n)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// TestReadmeFinding keeps README's sample finding equal to the first
// finding `patchtrace analyze` prints for the tour's ftrace-int3-skip trace
// (refresh with go test ./cmd/patchtrace -run ReadmeFinding -update).
func TestReadmeFinding(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "ftrace-int3-skip-seed1.arrow")
	if code, out, errs := runCLI(t, "record", "ftrace-int3-skip", "-o", trace); code != exitOK {
		t.Fatalf("record: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := runCLI(t, "analyze", trace)
	if code != exitFinding {
		t.Fatalf("analyze: exit %d, want %d\n%s%s", code, exitFinding, out, errs)
	}
	var finding []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case finding == nil && (strings.HasPrefix(l, "error ") || strings.HasPrefix(l, "warning ")):
			finding = []string{l}
		case finding != nil && l == "":
			goto done
		case finding != nil:
			finding = append(finding, l)
		}
	}
done:
	if len(finding) < 3 {
		t.Fatalf("no finding in the analyze output:\n%s", out)
	}
	want := strings.Join(finding, "\n") + "\n"
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	have, start, end := readmeBlock(t, readme, "finding")
	if *update && have != want {
		readme = append(append(append([]byte{}, readme[:start]...), want...), readme[end:]...)
		if err := os.WriteFile(readmePath, readme, 0o644); err != nil {
			t.Fatal(err)
		}
		have = want
	}
	if have != want {
		t.Fatal(fmt.Sprintf("README.md's sample finding is stale: run go test ./cmd/patchtrace -run ReadmeFinding -update\nhave:\n%s\nwant:\n%s", have, want))
	}
}

// TestTraceFormatOpSample: the mnemonics docs/trace-format.md gives as
// samples of the op column (from format.Columns) are ones a real trace
// holds: a recorded text-poke-bp run executes each of them.
func TestTraceFormatOpSample(t *testing.T) {
	var doc string
	for _, c := range format.Columns {
		if c.Name == "op" {
			doc = c.Doc
		}
	}
	samples := regexp.MustCompile("`([A-Z0-9]+)`").FindAllStringSubmatch(doc, -1)
	if len(samples) < 2 {
		t.Fatalf("the op column's doc names no mnemonics: %q", doc)
	}
	trace := filepath.Join(t.TempDir(), "t.arrow")
	if code, out, errs := runCLI(t, "record", "text-poke-bp", "-o", trace); code != exitOK {
		t.Fatalf("record: exit %d\n%s%s", code, out, errs)
	}
	r, err := format.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	names := r.Meta().OpNames
	seen := map[string]bool{}
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if row.Kind == format.KindInsn && int(row.Op) < len(names) {
			seen[names[row.Op]] = true
		}
	}
	for _, s := range samples {
		if !seen[s[1]] {
			t.Errorf("docs/trace-format.md gives %s as an op value, but a text-poke-bp trace has none (ops seen: %d)", s[1], len(seen))
		}
	}
}

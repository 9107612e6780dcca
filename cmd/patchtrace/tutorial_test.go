package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const tutorialPath = "../../docs/writing-scenarios.md"

// tutorialStep is one command of the tutorial with the output it shows, or
// a file it has the reader write.
type tutorialStep struct {
	cmd    string   // the command, without "$ "
	output []string // the lines shown after it
	file   string   // a file to write (cmd empty): its path
	text   string   // and its contents
	append bool     // added at the end of the file instead
	line   int      // where it is in the doc (1-based), for messages
}

var fileMarker = regexp.MustCompile(`^<!-- (file|append): (\S+) -->$`)

// parseTutorial reads the doc's steps: each ```console block's "$ "
// lines are commands, the lines up to the next one their output; a block
// after a "<!-- file: PATH -->" line is a file to write. blocks gives, per
// console block, the indices of its steps and its body's line range, to
// rewrite the outputs (-update).
func parseTutorial(t *testing.T, doc string) (steps []tutorialStep, blocks [][3]int) {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") || lines[i] == "```" {
			continue
		}
		lang := strings.TrimPrefix(lines[i], "```")
		start := i + 1
		end := start
		for end < len(lines) && lines[end] != "```" {
			end++
		}
		if end == len(lines) {
			t.Fatalf("%s:%d: the ``` block does not end", tutorialPath, i+1)
		}
		body := lines[start:end]
		switch {
		case i > 0 && fileMarker.MatchString(lines[i-1]):
			m := fileMarker.FindStringSubmatch(lines[i-1])
			steps = append(steps, tutorialStep{file: m[2], append: m[1] == "append", text: strings.Join(body, "\n") + "\n", line: i + 1})
		case lang == "console":
			first := len(steps)
			for k, l := range body {
				switch {
				case strings.HasPrefix(l, "$ "):
					steps = append(steps, tutorialStep{cmd: strings.TrimPrefix(l, "$ "), line: start + k + 1})
				case len(steps) == first:
					t.Fatalf("%s:%d: output before the first command of the block", tutorialPath, start+k+1)
				default:
					steps[len(steps)-1].output = append(steps[len(steps)-1].output, l)
				}
			}
			blocks = append(blocks, [3]int{first, start, end})
		}
		i = end
	}
	return steps, blocks
}

var (
	tutorialTime   = regexp.MustCompile(`\b\d+\.\d+s\b`)
	tutorialRate   = regexp.MustCompile(`\d+(\.\d+)? Minstr/s`)
	tutorialSpaces = regexp.MustCompile(` +`)
)

// normalizeOutput masks what differs from run to run (wall times and
// rates, and the table padding that follows their width).
func normalizeOutput(lines []string) string {
	s := strings.Join(lines, "\n")
	s = tutorialTime.ReplaceAllString(s, "T")
	s = tutorialRate.ReplaceAllString(s, "R Minstr/s")
	s = tutorialSpaces.ReplaceAllString(s, " ")
	return strings.TrimRight(s, "\n ")
}

// TestWritingScenariosTutorial runs docs/writing-scenarios.md: every
// command, in order, with sh in a fresh directory and a freshly built
// patchtrace on PATH, writing the files it gives; each must exit as its
// comment says ("# exit status N", else 0) and print what the doc shows
// after it, wall times aside (go test ./cmd/patchtrace -run
// WritingScenariosTutorial -update rewrites the outputs from the run).
func TestWritingScenariosTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("the tutorial builds and runs a scenario several times: not with -short")
	}
	needCC(t)
	raw, err := os.ReadFile(tutorialPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	steps, blocks := parseTutorial(t, doc)
	cmds := 0
	for _, s := range steps {
		if s.cmd != "" {
			cmds++
		}
	}
	if cmds < 15 {
		t.Fatalf("only %d commands found in %s", cmds, tutorialPath)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "patchtrace"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "LC_ALL=C")
	got := make([][]string, len(steps))
	for i, s := range steps {
		if s.file != "" {
			p := filepath.Join(dir, filepath.FromSlash(s.file))
			flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			if s.append {
				flag = os.O_WRONLY | os.O_APPEND
			}
			f, err := os.OpenFile(p, flag, 0o644)
			if err == nil {
				_, err = f.WriteString(s.text)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				t.Fatalf("%s:%d: writing %s: %v", tutorialPath, s.line, s.file, err)
			}
			continue
		}
		want := 0
		if m := exitStatusNote.FindStringSubmatch(s.cmd); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		cmd := exec.Command("sh", "-c", s.cmd)
		cmd.Dir, cmd.Env = dir, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s:%d: %s: %v", tutorialPath, s.line, s.cmd, err)
		}
		if code != want {
			t.Fatalf("%s:%d: exits %d, want %d:\n  $ %s\n%s", tutorialPath, s.line, code, want, s.cmd, tail(out.String(), 40))
		}
		if text := strings.TrimRight(out.String(), "\n"); text != "" {
			got[i] = strings.Split(text, "\n")
		}
	}
	if *update {
		lines := strings.Split(doc, "\n")
		var b []string
		prev := 0
		for _, bl := range blocks {
			b = append(b, lines[prev:bl[1]]...)
			for i := bl[0]; i < len(steps) && steps[i].line <= bl[2]; i++ {
				b = append(b, "$ "+steps[i].cmd)
				b = append(b, got[i]...)
			}
			prev = bl[2]
		}
		b = append(b, lines[prev:]...)
		if err := os.WriteFile(tutorialPath, []byte(strings.Join(b, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for i, s := range steps {
		if s.cmd == "" {
			continue
		}
		if normalizeOutput(got[i]) != normalizeOutput(s.output) {
			t.Errorf("%s:%d: the output of\n  $ %s\nis stale (go test ./cmd/patchtrace -run WritingScenariosTutorial -update); it printed:\n%s\nthe doc shows:\n%s",
				tutorialPath, s.line, s.cmd, strings.Join(got[i], "\n"), strings.Join(s.output, "\n"))
		}
	}
}

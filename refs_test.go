package patchtrace_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Files whose text the reference checks read: code, help text (in Go
// sources), docs, scenario files and slice sources, scripts.
var refExts = []string{".go", ".md", ".toml", ".c", ".h", ".S", ".sh", ".ipynb", ".txt"}

// unresolvable are citations of documents a user of the repository does
// not have (the design notes, the style guide and the anchors the project
// was started from).
var unresolvable = regexp.MustCompile(`\bDESIGN(\.md)?\b|\bSTYLE\.md\b|\bshared/|\banchors/`)

// fileRef matches a file named in prose: docs/X.md, X.md at the root, a
// package's doc.go or RATIONALE.md.
var fileRef = regexp.MustCompile("(?:^|[\\s(`\"'\\[])((?:[a-z][a-z0-9_-]*/)*(?:[A-Za-z][A-Za-z0-9_-]*\\.md|doc\\.go))(?:$|[^\\w.])")

// TestReferencesResolve: every document that code, help text and docs
// cite exists in the repository, and none cites the design notes, style
// guide or anchors that live outside it.
func TestReferencesResolve(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !hasExt(path, refExts) || path == "refs_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		inRaw := false // inside a raw string literal spanning lines
		for i, line := range strings.Split(string(b), "\n") {
			if m := unresolvable.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q, which is not in the repository: %s", path, i+1, m, strings.TrimSpace(line))
			}
			prose := line
			if strings.HasSuffix(path, ".go") {
				prose = goProse(line, &inRaw)
			}
			for _, m := range fileRef.FindAllStringSubmatch(prose, -1) {
				ref := m[1]
				if !refExists(path, ref) {
					t.Errorf("%s:%d names %s, which does not exist", path, i+1, ref)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// goProse returns the parts of a line of Go that are prose: its comment
// and its string literals (help text), not code, where a selector such as
// m.md is no file name. inRaw carries a raw string literal across lines.
func goProse(line string, inRaw *bool) string {
	var b strings.Builder
	var quote byte
	if *inRaw {
		quote = '`'
	}
	defer func() { *inRaw = quote == '`' }()
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == 0 && c == '/' && i+1 < len(line) && line[i+1] == '/':
			b.WriteString(line[i:])
			return b.String()
		case quote == 0 && c == '\'':
			// A rune literal ('`', '"', '\''): skip it.
			if j := strings.IndexByte(line[i+1:], '\''); j >= 0 {
				if line[i+1] == '\\' && j == 1 {
					j = 2
				}
				i += j + 1
			}
		case quote == 0 && (c == '"' || c == '`'):
			quote = c
			b.WriteByte(' ')
		case quote != 0 && c == '\\' && quote == '"':
			i++
		case quote != 0 && c == quote:
			quote = 0
			b.WriteByte(' ')
		case quote != 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func hasExt(path string, exts []string) bool {
	for _, e := range exts {
		if strings.HasSuffix(path, e) {
			return true
		}
	}
	return false
}

// refExists resolves ref from the repository root, from the citing file's
// directory and (for a bare name like RATIONALE.md or doc.go) from any
// enclosing directory up to the root, or from docs/.
func refExists(from, ref string) bool {
	for dir := filepath.Dir(from); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, ref)); err == nil {
			return true
		}
		if dir == "." || dir == "/" {
			break
		}
	}
	// Generated docs (docs/scenarios.md) link their neighbours by name.
	_, err := os.Stat(filepath.Join("docs", ref))
	return err == nil
}

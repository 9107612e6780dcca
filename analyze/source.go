package analyze

import (
	"bufio"
	"io/fs"
	"path"
	"regexp"
	"strings"

	scn "github.com/patchtrace/patchtrace/scenario"
)

// SourceLocator finds where a symbol is defined in a scenario's slice
// sources inside fsys (laid out as <scenario>/*.c|*.S, base/, and the
// lib/<name>/ directories of the built-in libraries its scenario.toml's
// uses lists): an
// assembly label "name:" or a C function definition "... name(" at the start
// of a line. A symbol it cannot find (or "") is located at the slice line of
// the scenario's scenario.toml. Paths are returned as "scenarios/<dir>/<file>".
func SourceLocator(fsys fs.FS) Locator {
	cache := map[string][]srcFile{}
	return func(scenario, symbol string) (string, int, bool) {
		files, ok := cache[scenario]
		if !ok {
			dirs := []string{scenario, "base"}
			if text, err := fs.ReadFile(fsys, path.Join(scenario, "scenario.toml")); err == nil {
				if spec, err := scn.Parse(path.Join(scenario, "scenario.toml"), text); err == nil {
					for _, lib := range spec.Uses {
						if !strings.Contains(lib, "/") { // a built-in library
							dirs = append(dirs, path.Join("lib", lib))
						}
					}
				}
			}
			for _, dir := range dirs {
				ents, _ := fs.ReadDir(fsys, dir)
				for _, e := range ents {
					if ext := path.Ext(e.Name()); ext != ".c" && ext != ".S" {
						continue
					}
					b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
					if err == nil {
						files = append(files, srcFile{path: "scenarios/" + dir + "/" + e.Name(), text: string(b), asm: path.Ext(e.Name()) == ".S"})
					}
				}
			}
			cache[scenario] = files
		}
		if symbol == "" {
			return scenarioFile(fsys, scenario)
		}
		asmDef := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(symbol) + `:`)
		cDef := regexp.MustCompile(`^[A-Za-z_].*[\s*]` + regexp.QuoteMeta(symbol) + `\s*\(`)
		for _, f := range files {
			sc := bufio.NewScanner(strings.NewReader(f.text))
			line := 0
			for sc.Scan() {
				line++
				t := sc.Text()
				if (f.asm && asmDef.MatchString(t)) || (!f.asm && cDef.MatchString(t) && !strings.HasSuffix(strings.TrimSpace(t), ";")) {
					return f.path, line, true
				}
			}
		}
		return scenarioFile(fsys, scenario)
	}
}

// scenarioFile locates a finding the slice source cannot place (no
// symbol, or one defined nowhere in the sources: a page of the image, a
// module_alloc'ed trampoline) at the scenario file's slice line.
func scenarioFile(fsys fs.FS, scenario string) (string, int, bool) {
	b, err := fs.ReadFile(fsys, path.Join(scenario, "scenario.toml"))
	if err != nil {
		return "", 0, false
	}
	line := 1
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "slice") {
			line = i + 1
			break
		}
	}
	return "scenarios/" + scenario + "/scenario.toml", line, true
}

type srcFile struct {
	path, text string
	asm        bool
}

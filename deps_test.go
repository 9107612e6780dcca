// Package patchtrace_test holds the module's dependency policy: which of
// its packages may import which, as Go's own go/build/deps_test.go does for
// the standard library. It is the architecture in one place.
package patchtrace_test

import (
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/patchtrace/patchtrace"

// depsPolicy lists, for every package of the module (by path inside it),
// everything it may import besides the standard library: packages of the
// module by their path inside it, other modules by an import-path prefix.
// The standard library is free, except "unsafe", which must be listed, and
// "C" (cgo), which no package may use. Test files are not checked.
//
// Listed from the leaves up: a package may only import packages listed
// above it. A new import that is not listed here fails TestDeps: add it
// here, in the same commit, if it fits the architecture; if it does not
// (analyze importing emu, format importing anything of ours), the code
// must change instead.
var depsPolicy = []struct {
	pkg   string
	allow []string
}{
	// Leaves: nothing of ours.
	{"internal/memstat", nil},                            // heap measurement for benchmarks and bench
	{"internal/progress", nil},                           // the CLI's progress display on stderr
	{"internal/slice", nil},                              // the slice ABI: symbol table, layout, instruction walk
	{"scenarios", nil},                                   // the embedded built-in scenarios (embed only)
	{"emu/internal/hostexec", []string{"unsafe"}},        // runs snippets on the host CPU
	{"scenario", []string{"github.com/BurntSushi/toml"}}, // scenario.toml
	// The trace format: the schema, Arrow IPC + zstd reader/writer and
	// Parquet export. It imports nothing of ours, so any tool can take it
	// alone.
	{"format", []string{"unsafe", "github.com/apache/arrow/go/v15", "github.com/google/flatbuffers/go", "github.com/klauspost/compress"}},
	// Helpers shared by the tests (no machine: emu's tests use it too;
	// format imports nothing of ours, for RewriteTrace).
	{"internal/testkit", []string{"scenario", "scenarios", "format"}},
	// The machine.
	{"emu", []string{"internal/slice", "scenario", "golang.org/x/arch/x86/x86asm"}},
	// Builds a scenario's slice from source and vets it with the decoder.
	{"internal/slicebuild", []string{"emu", "internal/slice", "scenario"}},
	// The machine's event sink: emu events -> trace rows.
	{"record", []string{"emu", "format", "scenario", "golang.org/x/arch/x86/x86asm"}},
	// A trace as an event stream with reconstructed state: no emu.
	{"replay", []string{"format", "internal/slice", "scenario", "golang.org/x/arch/x86/x86asm"}},
	// The analyzers: over replay, never over emu (not even transitively),
	// so that they judge what the trace says, not what the machine holds.
	{"analyze", []string{"format", "internal/slice", "replay", "scenario", "golang.org/x/arch/x86/x86asm"}},
	// The gdb remote protocol server over a recorded run (replay.Cursor).
	{"internal/gdbserver", []string{"format", "internal/slice", "replay"}},
	// Re-execution of a recorded run: the one place replay meets emu.
	{"analyze/report", []string{"analyze", "format", "replay"}}, // the HTML timeline page
	{"replay/rerun", []string{"emu", "format", "record", "replay", "scenario", "golang.org/x/arch/x86/x86asm"}},
	// Run and judge: configuration -> metadata -> live analyzers -> run ->
	// outcome -> verdict, in one place for check, explore and the tests.
	{"internal/check", []string{"analyze", "emu", "format", "record", "replay", "scenario"}}, // replay: copy-on-write start states shared across runs
	// Schedule search.
	{"explore", []string{"analyze", "emu", "internal/check", "format", "record", "scenario", "github.com/apache/arrow/go/v15", "golang.org/x/arch/x86/x86asm"}},
	// The CLI: wires flags and printing to the packages above.
	{"cmd/patchtrace", []string{"analyze", "analyze/report", "emu", "explore", "format", "internal/check", "internal/gdbserver", "internal/memstat", "internal/progress", "internal/slicebuild", "record", "replay", "replay/rerun", "scenario", "scenarios"}},
}

// never lists dependencies no package may have even transitively, with why.
var never = []struct{ from, to, why string }{
	{"analyze", "emu", "the analyzers judge the trace, not the machine"},
	{"analyze", "replay/rerun", "re-execution pulls in emu"},
	{"analyze/report", "emu", "the report draws the trace, not the machine"},
	{"replay", "emu", "a trace is read without the machine"},
	{"format", "*", "the format imports nothing of ours"},
}

// TestDeps checks every import of every non-test file of the module
// against depsPolicy, and the transitive rules of never. It reads the
// sources itself (go/parser), so it runs wherever the tests run.
func TestDeps(t *testing.T) {
	graph := moduleImports(t)
	allowed := map[string][]string{}
	order := map[string]int{}
	for i, p := range depsPolicy {
		if _, dup := allowed[p.pkg]; dup {
			t.Errorf("depsPolicy lists %s twice", p.pkg)
		}
		allowed[p.pkg] = p.allow
		order[p.pkg] = i
	}
	for i, p := range depsPolicy {
		for _, a := range p.allow {
			if j, ours := order[a]; ours && j >= i {
				t.Errorf("depsPolicy: %s may import %s, which is listed below it (list from the leaves up)", p.pkg, a)
			}
		}
	}
	pkgs := sortedKeys(graph)
	for _, pkg := range pkgs {
		allow, listed := allowed[pkg]
		if !listed {
			t.Errorf("package %s is not in depsPolicy (deps_test.go): add it with what it may import", pkg)
			continue
		}
		for _, imp := range sortedKeys(graph[pkg]) {
			if err := allowedImport(pkg, imp, allow); err != "" {
				t.Errorf("%s imports %s (%s): %s", pkg, imp, graph[pkg][imp], err)
			}
		}
	}
	for _, p := range depsPolicy {
		if _, ok := graph[p.pkg]; !ok {
			t.Errorf("depsPolicy lists %s, which is not a package of the module (any more): remove it", p.pkg)
		}
	}
	for _, n := range never {
		reach := closure(graph, n.from)
		for _, to := range sortedKeys(reach) {
			if to == n.to || (n.to == "*" && graph[to] != nil) {
				t.Errorf("%s reaches %s (via %s): %s", n.from, to, reach[to], n.why)
			}
		}
	}
}

// TestPackageDocs: every package of the module has a package comment (go
// doc is its manual), in exactly one file.
func TestPackageDocs(t *testing.T) {
	docs := map[string][]string{}
	fset := token.NewFileSet()
	for pkg := range moduleImports(t) {
		files, err := filepath.Glob(filepath.Join(filepath.FromSlash(pkg), "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		docs[pkg] = nil
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				docs[pkg] = append(docs[pkg], f)
			}
		}
	}
	for _, pkg := range sortedKeys(docs) {
		switch n := len(docs[pkg]); {
		case n == 0:
			t.Errorf("package %s has no package comment: add one saying what it is and how to use it, in a file of its own as the other packages do", pkg)
		case n > 1:
			t.Errorf("package %s has a package comment in %d files (%s): keep one", pkg, n, strings.Join(docs[pkg], ", "))
		}
	}
}

// allowedImport returns why pkg may not import imp under allow, or "".
func allowedImport(pkg, imp string, allow []string) string {
	switch {
	case imp == "C":
		return "no package uses cgo (host code runs through Go assembly)"
	case imp == "unsafe":
		if !slices.Contains(allow, "unsafe") {
			return "unsafe is not allowed for this package in depsPolicy"
		}
		return ""
	case strings.HasPrefix(imp, module+"/"):
		rel := strings.TrimPrefix(imp, module+"/")
		if !slices.Contains(allow, rel) {
			return "not allowed by depsPolicy in deps_test.go"
		}
		return ""
	case !strings.Contains(strings.Split(imp, "/")[0], "."):
		return "" // the standard library
	}
	for _, a := range allow {
		if imp == a || strings.HasPrefix(imp, a+"/") {
			return ""
		}
	}
	return "a third-party import not allowed by depsPolicy in deps_test.go"
}

// moduleImports returns, for every package directory of the module (path
// inside it), the imports of its non-test Go files, each with the file
// that has it.
func moduleImports(t *testing.T) map[string]map[string]string {
	graph := map[string]map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if ignored(f.Comments, f.Package) {
			return nil
		}
		pkg := filepath.ToSlash(filepath.Dir(path))
		if graph[pkg] == nil {
			graph[pkg] = map[string]string{}
		}
		for _, is := range f.Imports {
			imp, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return err
			}
			if _, seen := graph[pkg][imp]; !seen {
				graph[pkg][imp] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(graph) < len(depsPolicy)/2 {
		t.Fatalf("found only %d packages: is the test running at the module root?", len(graph))
	}
	return graph
}

// ignored reports a file built under no configuration: one whose
// //go:build line names the tag "ignore" (generators run with go run).
func ignored(comments []*ast.CommentGroup, pkgPos token.Pos) bool {
	for _, cg := range comments {
		if cg.Pos() > pkgPos {
			break
		}
		for _, c := range cg.List {
			if !constraint.IsGoBuild(c.Text) {
				continue
			}
			expr, err := constraint.Parse(c.Text)
			if err != nil {
				return false
			}
			ignore := false
			expr.Eval(func(tag string) bool {
				ignore = ignore || tag == "ignore"
				return false
			})
			return ignore
		}
	}
	return false
}

// closure returns what from reaches through graph (the module's packages;
// other imports are leaves), each with the package that imports it.
func closure(graph map[string]map[string]string, from string) map[string]string {
	reach := map[string]string{}
	work := []string{from}
	for len(work) > 0 {
		p := work[0]
		work = work[1:]
		for imp := range graph[p] {
			rel, ours := strings.CutPrefix(imp, module+"/")
			if !ours {
				continue
			}
			if _, seen := reach[rel]; !seen {
				reach[rel] = p
				work = append(work, rel)
			}
		}
	}
	return reach
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

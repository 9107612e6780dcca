package scenarios_test

import (
	"bytes"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/slicebuild"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// scenarioDirs lists the embedded scenarios (directories with a
// scenario.toml).
func scenarioDirs(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(scenarios.FS, "*/scenario.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios embedded")
	}
	dirs := make([]string, len(files))
	for i, f := range files {
		dirs[i] = path.Dir(f)
	}
	return dirs
}

// TestRebuild rebuilds every slice from source, as patchtrace build does
// (internal/slicebuild, with the instruction check), and requires the
// result to be byte-identical to the embedded ELF: the checked-in binaries
// are what the sources say, and the build is reproducible.
func TestRebuild(t *testing.T) {
	for _, tool := range []string{"cc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: CI must be able to rebuild the slices", tool)
			}
			t.Skipf("%s not found: cannot rebuild the slices (install gcc and binutils)", tool)
		}
	}
	for _, dir := range scenarioDirs(t) {
		t.Run(dir, func(t *testing.T) {
			res, err := slicebuild.Build(dir, slicebuild.Options{Builtin: scenarios.FS})
			if err != nil {
				t.Fatal(err)
			}
			name := dir + "/" + res.Spec.Slice
			want, err := fs.ReadFile(scenarios.FS, name)
			if err != nil {
				t.Fatalf("%s: not embedded: %v", name, err)
			}
			if !bytes.Equal(res.ELF, want) {
				t.Errorf("scenarios/%s differs from a rebuild of its sources (%d vs %d bytes): run scenarios/build.sh (or patchtrace build scenarios/%s) and commit the result", name, len(want), len(res.ELF), dir)
			}
		})
	}
	// Every embedded ELF belongs to a scenario.
	embedded, err := fs.Glob(scenarios.FS, "*/*.elf")
	if err != nil {
		t.Fatal(err)
	}
	if len(embedded) != len(scenarioDirs(t)) {
		t.Errorf("%d ELFs embedded for %d scenarios: remove stale ones", len(embedded), len(scenarioDirs(t)))
	}
}

// TestScenarioSymbols loads each scenario and checks that its slice defines
// every symbol the scenario names: task entries, params (8-byte, in a
// writable section), must_call sites and handlers, return slots (per-CPU),
// and has code at every file:line an injection names.
func TestScenarioSymbols(t *testing.T) {
	for _, dir := range scenarioDirs(t) {
		t.Run(dir, func(t *testing.T) {
			s, err := scenario.Load(scenarios.FS, dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.ID != dir {
				t.Errorf("id = %q, want the directory name %q", s.ID, dir)
			}
			if s.Slice != dir+".elf" {
				t.Errorf("slice = %q, want %q (build.sh's output name)", s.Slice, dir+".elf")
			}
			f, err := elf.NewFile(bytes.NewReader(s.ELF))
			if err != nil {
				t.Fatal(err)
			}
			syms, err := f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			byName := make(map[string]elf.Symbol, len(syms))
			for _, sym := range syms {
				byName[sym.Name] = sym
			}
			section := func(sym elf.Symbol) *elf.Section {
				if int(sym.Section) >= len(f.Sections) {
					return nil
				}
				return f.Sections[sym.Section]
			}
			need := func(what, name string) (elf.Symbol, bool) {
				sym, ok := byName[name]
				if !ok {
					t.Errorf("%s %q: no such symbol in %s", what, name, s.Slice)
				}
				return sym, ok
			}
			for _, task := range s.Tasks {
				if sym, ok := need("task entry", task.Entry); ok && elf.ST_TYPE(sym.Info) != elf.STT_FUNC {
					t.Errorf("task entry %q is not a function", task.Entry)
				}
			}
			for _, p := range s.ParamNames() {
				sym, ok := need("param", p)
				if !ok {
					continue
				}
				sec := section(sym)
				if sym.Size != 8 || sec == nil || sec.Flags&elf.SHF_WRITE == 0 || sec.Name == ".data..percpu" {
					t.Errorf("param %q: want an 8-byte global in a writable section", p)
				}
			}
			img, err := emu.LoadImage(s.ID, s.ELF)
			if err != nil {
				t.Fatal(err)
			}
			// needAddr: a file:line must have code, a symbol+off's symbol
			// exist.
			needAddr := func(what, expr string) {
				if _, _, fl := strings.Cut(expr, ":"); fl {
					if _, err := img.Resolve(expr); err != nil {
						t.Errorf("%s %q: %v", what, expr, err)
					}
					return
				}
				name, _, _ := strings.Cut(expr, "+")
				need(what, name)
			}
			for _, mc := range s.Contract.MustCall {
				needAddr("must_call site", mc.Site)
				for _, h := range mc.Handlers {
					needAddr("must_call handler", h)
				}
			}
			for _, slot := range s.Contract.ReturnSlots {
				if sym, ok := need("return slot", slot); ok {
					if sec := section(sym); sec == nil || sec.Name != ".data..percpu" {
						t.Errorf("return slot %q is not a per-CPU variable", slot)
					}
				}
			}
			for _, in := range s.Inject {
				needAddr("inject at", in.At)
			}
		})
	}
}

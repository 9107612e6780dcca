package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// needCC skips the part of a test that compiles when there is no C
// toolchain (CI installs gcc and binutils, and must have them).
func needCC(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"cc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: CI must be able to build slices", tool)
			}
			t.Skipf("%s not found: skipping the build (install gcc and binutils)", tool)
		}
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDir copies the regular files of a directory tree.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func elfSymbols(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range syms {
		have[s.Name] = true
	}
	return have
}

// TestBuildOutsideTree builds a scenario that lives outside the repository
// and links a built-in library, a library of its own (uses = [...] with a
// path), its own source and its own version of a base file (replace), then
// checks it; a rebuild, and a build of a copy elsewhere, are byte-identical.
func TestBuildOutsideTree(t *testing.T) {
	needCC(t)
	dir := filepath.Join(t.TempDir(), "my-nosync")
	toml, err := fs.ReadFile(scenarios.FS, "text-poke-bp-nosync/scenario.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(toml), `id = "text-poke-bp-nosync"`, `id = "my-nosync"`, 1)
	text = strings.Replace(text, `slice = "text-poke-bp-nosync.elf"`, `slice = "out/my.elf"`, 1)
	text = strings.Replace(text, `uses = ["tpb-variants", "traced"]`, `uses = ["tpb-variants", "traced", "../common/mylib"]`+"\n"+`replace = ["base/traps.c"]`, 1)
	if text == string(toml) || !strings.Contains(text, "replace =") {
		t.Fatal("could not rewrite text-poke-bp-nosync's scenario.toml")
	}
	traps, err := fs.ReadFile(scenarios.FS, "base/traps.c")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"scenario.toml": text,
		"own.c":         "#include \"slice.h\"\n#include \"mine.h\"\nunsigned long author_own_fn(void) { return author_lib_fn() + 1; }\n",
		"base/traps.c":  string(traps) + "\nvoid author_traps_mark(void) { }\n",
	})
	writeFiles(t, filepath.Join(filepath.Dir(dir), "common", "mylib"), map[string]string{
		"mine.h":  "unsigned long author_lib_fn(void);\n",
		"extra.c": "#include \"mine.h\"\nunsigned long author_lib_fn(void) { return 41; }\n",
	})

	code, out, errs := runCLI(t, "build", dir)
	if code != exitOK {
		t.Fatalf("build: exit %d\n%s%s", code, out, errs)
	}
	elfPath := filepath.Join(dir, "out", "my.elf")
	first, err := os.ReadFile(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	// Readable by all, like every output (it was 0600, os.CreateTemp's).
	if st, err := os.Stat(elfPath); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("built slice's mode: %v %v, want 0644", st.Mode().Perm(), err)
	}
	syms := elfSymbols(t, elfPath)
	for _, s := range []string{"author_own_fn", "author_lib_fn", "author_traps_mark", "traced_fn", "do_int3"} {
		if !syms[s] {
			t.Errorf("built slice has no %s", s)
		}
	}
	code, out, errs = runCLI(t, "check", dir, "--seeds", "1")
	if code != exitOK || !strings.Contains(out, "my-nosync") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errs)
	}

	// A rebuild, and a build of a copy at another path, give the same bytes.
	code, out, errs = runCLI(t, "build", dir)
	if code != exitOK {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errs)
	}
	again, _ := os.ReadFile(elfPath)
	if !bytes.Equal(first, again) {
		t.Error("a rebuild differs from the first build")
	}
	other := filepath.Join(t.TempDir(), "elsewhere", "x")
	copyDir(t, filepath.Dir(dir), other)
	code, out, errs = runCLI(t, "build", filepath.Join(other, "my-nosync"))
	if code != exitOK {
		t.Fatalf("build of the copy: exit %d\n%s%s", code, out, errs)
	}
	moved, _ := os.ReadFile(filepath.Join(other, "my-nosync", "out", "my.elf"))
	if !bytes.Equal(first, moved) {
		t.Error("the build of a copy at another path differs")
	}
	// --out writes OUT/ID/SLICE.
	out2 := t.TempDir()
	code, out, errs = runCLI(t, "build", "--out", out2, dir)
	if code != exitOK {
		t.Fatalf("build --out: exit %d\n%s%s", code, out, errs)
	}
	if got, _ := os.ReadFile(filepath.Join(out2, "my-nosync", "out", "my.elf")); !bytes.Equal(first, got) {
		t.Error("build --out did not write the same slice to OUT/ID/SLICE")
	}
}

// TestBuildInsnCheck: an instruction the emulator does not implement, and
// a ud2 outside a native service, fail the build, each named; nothing is
// written.
func TestBuildInsnCheck(t *testing.T) {
	needCC(t)
	dir := filepath.Join(t.TempDir(), "bad")
	if code, out, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
		t.Fatalf("new: exit %d\n%s%s", code, out, errs)
	}
	elfPath := filepath.Join(dir, "text-poke-bp.elf")
	if err := os.Remove(elfPath); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"bad.c": "void author_x87(void) { asm volatile(\"nop; fninit\"); }\nvoid author_ud(void) { asm volatile(\"ud2\"); }\n",
	})
	code, out, errs := runCLI(t, "build", dir)
	if code != exitError {
		t.Fatalf("build: exit %d, want %d\n%s%s", code, exitError, out, errs)
	}
	for _, want := range []string{"fninit", filepath.Join(dir, "bad.c") + ":1 (author_x87+0x1)", "not implemented", "ud2", filepath.Join(dir, "bad.c") + ":2 (author_ud", "native service"} {
		if !strings.Contains(errs, want) {
			t.Errorf("error does not name %q:\n%s", want, errs)
		}
	}
	for _, fine := range []string{"text_poke", "pt_marker"} {
		if strings.Contains(errs, "<"+fine) || strings.Contains(errs, "\n  "+fine) {
			t.Errorf("native service %s's ud2 reported:\n%s", fine, errs)
		}
	}
	if _, err := os.Stat(elfPath); err == nil {
		t.Error("a slice that failed the check was written")
	}
}

// TestBuildMissingTool: the error names the tool and the package.
func TestBuildMissingTool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
		t.Fatal(errs)
	}
	for _, tc := range []struct{ env, want string }{
		{"CC", "$CC=patchtrace-no-such-tool not found: install it (Debian/Ubuntu: apt-get install gcc)"},
		{"LD", "$LD=patchtrace-no-such-tool not found: install it (Debian/Ubuntu: apt-get install binutils)"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			if tc.env == "LD" {
				needCC(t)
			}
			t.Setenv(tc.env, "patchtrace-no-such-tool")
			code, _, errs := runCLI(t, "build", dir)
			if code != exitError || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q, want %q", code, errs, tc.want)
			}
		})
	}
}

// TestNewFromEveryBuiltin copies every built-in scenario with new --from,
// builds the copy and checks it with one seed against its expected verdict
// (the bench-* workloads, which check leaves out of its catalog, are only
// built). The copy's slice differs from the built-in one only where ld
// names an assembly object after it (its id is the directory's name).
func TestNewFromEveryBuiltin(t *testing.T) {
	for _, id := range builtinIDs() {
		t.Run(id, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy-of-"+id)
			if code, out, errs := runCLI(t, "new", dir, "--from", id); code != exitOK {
				t.Fatalf("new: exit %d\n%s%s", code, out, errs)
			}
			spec, err := scenario.Load(os.DirFS(dir), ".")
			if err != nil {
				t.Fatal(err)
			}
			if spec.ID != "copy-of-"+id {
				t.Errorf("id = %q, want the directory's name", spec.ID)
			}
			t.Run("build", func(t *testing.T) {
				if testing.Short() && id != defaultScenario {
					t.Skip("-short: only the default scenario's copy is built (scenarios' TestRebuild builds every source)")
				}
				needCC(t)
				if err := os.Remove(filepath.Join(dir, spec.Slice)); err != nil {
					t.Fatal(err)
				}
				if code, out, errs := runCLI(t, "build", dir); code != exitOK {
					t.Fatalf("build: exit %d\n%s%s", code, out, errs)
				}
				if _, err := os.Stat(filepath.Join(dir, spec.Slice)); err != nil {
					t.Fatal(err)
				}
			})
			if strings.HasPrefix(id, "bench-") {
				return
			}
			if code, out, errs := runCLI(t, "check", dir, "--seeds", "1"); code != exitOK {
				t.Errorf("check: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

// TestNewRefuses: a non-empty directory, an unknown scenario.
func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"keep.txt": "x"})
	if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitError || !strings.Contains(errs, "not empty") {
		t.Errorf("non-empty dir: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "new", filepath.Join(dir, "n"), "--from", "text-poke-b"); code != exitUsage || !strings.Contains(errs, `did you mean "text-poke-bp"?`) {
		t.Errorf("unknown scenario: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "new", filepath.Join(dir, "n")); code != exitUsage || !strings.Contains(errs, "--from") {
		t.Errorf("no --from: exit %d %q", code, errs)
	}
}

// TestBuildNotADirectory: an argument that is no scenario directory is
// named; a built-in id gets the command that copies it.
func TestBuildNotADirectory(t *testing.T) {
	code, _, errs := runCLI(t, "build", "text-poke-bp")
	if code != exitError || !strings.Contains(errs, "not a scenario directory") || !strings.Contains(errs, "new DIR --from text-poke-bp") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if code, _, errs := runCLI(t, "build"); code != exitUsage || !strings.Contains(errs, "at least one scenario directory") {
		t.Errorf("no argument: exit %d, stderr %q", code, errs)
	}
}

// TestBuildErrors: what a scenario asks to link must exist, and the error
// says what and where (no C toolchain needed: nothing is compiled).
func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		keys  string
		files map[string]string
		want  string
	}{
		{"replace a file the base lacks", `replace = ["base/nosuch.c"]`, nil, `replace "base/nosuch.c": the base has no nosuch.c`},
		{"replace without the file", `replace = ["base/traps.c"]`, nil, `replace "base/traps.c"`},
		{"unknown built-in library", `uses = ["ftrcae"]`, nil, `uses "ftrcae": no such built-in library`},
		{"missing library directory", `uses = ["./nolib"]`, nil, `uses "./nolib"`},
		{"two libraries of one name", `uses = ["./a/x", "./b/x"]`, map[string]string{"a/x/p.c": "", "b/x/q.c": ""}, "both named x"},
		{"base without a linker script", `base = "mybase"`, map[string]string{"mybase/head.S": ""}, "no slice.lds"},
		{"a uses file", "", map[string]string{"uses": "ftrace\n"}, "uses = [...]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
				t.Fatal(errs)
			}
			toml, err := os.ReadFile(filepath.Join(dir, "scenario.toml"))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Replace(string(toml), "cpus = 4\n", tc.keys+"\ncpus = 4\n", 1)
			files := map[string]string{"scenario.toml": text}
			for k, v := range tc.files {
				files[k] = v
			}
			writeFiles(t, dir, files)
			before, _ := os.ReadFile(filepath.Join(dir, "text-poke-bp.elf"))
			code, _, errs := runCLI(t, "build", dir)
			if code != exitError || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q, want %q", code, errs, tc.want)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "text-poke-bp.elf")); !bytes.Equal(before, after) {
				t.Error("the slice was rewritten by a failed build")
			}
		})
	}
}

// TestBuildRefusesNonRegularSource: a FIFO named like a source is refused,
// not skipped (a source that silently does not build) nor opened (it would
// block).
func TestBuildRefusesNonRegularSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
		t.Fatal(errs)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.c"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	code, _, errs := runCLI(t, "build", dir)
	if code != exitError || !strings.Contains(errs, "fifo.c: not a regular file") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestBuildOwnBase: base = "DIR" links the author's base instead of the
// built-in one; a copy of the built-in base gives the same bytes.
func TestBuildOwnBase(t *testing.T) {
	needCC(t)
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
		t.Fatal(errs)
	}
	elfPath := filepath.Join(dir, "text-poke-bp.elf")
	if code, out, errs := runCLI(t, "build", dir); code != exitOK {
		t.Fatalf("build: exit %d\n%s%s", code, out, errs)
	}
	builtin, _ := os.ReadFile(elfPath)
	ents, err := fs.ReadDir(scenarios.FS, "base")
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{}
	for _, e := range ents {
		b, err := fs.ReadFile(scenarios.FS, "base/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		base["mybase/"+e.Name()] = string(b)
	}
	writeFiles(t, root, base)
	toml, _ := os.ReadFile(filepath.Join(dir, "scenario.toml"))
	writeFiles(t, dir, map[string]string{"scenario.toml": strings.Replace(string(toml), "cpus = 4\n", "base = \"../mybase\"\ncpus = 4\n", 1)})
	if code, out, errs := runCLI(t, "build", dir); code != exitOK {
		t.Fatalf("build with base: exit %d\n%s%s", code, out, errs)
	}
	if got, _ := os.ReadFile(elfPath); !bytes.Equal(got, builtin) {
		t.Error("a copy of the built-in base built different bytes")
	}
	writeFiles(t, root, map[string]string{"mybase/traps.c": base["mybase/traps.c"] + "\nvoid author_base_mark(void) { }\n"})
	if code, out, errs := runCLI(t, "build", dir); code != exitOK {
		t.Fatalf("build with a changed base: exit %d\n%s%s", code, out, errs)
	}
	if !elfSymbols(t, elfPath)["author_base_mark"] {
		t.Error("the author's base was not linked")
	}
}

// TestPerCPUAccessor: per_cpu(var, cpu) reaches another CPU's copy, the
// stride C sees is the machine's (slice.PercpuStride of the slice's per-CPU
// section), this_cpu_ptr is the running CPU's copy, and run prints the
// counters [report] lists.
func TestPerCPUAccessor(t *testing.T) {
	needCC(t)
	dir := filepath.Join(t.TempDir(), "percpu-peer")
	writeFiles(t, dir, map[string]string{
		"scenario.toml": `id = "percpu-peer"
slice = "percpu-peer.elf"
cpus = 3
max_insns = 200_000
expect = "clean"

[[task]]
entry = "peer_main"
cpus = "all"

[report]
counters = ["peer_value", "peer_stride", "peer_self"]
`,
		"peer.c": `#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(u64, peer_value);
DEFINE_PER_CPU(u64, peer_stride);
DEFINE_PER_CPU(u64, peer_self);

void peer_main(unsigned long arg)
{
	unsigned long me = smp_processor_id();

	per_cpu(peer_value, (me + 1) % pt_ncpus) = 100 + me;
	this_cpu_write(peer_stride, per_cpu_stride());
	*this_cpu_ptr(&peer_self) = me + 1;
}
`,
	})
	if code, out, errs := runCLI(t, "build", dir); code != exitOK {
		t.Fatalf("build: exit %d\n%s%s", code, out, errs)
	}
	f, err := elf.Open(filepath.Join(dir, "percpu-peer.elf"))
	if err != nil {
		t.Fatal(err)
	}
	sec := f.Section(slice.PercpuSection)
	f.Close()
	if sec == nil {
		t.Fatal("no per-CPU section")
	}
	stride := slice.PercpuStride(sec.Size)
	code, out, errs := runCLI(t, "run", dir)
	if code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"peer_value   cpu0=102 cpu1=100 cpu2=101",
		fmt.Sprintf("peer_stride  cpu0=%d cpu1=%d cpu2=%d", stride, stride, stride),
		"peer_self    cpu0=1 cpu1=2 cpu2=3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("run output lacks %q:\n%s", want, out)
		}
	}
}

// TestBuildNeverReplacesAnInput: a slice key naming one of the
// scenario's sources or its scenario.toml is refused, the file left as it
// was (the build wrote the ELF over the file it had just compiled);
// rebuilding over a slice ELF still replaces it.
func TestBuildNeverReplacesAnInput(t *testing.T) {
	needCC(t)
	for _, slice := range []string{"patch.c", "scenario.toml", "text-poke-bp.elf"} {
		t.Run(slice, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "s")
			if code, _, errs := runCLI(t, "new", dir, "--from", "text-poke-bp"); code != exitOK {
				t.Fatal(errs)
			}
			toml, err := os.ReadFile(filepath.Join(dir, "scenario.toml"))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Replace(string(toml), `slice = "text-poke-bp.elf"`, `slice = "`+slice+`"`, 1)
			writeFiles(t, dir, map[string]string{"scenario.toml": text})
			before, err := os.ReadFile(filepath.Join(dir, slice))
			if err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCLI(t, "build", dir)
			after, _ := os.ReadFile(filepath.Join(dir, slice))
			if slice == "text-poke-bp.elf" {
				if code != exitOK {
					t.Fatalf("rebuild over the slice: exit %d: %s", code, errs)
				}
				return
			}
			if code != exitError || !strings.Contains(errs, "is not an ELF file") || !strings.Contains(errs, `slice = "`+slice+`"`) {
				t.Errorf("build with slice = %q: exit %d, stderr %q", slice, code, errs)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("%s was replaced by the build", slice)
			}
		})
	}
}

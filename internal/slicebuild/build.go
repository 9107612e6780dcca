// Package slicebuild builds a scenario's kernel slice from source with the
// system C toolchain and the flags of docs/slice-abi.md, reproducibly: the
// sources (the base, the libraries the scenario uses, its own files) are
// staged into a temporary tree with fixed relative paths and compiled from
// there in a fixed order, with a DWARF line table whose paths are the
// staged names, without .comment or build-id, so the same sources give the
// same bytes wherever the scenario lives. The result
// is then vetted with the emulator's own decoder (emu.CheckCode): every
// instruction of every executable section must be one the machine
// implements, and ud2 may only be the body of a native service.
package slicebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/scenario"
)

// CFlags are the C and assembler flags of docs/slice-abi.md.
var CFlags = []string{
	"-std=gnu11", "-O2", "-Wall", "-Werror",
	"-ffreestanding", "-fno-pic", "-mcmodel=kernel", "-mno-red-zone", "-mgeneral-regs-only",
	"-fno-asynchronous-unwind-tables", "-fno-stack-protector", "-fno-builtin", "-nostdinc",
	"-fcf-protection=none", "-fno-jump-tables",
	// As the kernel: 8-byte stack alignment (entry code and trampolines
	// push odd numbers of words), no common symbols, no type-based
	// aliasing.
	"-mpreferred-stack-boundary=3", "-fno-common", "-fno-strict-aliasing",
	"-fno-stack-clash-protection",
	// Keep loops loops, not calls to memset/memcpy.
	"-fno-tree-loop-distribute-patterns",
}

// DebugFlags give a slice its DWARF line table (file:line for every
// instruction, docs/slice-abi.md, Source locations): -g1 is line tables
// and function descriptions, no local variables. Build adds
// -ffile-prefix-map=TREE=. (and -fdebug-prefix-map, for the assembler), so
// the names recorded are the staged ones ("base/entry.S", "ID/patch.c")
// and the bytes do not depend on where the build ran.
var DebugFlags = []string{"-g1", "-gno-record-gcc-switches"}

// ibtFlags turns CFlags into an IBT kernel's (CONFIG_X86_KERNEL_IBT)
// for a scenario with quirks.ibt: -fcf-protection=branch, so that gcc
// starts every function that may be called indirectly with ENDBR64 and
// defines __CET__, by which base/entry.h puts ENDBR64 at every entry
// stub. Without quirks.ibt nothing changes, so the other slices keep
// their bytes.
func ibtFlags(args []string) []string {
	for i, a := range args {
		if a == "-fcf-protection=none" {
			args[i] = "-fcf-protection=branch"
		}
	}
	return args
}

// FentryCFlags are added for *.fentry.c files: each function starts with a
// 5-byte nop listed in __mcount_loc (an ftrace site).
var FentryCFlags = []string{"-pg", "-mfentry", "-mnop-mcount", "-mrecord-mcount"}

// LDFlags are the link flags; base/slice.lds is the ABI's memory layout.
var LDFlags = []string{
	"-nostdlib", "-static", "--build-id=none", "-T", "base/slice.lds",
	"-z", "max-page-size=4096", "-z", "noexecstack", "--orphan-handling=error",
}

// Options say where the tools and the built-in base and libraries are.
type Options struct {
	// CC and LD are the compiler and linker; empty: $CC and $LD, else
	// "cc" and "ld".
	CC, LD string
	// Builtin holds the built-in base (base/) and libraries (lib/NAME/):
	// scenarios.FS.
	Builtin fs.FS
}

// Result is a built slice.
type Result struct {
	Spec *scenario.Spec
	ELF  []byte
	// Sources lists what was compiled, in order, as staged
	// ("base/head.S", "lib/ftrace/ftrace.c", "ID/patch.c").
	Sources []string
}

// ToolError is a missing compiler or linker.
type ToolError struct {
	Tool    string // as configured ("cc", "$CC=clang")
	Package string // the Debian package that provides the default one
	Err     error
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("%s not found: install it (Debian/Ubuntu: apt-get install %s): %v", e.Tool, e.Package, e.Err)
}

func (e *ToolError) Unwrap() error { return e.Err }

// Offender is one instruction of a built slice the emulator cannot run.
type Offender struct {
	Addr   uint64
	Where  string // "file:line" when the slice has line info, else symbol+offset
	Text   string // the instruction, GNU syntax
	Bytes  []byte
	Reason string
}

func (o Offender) String() string {
	return fmt.Sprintf("%s: %s (% x): %s", o.Where, o.Text, o.Bytes, o.Reason)
}

// InsnError lists the instructions of a slice outside the emulator's set.
type InsnError struct {
	Scenario  string
	Offenders []Offender
}

func (e *InsnError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d instruction(s) the emulator does not run:", e.Scenario, len(e.Offenders))
	for _, o := range e.Offenders {
		b.WriteString("\n  " + o.String())
	}
	return b.String()
}

// maxStagedFile bounds a source file copied into the build tree.
const maxStagedFile = 16 << 20

// Build builds the scenario in directory dir (its scenario.toml and
// sources) and returns the linked, vetted slice. Nothing is written into
// dir: the caller writes Result.ELF where the scenario's slice key says.
func Build(dir string, opt Options) (*Result, error) {
	file := filepath.Join(dir, "scenario.toml")
	text, err := readFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	spec, err := scenario.Parse(file, text)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(filepath.Join(dir, "uses")); err == nil {
		return nil, fmt.Errorf("%s: a uses file is no longer read: list the libraries in scenario.toml (uses = [...])", filepath.Join(dir, "uses"))
	}
	if spec.ID == "base" || spec.ID == "lib" {
		return nil, fmt.Errorf("%s: id %q: the build tree has a directory of that name; choose another id", file, spec.ID)
	}
	tmp, err := os.MkdirTemp("", "patchtrace-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	stage, objdir := filepath.Join(tmp, "src"), filepath.Join(tmp, "obj")
	if err := os.MkdirAll(objdir, 0o755); err != nil {
		return nil, err
	}

	// base/: the built-in one or spec.Base, then the replaced files.
	var baseFS fs.FS
	baseDir := "base"
	if spec.Base == "" {
		if opt.Builtin == nil {
			return nil, errors.New("no built-in base available")
		}
		baseFS = opt.Builtin
	} else {
		b := spec.Base
		if !filepath.IsAbs(b) {
			b = filepath.Join(dir, b)
		}
		baseFS, baseDir = os.DirFS(b), "."
	}
	baseFiles, err := stageDir(baseFS, baseDir, filepath.Join(stage, "base"))
	if err != nil {
		return nil, fmt.Errorf("%s: base: %w", file, err)
	}
	if !contains(baseFiles, "slice.lds") {
		return nil, fmt.Errorf("%s: base: no slice.lds (the linker script)", file)
	}
	for _, r := range spec.Replace {
		name := strings.TrimPrefix(r, "base/")
		if !contains(baseFiles, name) {
			return nil, fmt.Errorf("%s: replace %q: the base has no %s (have %s)", file, r, name, strings.Join(baseFiles, ", "))
		}
		own := filepath.Join(dir, filepath.FromSlash(r))
		if err := copyFile(own, filepath.Join(stage, "base", name)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				from := filepath.Join(spec.Base, name)
				if spec.Base == "" {
					from = "scenarios/base/" + name + " of the patchtrace sources"
				}
				return nil, fmt.Errorf("%s: replace %q: no %s (copy %s there and edit it)", file, r, own, from)
			}
			return nil, fmt.Errorf("%s: replace %q: %s: %w", file, r, own, err)
		}
	}
	// Staged names as the author knows them, for the tools' messages.
	names := map[string]string{spec.ID + "/": dir + string(filepath.Separator)}
	for _, r := range spec.Replace {
		names[r] = filepath.Join(dir, filepath.FromSlash(r))
	}
	if spec.Base != "" {
		names["base/"] = filepath.Join(dir, spec.Base) + string(filepath.Separator)
	}
	srcs := sources("base", baseFiles)
	incs := []string{"-Ibase"}

	// lib/NAME/: each library used, in order.
	libNames := map[string]string{}
	for _, u := range spec.Uses {
		var lfs fs.FS
		ldir, name := "lib/"+u, u
		if strings.Contains(u, "/") {
			p := u
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, filepath.FromSlash(u))
			}
			if st, err := os.Stat(p); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("%s: uses %q: %s is not a directory", file, u, p)
			}
			lfs, ldir, name = os.DirFS(p), ".", filepath.Base(p)
		} else {
			if opt.Builtin == nil {
				return nil, fmt.Errorf("%s: uses %q: no built-in libraries available", file, u)
			}
			if st, err := fs.Stat(opt.Builtin, ldir); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("%s: uses %q: no such built-in library (have %s); a directory is written with a '/' (\"./%s\")", file, u, strings.Join(builtinLibs(opt.Builtin), ", "), u)
			}
			lfs = opt.Builtin
		}
		if prev, dup := libNames[name]; dup {
			return nil, fmt.Errorf("%s: uses %q and %q are both named %s in the build tree: rename one", file, prev, u, name)
		}
		libNames[name] = u
		if strings.Contains(u, "/") {
			names["lib/"+name+"/"] = filepath.Join(dir, filepath.FromSlash(u)) + string(filepath.Separator)
		}
		files, err := stageDir(lfs, ldir, filepath.Join(stage, "lib", name))
		if err != nil {
			return nil, fmt.Errorf("%s: uses %q: %w", file, u, err)
		}
		srcs = append(srcs, sources("lib/"+name, files)...)
		incs = append(incs, "-Ilib/"+name)
	}

	// ID/: the scenario's own sources.
	own, err := stageDir(os.DirFS(dir), ".", filepath.Join(stage, spec.ID))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	srcs = append(srcs, sources(spec.ID, own)...)
	incs = append(incs, "-I"+spec.ID)

	// The tools are looked for once what to build is known to be there.
	cc, ld, err := tools(opt)
	if err != nil {
		return nil, err
	}
	var objs []string
	for _, src := range srcs {
		obj := filepath.Join(objdir, strings.ReplaceAll(src, "/", "__")+".o")
		args := append(append(append([]string{}, CFlags...), DebugFlags...), incs...)
		if spec.Quirks.IBT {
			args = ibtFlags(args)
		}
		args = append(args, "-ffile-prefix-map="+stage+"=.", "-fdebug-prefix-map="+stage+"=.")
		switch {
		case strings.HasSuffix(src, ".S"):
			args = append(args, "-D__ASSEMBLY__")
		case strings.HasSuffix(src, ".fentry.c"):
			args = append(args, FentryCFlags...)
		}
		args = append(args, "-c", src, "-o", obj)
		if err := runTool(stage, cc, args, names); err != nil {
			return nil, fmt.Errorf("%s: compiling %s: %w", spec.ID, authorName(src, names), err)
		}
		objs = append(objs, obj)
	}
	out := filepath.Join(objdir, "slice.elf")
	if err := runTool(stage, ld, append(append(append([]string{}, LDFlags...), "-o", out), objs...), names); err != nil {
		return nil, fmt.Errorf("%s: linking: %w", spec.ID, err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if err := CheckInsns(spec.ID, raw, spec.Quirks.IBT); err != nil {
		// The line table has the staged names: say the author's.
		var ie *InsnError
		if errors.As(err, &ie) {
			for i := range ie.Offenders {
				o := &ie.Offenders[i]
				o.Where = stagedPath.ReplaceAllStringFunc(o.Where, func(p string) string { return authorName(p, names) })
			}
		}
		return nil, err
	}
	return &Result{Spec: spec, ELF: raw, Sources: srcs}, nil
}

// authorName names a staged file as the author knows it (ID/x.c is
// DIR/x.c), by the longest staged prefix in names that matches.
func authorName(src string, names map[string]string) string {
	best := ""
	for k := range names {
		if strings.HasPrefix(src, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return src
	}
	return names[best] + src[len(best):]
}

// stagedPath matches a staged file name in a tool's message.
var stagedPath = regexp.MustCompile(`[A-Za-z0-9._/-]+\.(?:c|S|h|lds)\b`)

func tools(opt Options) (cc, ld string, err error) {
	find := func(set, env, def, pkg string) (string, error) {
		name, label := set, set
		if name == "" {
			if v := os.Getenv(env); v != "" {
				name, label = v, "$"+env+"="+v
			} else {
				name, label = def, def
			}
		}
		p, err := exec.LookPath(name)
		if err != nil {
			return "", &ToolError{Tool: label, Package: pkg, Err: err}
		}
		return p, nil
	}
	if cc, err = find(opt.CC, "CC", "cc", "gcc"); err != nil {
		return "", "", err
	}
	if ld, err = find(opt.LD, "LD", "ld", "binutils"); err != nil {
		return "", "", err
	}
	return cc, ld, nil
}

// runTool runs a tool in dir with the C locale (stable messages and
// ordering), returning its output in the error when it fails.
func runTool(dir, tool string, args []string, names map[string]string) error {
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(stagedPath.ReplaceAllStringFunc(string(out), func(p string) string {
			return authorName(p, names)
		}))
		if msg == "" {
			return fmt.Errorf("%s: %w", filepath.Base(tool), err)
		}
		return fmt.Errorf("%s: %w\n%s", filepath.Base(tool), err, msg)
	}
	return nil
}

// stageDir copies the *.c, *.S, *.h and *.lds files directly in
// fsys's directory dir into the host directory to and returns their names,
// sorted (bytewise, as the C locale's glob).
func stageDir(fsys fs.FS, dir, to string) ([]string, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		switch path.Ext(n) {
		case ".c", ".S", ".h", ".lds":
		default:
			continue
		}
		// A symlink is followed; anything but a regular file at the end
		// of it is refused by readLimited, never skipped silently.
		b, err := readLimited(fsys, path.Join(dir, n))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o644); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// sources returns dir's *.S then *.c files (the order build.sh used).
func sources(dir string, names []string) []string {
	var out []string
	for _, ext := range []string{".S", ".c"} {
		for _, n := range names {
			if path.Ext(n) == ext {
				out = append(out, dir+"/"+n)
			}
		}
	}
	return out
}

func builtinLibs(fsys fs.FS) []string {
	ents, _ := fs.ReadDir(fsys, "lib")
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxStagedFile {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", name, maxStagedFile)
	}
	return fs.ReadFile(fsys, name)
}

func readFile(name string) ([]byte, error) {
	return readLimited(os.DirFS(filepath.Dir(name)), filepath.Base(name))
}

func copyFile(from, to string) error {
	b, err := readFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// CheckInsns decodes every executable section of the slice raw with the
// emulator's decoder, sweeping linearly from each symbol, and returns an
// *InsnError naming each instruction the machine would not run: one it
// does not implement, bytes it cannot decode, or a fault (#UD, #GP)
// outside a native service's body, or RDMSR/WRMSR unless ibt (the
// scenario's quirks.ibt: the machine's one MSR is IA32_S_CET). id names
// the slice in the error.
func CheckInsns(id string, raw []byte, ibt bool) error {
	img, err := emu.LoadImage(id, raw)
	if err != nil {
		return err
	}
	var bad []Offender
	for _, sec := range img.Sections {
		if sec.Perm&emu.PermX == 0 || sec.Data == nil {
			continue
		}
		end := sec.Addr + uint64(len(sec.Data))
		starts := []uint64{sec.Addr}
		native := map[uint64]uint64{} // service start -> end
		for _, s := range img.Symbols {
			if s.PerCPU || s.Section != sec.Name || s.Addr < sec.Addr || s.Addr >= end {
				continue
			}
			starts = append(starts, s.Addr)
			if emu.IsService(s.Name) {
				native[s.Addr] = s.Addr + max(s.Size, 1)
			}
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		for i, a := range starts {
			if i > 0 && starts[i-1] == a {
				continue
			}
			stop := end
			if i+1 < len(starts) {
				stop = starts[i+1]
			}
			var last emu.CodeInsn
			length := func(off int) (int, error) {
				last = emu.CheckCode(sec.Data[a-sec.Addr+uint64(off):], a+uint64(off))
				if last.Len == 0 {
					return 0, errors.New(last.Reason)
				}
				return last.Len, nil
			}
			judge := func(at uint64, ci emu.CodeInsn) {
				reason := ""
				switch ci.Class {
				case emu.CodeOK:
					if ci.NeedsIBT && !ibt {
						reason = "not implemented by the emulator without quirks.ibt (its one MSR is CET-IBT's IA32_S_CET)"
					}
				case emu.CodeUnsupported:
					reason = "not implemented by the emulator"
					if ci.Reason != "" && ci.Reason != "not implemented" {
						reason += " (" + ci.Reason + ")"
					}
				case emu.CodeFault:
					if !inNative(native, at) {
						reason = "raises #UD/#GP on the machine (ud2 is allowed only as a native service's body)"
					}
				}
				if reason == "" {
					return
				}
				code := sec.Data[at-sec.Addr:]
				nb := ci.Len
				if nb == 0 {
					nb = min(len(code), 15)
				}
				bad = append(bad, Offender{Addr: at, Where: where(img, at), Text: ci.Text, Bytes: append([]byte(nil), code[:nb]...), Reason: reason})
			}
			err := slice.Walk(int(stop-a), length, func(off, n int) bool {
				judge(a+uint64(off), last)
				return true
			})
			// Bytes that do not decode: named, and the sweep resumes
			// at the next symbol.
			if we := (*slice.WalkError)(nil); errors.As(err, &we) {
				judge(a+uint64(we.Off), last)
			}
		}
	}
	if len(bad) > 0 {
		return &InsnError{Scenario: id, Offenders: bad}
	}
	return nil
}

func inNative(native map[uint64]uint64, a uint64) bool {
	for s, e := range native {
		if a >= s && a < e {
			return true
		}
	}
	return false
}

// where names addr as file:line (with symbol+offset) when the slice has a
// line table, else as symbol+offset.
func where(img *emu.Image, addr uint64) string {
	sym := img.Describe(addr)
	if fl := img.Line(addr); fl != "" {
		return fl + " (" + sym + ")"
	}
	return sym
}

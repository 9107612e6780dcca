package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/patchtrace/patchtrace/internal/slicebuild"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

const buildAbout = "Builds the kernel slice of each scenario directory DIR (in the tree or anywhere)\n" +
	"from its sources with the system C toolchain (cc and ld, or $CC and $LD) and the\n" +
	"flags of docs/slice-abi.md, and writes it where the scenario's slice key says\n" +
	"(DIR/SLICE; with --out, OUT/ID/SLICE). scenario.toml says what is linked: base\n" +
	"(a directory, relative to DIR; default the built-in base), then the libraries of\n" +
	"uses = [...] in order (a name is a built-in library: dyn-tramp, exc-tramp, ftrace,\n" +
	"sti-shadow, tpb-variants, traced; a path with a '/' is a directory, e.g.\n" +
	"\"./mylib\"), then DIR's own *.S and *.c files (*.fentry.c built as ftrace\n" +
	"sites). replace = [\"base/traps.c\", ...] builds DIR/base/traps.c instead of\n" +
	"the base's file of that name. The build is reproducible: the same sources give\n" +
	"the same bytes wherever DIR is. Every instruction of the result is then decoded\n" +
	"with the emulator's own decoder; one it does not implement, bytes it cannot\n" +
	"decode, or a ud2 outside a native service's body fail the build, each named by\n" +
	"file:line when the slice has line info, else by symbol+offset. The ELF is\n" +
	"written only when the build and the check pass, under a temporary name renamed\n" +
	"into place, and never over a file that is not an ELF (a slice key naming a\n" +
	"source or scenario.toml is an error).\n" +
	"Exit status: 0 built, 2 a tool is missing (the message names it and the Debian\n" +
	"package that provides it), a source does not compile or the check failed."

const newAbout = "Copies the built-in scenario SCENARIO (its scenario.toml, sources and built\n" +
	"slice) into the new directory DIR, to edit: it builds (patchtrace build DIR) and\n" +
	"passes patchtrace check DIR unchanged. The copy's id becomes DIR's name when that\n" +
	"is a valid id; it still links the built-in base and the built-in libraries its\n" +
	"uses names (copy a base file into DIR/base/ and list it in replace = [...] to\n" +
	"change it). DIR must not exist or be empty. docs/writing-scenarios.md is a\n" +
	"tutorial from here to a finding at a line of your own code.\n" +
	"Exit status: 0 created, 2 error."

func cmdBuild(env *cmdEnv, args []string) int {
	fs := newFlags(env, "build")
	out := fs.String("out", "", "write each slice to `DIR`/ID/SLICE instead of into its scenario directory")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) == 0 {
		return usageErr(env, fs, "build: want at least one scenario directory")
	}
	status := exitOK
	for _, dir := range pos {
		st, err := os.Stat(dir)
		if err == nil && !st.IsDir() && filepath.Base(dir) == "scenario.toml" {
			dir = filepath.Dir(dir)
		} else if err != nil || !st.IsDir() {
			hint := ""
			if slices.Contains(builtinIDs(), dir) {
				hint = fmt.Sprintf(" (%s is a built-in scenario: patchtrace new DIR --from %s copies it into a directory to build)", dir, dir)
			}
			errorf(env, "build: %s: not a scenario directory%s", dir, hint)
			status = exitError
			continue
		}
		res, err := slicebuild.Build(dir, slicebuild.Options{Builtin: scenarios.FS})
		if err != nil {
			errorf(env, "build: %v", err)
			var te *slicebuild.ToolError
			if errors.As(err, &te) {
				return exitError // no other directory can build either
			}
			status = exitError
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(res.Spec.Slice))
		if *out != "" {
			dst = filepath.Join(*out, res.Spec.ID, filepath.FromSlash(res.Spec.Slice))
		}
		if err := notAnInput(dst); err != nil {
			errorf(env, "build: %s: slice = %q: %v", dir, res.Spec.Slice, err)
			status = exitError
			continue
		}
		if err := writeAtomic(dst, res.ELF); err != nil {
			errorf(env, "build: %s: %v", dir, err)
			status = exitError
			continue
		}
		fmt.Fprintf(env.stdout, "built %s (%d bytes, %d sources)\n", dst, len(res.ELF), len(res.Sources))
	}
	return status
}

// notAnInput refuses to replace a file that is not a slice ELF: the
// slice key naming one of the scenario's sources or its scenario.toml
// (slice = "patch.c") had the build replace it with the ELF it had just
// been built from.
func notAnInput(name string) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	if err == nil && string(magic[:]) == "\x7fELF" {
		return nil
	}
	return fmt.Errorf("%s exists and is not an ELF file (a source, or the scenario file?): refusing to replace it with the slice; name the slice ELF", name)
}

// writeAtomic writes b to name through a temporary file in its directory,
// so a reader never sees half a slice. The slice is 0644 like every other
// output (os.CreateTemp makes 0600: a slice built by one user could not
// be loaded by another, CI's check running as a different user included).
func writeAtomic(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	werr = errors.Join(werr, f.Chmod(0o644), f.Sync(), f.Close())
	if werr == nil {
		werr = os.Rename(f.Name(), name)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

var idLine = regexp.MustCompile(`(?m)^id = "[^"\n]*"$`)

func cmdNew(env *cmdEnv, args []string) int {
	fs := newFlags(env, "new")
	from := fs.String("from", "", "the built-in `SCENARIO` to copy (patchtrace scenarios lists them)")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageErr(env, fs, "new: want one directory, got %d arguments", len(pos))
	}
	if *from == "" {
		return usageErr(env, fs, "new: --from SCENARIO is required (one of %s)", strings.Join(builtinIDs(), ", "))
	}
	id := *from
	known := false
	for _, b := range builtinIDs() {
		known = known || b == id
	}
	if !known {
		return usageErr(env, fs, "new: --from %q: no such built-in scenario%s (have %s)", id, didYouMean(id, builtinIDs()), strings.Join(builtinIDs(), ", "))
	}
	dir := pos[0]
	if ents, err := os.ReadDir(dir); err == nil {
		if len(ents) > 0 {
			return errorf(env, "new: %s exists and is not empty", dir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return errorf(env, "new: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return errorf(env, "new: %v", err)
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return errorf(env, "new: %v", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(abs)+".new*")
	if err != nil {
		return errorf(env, "new: %v", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return errorf(env, "new: %v", err)
	}
	if err := copyScenario(id, filepath.Base(abs), tmp); err != nil {
		os.RemoveAll(tmp)
		return errorf(env, "new: %v", err)
	}
	os.Remove(abs) // an empty directory: replaced by the copy
	if err := os.Rename(tmp, abs); err != nil {
		os.RemoveAll(tmp)
		return errorf(env, "new: %v", err)
	}
	fmt.Fprintf(env.stdout, "created %s from %s: edit it, then\n  patchtrace build %s\n  patchtrace check %s\n", dir, id, dir, dir)
	return exitOK
}

// copyScenario writes the built-in scenario id's files into dir, renaming
// the scenario newID when that is a valid id.
func copyScenario(id, newID, dir string) error {
	ents, err := fs.ReadDir(scenarios.FS, id)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(scenarios.FS, path.Join(id, e.Name()))
		if err != nil {
			return err
		}
		if e.Name() == "scenario.toml" && newID != id && newID != "base" && newID != "lib" {
			renamed := idLine.ReplaceAll(b, []byte(fmt.Sprintf("id = %q", newID)))
			if _, err := scenario.Parse("scenario.toml", renamed); err == nil {
				b = renamed
			}
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

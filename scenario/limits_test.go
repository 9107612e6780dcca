package scenario

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

const base = "id = \"t\"\nslice = \"t.elf\"\ncpus = 4\n"

// TestHostileScenarios: each of these was accepted, wrapped, or exhausted
// memory or stack (issue 17); each must now be a clear error naming the
// file and the key.
func TestHostileScenarios(t *testing.T) {
	deep := "x = " + strings.Repeat("{a=", 100_000) + "1" + strings.Repeat("}", 100_000) + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{"negative max_insns", base + "max_insns = -5\n", "max_insns = -5: must not be negative"},
		{"negative hit", base + "[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"f\"\nhit = -1\n", "inject[0].hit = -1"},
		{"negative param", base + "[params]\nrounds = -3\n", "params.rounds = -3"},
		{"negative quantum", base + "[schedule]\nquantum = [1, -2]\n", "-2 is out of range"},
		{"nan timer rate", base + "[schedule]\ntimer_rate = nan\n", "schedule.timer_rate = NaN: must be in [0, 1)"},
		{"nan nmi rate", base + "[schedule]\nnmi_rate = nan\n", "schedule.nmi_rate = NaN"},
		{"timer rate 1", base + "[schedule]\ntimer_rate = 1.0\n", "schedule.timer_rate = 1: must be in [0, 1)"},
		{"nmi rate 1", base + "[schedule]\nnmi_rate = 1.0\n", "schedule.nmi_rate = 1"},
		{"huge cpu range", base + "[[task]]\nentry = \"x\"\ncpus = \"1-2000000000\"\n", `cpus = "1-2000000000": bad range`},
		{"huge range start", base + "[[task]]\nentry = \"x\"\ncpus = \"2000000000-\"\n", `cpus = "2000000000-"`},
		{"cpu number too big", base + "[[task]]\nentry = \"x\"\ncpus = 99\n", "cpus = 99: not a CPU number"},
		{"cpu list entry too big", base + "[[task]]\nentry = \"x\"\ncpus = [0, 64]\n", "cpus: 64 is not a CPU number"},
		{"id escapes", "id = \"../../escape\"\nslice = \"t.elf\"\ncpus = 1\n", `id = "../../escape"`},
		{"id with slash", "id = \"a/b\"\nslice = \"t.elf\"\ncpus = 1\n", `id = "a/b"`},
		{"id dot", "id = \".\"\nslice = \"t.elf\"\ncpus = 1\n", `id = "."`},
		{"id too long", "id = \"" + strings.Repeat("a", 65) + "\"\nslice = \"t.elf\"\ncpus = 1\n", "id = "},
		{"slice outside", "id = \"t\"\nslice = \"../t.elf\"\ncpus = 1\n", `slice = "../t.elf"`},
		{"slice absolute", "id = \"t\"\nslice = \"/dev/zero\"\ncpus = 1\n", `slice = "/dev/zero"`},
		{"deep inline tables", base + deep, "nested more than 16 deep"},
		{"deep arrays", base + "x = " + strings.Repeat("[", 50_000) + "\n", "nested more than 16 deep"},
		{"offset wraps", base + "[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"f+0xffffffffffffffffff\"\n", `bad offset "0xffffffffffffffffff"`},
		{"line zero", base + "[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"patch.c:0\"\n", `address "patch.c:0": want file.c:LINE (a positive line number)`},
		{"line not a number", base + "[contract]\nmust_call = [{ site = \"patch.c:x\", handlers = [\"h\"] }]\n", `address "patch.c:x": want file.c:LINE`},
		{"site offset not a number", base + "[contract]\nmust_call = [{ site = \"f+zz\", handlers = [\"h\"] }]\n", `address "f+zz"`},
		{"handler without symbol", base + "[contract]\nmust_call = [{ site = \"f\", handlers = [\"+3\"] }]\n", `address "+3": no symbol`},
		{"too big", base + "description = \"" + strings.Repeat("x", MaxTextBytes) + "\"\n", "a scenario file may have at most"},
		{"too many tasks", base + strings.Repeat("[[task]]\nentry = \"x\"\ncpus = \"all\"\n", MaxEntries+1), "257 tasks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.toml", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "s.toml: ") {
				t.Fatalf("error %v, want one naming s.toml and containing %q", err, tc.want)
			}
		})
	}
}

// TestNestingScannerSkipsStringsAndComments: brackets in strings and
// comments are not nesting.
func TestNestingScannerSkipsStringsAndComments(t *testing.T) {
	b := strings.Repeat("[{", 40)
	text := base + "description = \"" + b + "\\\"" + b + "\"\n" +
		"mechanism = '" + b + "'\n" +
		"seed_mail = \"\"\"\n" + b + "\n\"\"\"\n" +
		"# " + b + "\n" +
		"[contract]\nmust_call = [{ site = \"f+0x10\", handlers = [\"h\", \"g\"] }]\n"
	s, err := Parse("s.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Description, b) || s.Contract.MustCall[0].Site != "f+0x10" {
		t.Errorf("parsed %+v", s)
	}
	if line, err := checkNesting([]byte("a = 1\n\nb = " + strings.Repeat("[", 17))); err == nil || line != 3 {
		t.Errorf("line %d, %v: want line 3", line, err)
	}
}

// TestLoadRefusesNonRegularFiles: a slice or scenario file that is a
// device, a FIFO or too large is refused before it is read (a symlink to
// /dev/zero read forever; opening a FIFO blocked forever).
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	scen := []byte("id = \"t\"\nslice = \"t.elf\"\ncpus = 1\n")
	t.Run("device in an fs", func(t *testing.T) {
		fsys := fstest.MapFS{
			"d/scenario.toml": {Data: scen},
			"d/t.elf":         {Mode: fs.ModeDevice | fs.ModeCharDevice},
		}
		_, err := Load(fsys, "d")
		if err == nil || !strings.Contains(err.Error(), "not a regular file but a character device") || !strings.HasPrefix(err.Error(), "d/scenario.toml: slice \"t.elf\"") {
			t.Fatalf("error %v", err)
		}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.toml"), scen, 0o644); err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join(dir, "t.elf")
	for _, tc := range []struct {
		name string
		make func() error
		want string
	}{
		{"symlink to /dev/zero", func() error { return os.Symlink("/dev/zero", elf) }, "a character device"},
		{"fifo", func() error { return syscall.Mkfifo(elf, 0o644) }, "a named pipe"},
		{"directory", func() error { return os.Mkdir(elf, 0o755) }, "a directory"},
		{"too large", func() error {
			f, err := os.Create(elf)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(MaxSliceBytes + 1) // sparse
		}, "more than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(elf)
			if err := tc.make(); err != nil {
				t.Skip(err)
			}
			_, err := Load(os.DirFS(dir), ".")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("scenario file is a device", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "scenario.toml")
		if err := os.Symlink("/dev/zero", link); err != nil {
			t.Skip(err)
		}
		_, err := Load(os.DirFS(filepath.Dir(link)), ".")
		if err == nil || !strings.Contains(err.Error(), "a character device") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("missing slice keeps the cause", func(t *testing.T) {
		os.RemoveAll(elf)
		_, err := Load(os.DirFS(dir), ".")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
		}
	})
}

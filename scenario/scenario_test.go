package scenario

import (
	"reflect"
	"strings"
	"testing"
)

const valid = `
id = "t"
expect = ["cmc"]
slice = "t.elf"
cpus = 4
[quirks]
fetch = "stale"
[params]
rounds = 3
[[task]]
entry = "main"
cpus = "1-"
[[task]]
entry = "p"
cpus = [0]
[[inject]]
kind = "nmi"
cpu = 1
at = "f+3"
hit = 1
[contract]
must_call = [{ site = "traced_fn", handlers = ["h"] }, { site = "g", handlers = ["h"], length = 1, nested = true }]
return_hijacks = [{ handler = "kretprobe_hijack", trampoline = "kretprobe_trampoline" }]
`

func TestParseValid(t *testing.T) {
	s, err := Parse("t.toml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Tasks[0].CPUs.Resolve(s.CPUs); !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Errorf("open range resolved to %v", got)
	}
	if got := s.Tasks[0].CPUs.Resolve(8); len(got) != 7 {
		t.Errorf("open range on 8 CPUs: %v", got)
	}
	if s.Expect.Clean() || s.Expect.String() != "cmc" {
		t.Errorf("expect = %v", s.Expect)
	}
	if s.Params["rounds"] != 3 || s.Quirks.Fetch != "stale" || s.Schedule.Quantum[1] != 64 {
		t.Errorf("parsed %+v", s)
	}
	if s.Text != valid {
		t.Error("Text not kept verbatim")
	}
	if s.OpenEnded() {
		t.Error("a scenario without contract.terminates is open-ended")
	}
	mc := s.Contract.MustCall
	if len(mc) != 2 || mc[0].Length != 0 || mc[0].Nested || mc[1].Length != 1 || !mc[1].Nested {
		t.Errorf("must_call %+v", mc)
	}
	if h := s.Contract.ReturnHijacks; len(h) != 1 || h[0] != (ReturnHijack{"kretprobe_hijack", "kretprobe_trampoline"}) {
		t.Errorf("return_hijacks %+v", h)
	}
}

func TestTerminates(t *testing.T) {
	for _, tc := range []struct {
		line string
		open bool
	}{{"terminates = false", true}, {"terminates = true", false}, {"", false}} {
		s, err := Parse("t.toml", []byte(valid+tc.line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if s.OpenEnded() != tc.open {
			t.Errorf("%q: open-ended %v, want %v", tc.line, s.OpenEnded(), tc.open)
		}
	}
	if _, err := Parse("t.toml", []byte(valid+"terminates = \"no\"\n")); err == nil {
		t.Error("terminates = \"no\" parsed")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown top key", `cpuz = 3`, "unknown key cpuz"},
		{"unknown nested key", "[schedule]\nquantm = [1,2]", "unknown key schedule.quantm"},
		{"bad expect", `expect = "dirty"`, `expect = "dirty"`},
		{"cpu out of range", "[[task]]\nentry = \"x\"\ncpus = [9]", "cpu 9: the scenario has 4 CPUs"},
		{"bad fetch", "[quirks]\nfetch = \"maybe\"", `quirks.fetch = "maybe"`},
		{"notrack without ibt", "[quirks]\nibt_notrack = true", `quirks.ibt_notrack = true needs quirks.ibt = true`},
		{"bad inject kind", "[[inject]]\nkind = \"smi\"\ncpu = 0\nat = \"x\"", `kind "smi"`},
		{"syntax", `cpus = = 4`, "line 1"},
		{"site too long", "[contract]\nmust_call = [{ site = \"f\", handlers = [\"h\"], length = 16 }]", "length 16: a site is one instruction, at most 15 bytes"},
		{"hijack without trampoline", "[contract]\nreturn_hijacks = [{ handler = \"h\" }]", `contract.return_hijacks 1: handler "h" and trampoline ""`},
		{"hijack expression", "[contract]\nreturn_hijacks = [{ handler = \"h+4\", trampoline = \"t\" }]", "must be symbol names"},
		{"unknown hijack key", "[contract]\nreturn_hijacks = [{ handler = \"h\", trampoline = \"t\", slot = 1 }]", "unknown key contract.return_hijacks.slot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.edit + "\nid = \"t\"\nslice = \"t.elf\"\n"
			if !strings.Contains(tc.edit, "cpus =") || strings.Contains(tc.edit, "[[task]]") {
				text = "cpus = 4\n" + text
			}
			if strings.HasPrefix(tc.edit, "[") {
				text = "id = \"t\"\nslice = \"t.elf\"\ncpus = 4\n" + tc.edit + "\n"
			}
			_, err := Parse("s.toml", []byte(text))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "s.toml: ") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
}

// TestBuildKeys checks base, uses and replace (what patchtrace build links).
func TestBuildKeys(t *testing.T) {
	const head = "id = \"t\"\nexpect = \"clean\"\nslice = \"t.elf\"\ncpus = 1\n"
	for _, tc := range []struct {
		keys, err string
	}{
		{`base = "../mybase"` + "\n" + `uses = ["ftrace", "./mylib", "../x/y"]` + "\n" + `replace = ["base/traps.c", "base/slice.lds"]`, ""},
		{`uses = ["ftrace", "ftrace"]`, "listed twice"},
		{`uses = ["my lib"]`, "built-in library name or a directory path"},
		{`uses = ["./"]`, "not a library directory"},
		{`replace = ["traps.c"]`, `want "base/FILE"`},
		{`replace = ["base/sub/traps.c"]`, `want "base/FILE"`},
		{`replace = ["base/../x.c"]`, `want "base/FILE"`},
		{`replace = ["base/traps.c", "base/traps.c"]`, "listed twice"},
	} {
		t.Run(tc.keys, func(t *testing.T) {
			s, err := Parse("t.toml", []byte(head+tc.keys+"\n"))
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "":
				if s.Base != "../mybase" || len(s.Uses) != 3 || len(s.Replace) != 2 {
					t.Errorf("parsed base %q uses %v replace %v", s.Base, s.Uses, s.Replace)
				}
			case err == nil || !strings.Contains(err.Error(), tc.err):
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestExpectEntries: expect takes "clean", analyzer ids (the old form,
// lenient) and tables naming analyzer, cpu, symbol, line and count (strict);
// a bad entry is an error naming it.
func TestExpectEntries(t *testing.T) {
	parse := func(expr string) (Expect, error) {
		s, err := Parse("s.toml", []byte(base+"expect = "+expr+"\n"))
		if err != nil {
			return Expect{}, err
		}
		return s.Expect, nil
	}
	for _, tc := range []struct {
		expr     string
		findings []string
		strict   bool
		entries  []ExpectEntry
		str      string
	}{
		{`"clean"`, nil, false, nil, "clean"},
		{`["trap", "cmc"]`, []string{"cmc", "trap"}, false, []ExpectEntry{{"trap", -1, "", "", 1, -1}, {"cmc", -1, "", "", 1, -1}}, "cmc,trap"},
		{`[{ analyzer = "cmc", cpu = 2, symbol = "f", line = "x.c:3", count = "1-4" }]`, []string{"cmc"}, true,
			[]ExpectEntry{{"cmc", 2, "f", "x.c:3", 1, 4}}, "cmc"},
		{`[{ analyzer = "wx", count = 0 }, { analyzer = "cmc", count = 2 }, { analyzer = "cmc", count = "3-" }]`, []string{"cmc"}, true,
			[]ExpectEntry{{"wx", -1, "", "", 0, 0}, {"cmc", -1, "", "", 2, 2}, {"cmc", -1, "", "", 3, -1}}, "cmc"},
		{`[{ analyzer = "wx", count = 0 }]`, nil, true, []ExpectEntry{{"wx", -1, "", "", 0, 0}}, "clean"},
		// Allowed, not needed: a run that ends on its budget passes,
		// so the table must not say it is expected clean.
		{`[{ analyzer = "progress", count = "0-" }, { analyzer = "trap", count = "0-1" }, { analyzer = "wx", count = 0 }]`, nil, true,
			[]ExpectEntry{{"progress", -1, "", "", 0, -1}, {"trap", -1, "", "", 0, 1}, {"wx", -1, "", "", 0, 0}}, "clean or progress,trap"},
		{"[\n\t\"trap\",\n\t{ analyzer = \"cmc\" },\n]", []string{"cmc", "trap"}, true, []ExpectEntry{{"trap", -1, "", "", 1, -1}, {"cmc", -1, "", "", 1, -1}}, "cmc,trap"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := parse(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Findings, tc.findings) || e.Strict != tc.strict || !reflect.DeepEqual(e.Entries, tc.entries) || e.String() != tc.str {
				t.Errorf("got %+v (%q), want findings %v strict %v entries %+v (%q)", e, e.String(), tc.findings, tc.strict, tc.entries, tc.str)
			}
		})
	}
	if got := (ExpectEntry{"cmc", 2, "f", "x.c:3", 1, 4}).String(); got != `{ analyzer = "cmc", cpu = 2, symbol = "f", line = "x.c:3", count = 1-4 }` {
		t.Errorf("String = %s", got)
	}
	for _, tc := range []struct{ expr, want string }{
		{`"dirty"`, `expect = "dirty"`},
		{`[{ symbol = "f" }]`, "expect entry 1: no analyzer"},
		{`["cmc", { analyzer = "cmc", colour = "red" }]`, `expect entry 2: unknown key "colour"`},
		{`[{ analyzer = "cmc", cpu = 64 }]`, "cpu = 64: not a CPU number"},
		{`[{ analyzer = "cmc", cpu = "1" }]`, `cpu = 1: not a CPU number`},
		{`[{ analyzer = "cmc", count = -1 }]`, "count = -1"},
		{`[{ analyzer = "cmc", count = "3-1" }]`, "count = 3-1"},
		{`[{ analyzer = "cmc", count = "x" }]`, "count = x"},
		{`[{ analyzer = "cmc", count = "+1" }]`, "count = +1"},
		{`[{ analyzer = "cmc", line = "x.c" }]`, `line = "x.c": want file.c:LINE`},
		{`[{ analyzer = "cmc", symbol = 3 }]`, "symbol: want a non-empty string"},
		{`[""]`, "expect entry 1: an empty analyzer id"},
		{`[3]`, "expect entry 1: 3 is neither"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := parse(tc.expr)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "s.toml: ") {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestPreserves: contract.must_call[].preserves and contract.asm_sites
// parse to register sets; a bad one is an error naming the file, the
// entry and the key.
func TestPreserves(t *testing.T) {
	head := "id = \"t\"\nslice = \"t.elf\"\ncpus = 1\n[contract]\n"
	s, err := Parse("s.toml", []byte(head+`must_call = [{ site = "f", handlers = ["h"], preserves = ["rdi", "rax"] }, { site = "g", handlers = ["h"] }]
asm_sites = [{ site = "sel.c:12", length = 5, preserves = "all" }, { site = "lbl+2", length = 1, preserves = ["rflags"], returns = true }]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Contract.MustCall[0].Preserves.Indexes(); !reflect.DeepEqual(got, []int{0, 5}) {
		t.Errorf("must_call 1 preserves %v, want rax, rdi (0, 5)", got)
	}
	if !s.Contract.MustCall[1].Preserves.Empty() {
		t.Errorf("must_call 2 preserves %+v, want none", s.Contract.MustCall[1].Preserves)
	}
	as := s.Contract.AsmSites
	if len(as) != 2 || as[0].Site != "sel.c:12" || as[0].Length != 5 || len(as[0].Preserves.Indexes()) != 16 {
		t.Errorf("asm_sites %+v", as)
	}
	if got := as[1].Preserves.Indexes(); !reflect.DeepEqual(got, []int{16}) || RegNames[16] != "rflags" {
		t.Errorf("asm_sites 2 preserves %v", got)
	}
	if as[0].Returns || !as[1].Returns {
		t.Errorf("asm_sites returns %v, %v: want false, true", as[0].Returns, as[1].Returns)
	}
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown register", `must_call = [{ site = "f", handlers = ["h"], preserves = ["rax", "eax"] }]`, `contract.must_call 1: preserves: unknown register "eax"`},
		{"twice", `asm_sites = [{ site = "f", length = 5, preserves = ["rax", "rax"] }]`, `contract.asm_sites 1: preserves: "rax" listed twice`},
		{"not all", `asm_sites = [{ site = "f", length = 5, preserves = "most" }]`, `preserves = "most": want "all"`},
		{"not a name", `asm_sites = [{ site = "f", length = 5, preserves = [1] }]`, `preserves: 1 is not a register name`},
		{"asm unknown register", `asm_sites = [{ site = "f", length = 5, preserves = "all" }, { site = "g", length = 2, preserves = ["xmm0"] }]`, `contract.asm_sites 2: preserves: unknown register "xmm0"`},
		{"no length", `asm_sites = [{ site = "f", preserves = "all" }]`, "contract.asm_sites 1: length 0"},
		{"too long", `asm_sites = [{ site = "f", length = 5000, preserves = "all" }]`, "contract.asm_sites 1: length 5000"},
		{"no preserves", `asm_sites = [{ site = "f", length = 5 }]`, "contract.asm_sites 1: needs preserves"},
		{"no site", `asm_sites = [{ length = 5, preserves = "all" }]`, "contract.asm_sites 1: needs site"},
		{"bad site", `asm_sites = [{ site = "f.c:0", length = 5, preserves = "all" }]`, `contract.asm_sites 1: address "f.c:0"`},
		{"unknown key", `asm_sites = [{ site = "f", length = 5, preserves = "all", clobbers = [] }]`, "unknown key contract.asm_sites.clobbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.toml", []byte(head+tc.edit+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "s.toml: ") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, tc.want)
			}
		})
	}
}

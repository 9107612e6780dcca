package analyze_test

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
	"golang.org/x/arch/x86/x86asm"
)

// catalogIDs lists the built-in scenarios (directories with a
// scenario.toml). What each must show is its own expect, not a table here.
func catalogIDs(t testing.TB) []string {
	t.Helper()
	files, err := fs.Glob(scenarios.FS, "*/scenario.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no built-in scenarios: %v", err)
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = path.Dir(f)
	}
	return ids
}

// analyzeRun runs spec with every analyzer attached live (check.Run) and
// returns the analysis; a run the emulator could not finish fails the test.
func analyzeRun(t testing.TB, spec *scenario.Spec, opt emu.Options, analyzers ...string) *analyze.Result {
	t.Helper()
	var as []analyze.Analyzer
	if len(analyzers) > 0 {
		var err error
		if as, err = analyze.Select(analyzers); err != nil {
			t.Fatal(err)
		}
	}
	r, err := check.Run(spec, check.Options{Options: opt, Analyzers: as})
	if err != nil {
		t.Fatal(err)
	}
	if r.Run.Stop == emu.StopError || r.Run.Stop == emu.StopHung {
		t.Fatalf("%s seed %d: run stopped: %v %s", spec.ID, opt.Seed, r.Run.Stop, r.Run.Msg)
	}
	return r.Analysis
}

// TestCatalogVerdicts: every built-in scenario's default seed goes as its
// scenario file's expect says (check.Compare: each entry's analyzer, CPU,
// symbol, line and count; no unexpected finding), and every finding has a
// story, a message and evidence.
func TestCatalogVerdicts(t *testing.T) {
	for _, id := range catalogIDs(t) {
		t.Run(id, func(t *testing.T) {
			spec := testkit.Load(t, id, nil)
			res := analyzeRun(t, spec, emu.Options{Seed: 1})
			if spec.Expect.Clean() && res.Verdict != analyze.VerdictClean {
				t.Fatalf("want clean, got %s:\n%s", res.Verdict, summary(res))
			}
			if m := check.Compare(spec.Expect, res.Findings); !m.OK() || res.Verdict == analyze.VerdictIncomplete {
				t.Fatalf("expect %s: %s (verdict %s); got:\n%s", spec.Expect, m, res.Verdict, summary(res))
			}
			for _, f := range res.Findings {
				if len(f.Story) == 0 || f.Message == "" || len(f.Evidence) == 0 {
					t.Errorf("finding without story/message/evidence: %+v", f)
				}
			}
		})
	}
}

// TestCleanRowsStayClean runs every clean scenario over many seeds, moving
// each injection rule across the instructions of the function it targets,
// so the NMI/IRQ lands at every point of the window. (A scenario whose NMI
// trampoline shared the IRQ slot, say, would fail here.)
func TestCleanRowsStayClean(t *testing.T) {
	seeds := 50
	if testing.Short() {
		seeds = 6
	}
	for _, id := range catalogIDs(t) {
		if spec := testkit.Load(t, id, nil); !spec.Expect.Clean() {
			continue
		}
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			spec := testkit.Load(t, id, nil)
			img, err := emu.LoadImage(id, spec.ELF)
			if err != nil {
				t.Fatal(err)
			}
			testkit.Shrink(spec)
			points := make([][]string, len(spec.Inject))
			for i, in := range spec.Inject {
				points[i] = instructionsOf(t, img, in.At)
			}
			orig := append([]scenario.Inject(nil), spec.Inject...)
			for seed := 1; seed <= seeds; seed++ {
				for i := range spec.Inject {
					spec.Inject[i] = orig[i]
					if len(points[i]) > 0 {
						spec.Inject[i].At = points[i][(seed+i)%len(points[i])]
					}
				}
				// Not unmatched: the swept rules are set in Go (the trace's
				// scenario text keeps the file's), and a swept point may be
				// one the shrunk run never reaches.
				res := analyzeRun(t, spec, emu.Options{Seed: uint64(seed)}, protocolAnalyzers()...)
				if len(res.Findings) > 0 || res.Verdict != analyze.VerdictClean {
					var at []string
					for _, in := range spec.Inject {
						at = append(at, in.Kind+"@"+in.At)
					}
					t.Fatalf("seed %d, injections %s: want clean, got:\n%s", seed, strings.Join(at, ", "), summary(res))
				}
			}
		})
	}
}

// protocolAnalyzers are the analyzer ids but unmatched (which judges the
// scenario's rules, not the protocol).
func protocolAnalyzers() []string {
	var ids []string
	for _, id := range analyze.IDs() {
		if id != "unmatched" {
			ids = append(ids, id)
		}
	}
	return ids
}

// instructionsOf returns "sym+off" for every instruction of the function
// named by expr's symbol (decoded from the image), or nil if it cannot.
func instructionsOf(t testing.TB, img *emu.Image, expr string) []string {
	name, _, _ := strings.Cut(expr, "+")
	sym, ok := img.Lookup(strings.TrimSpace(name))
	if !ok || sym.Size == 0 || !sym.Func {
		return nil
	}
	code := img.Bytes(sym.Addr, sym.Size)
	if code == nil {
		return nil
	}
	var out []string
	slice.Walk(len(code), decodeLength(code), func(off, _ int) bool {
		out = append(out, fmt.Sprintf("%s+%#x", sym.Name, off))
		return true
	}) // (an error: the instructions up to it)
	return out
}

// decodeLength measures code's instructions with x86asm (slice.Walk).
func decodeLength(code []byte) slice.Length {
	return func(off int) (int, error) {
		in, err := x86asm.Decode(code[off:], 64)
		return in.Len, err
	}
}

// TestMissedCallCountMatchesSlice: the missed-call rows count, on their
// own, every pass that missed its call: ftrace-int3-skip every pass whose
// livepatch callback did not run (missed_calls; the pass reaches the body
// without a call), int3-emulate-ret every int3 that emulated a RET and
// skipped traced_fn (emulated_rets; the pass never reaches the body). The
// analyzer, from the events alone, must count the same passes.
func TestMissedCallCountMatchesSlice(t *testing.T) {
	for _, tc := range []struct{ id, counter string }{
		{"ftrace-int3-skip", "missed_calls"},
		{"int3-emulate-ret", "emulated_rets"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			spec, err := scenario.Load(scenarios.FS, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			img, err := emu.LoadImage(spec.ID, spec.ELF)
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 3; seed++ {
				md := record.Meta(spec, img, spec.CPUs, seed)
				live, err := analyze.NewLive(&md, analyze.All())
				if err != nil {
					t.Fatal(err)
				}
				res, err := record.Run(spec, "", record.Options{Options: emu.Options{Seed: seed}, Tee: live})
				if err != nil {
					t.Fatal(err)
				}
				var slice uint64
				for c := 0; c < spec.CPUs; c++ {
					v, ok := res.Machine.PercpuU64(c, tc.counter)
					if !ok {
						t.Fatalf("no %s counter", tc.counter)
					}
					slice += v
				}
				found := 0
				for _, f := range live.Finish().Findings {
					if f.Analyzer == "missed-call" {
						found += f.Count
					}
				}
				if slice == 0 || uint64(found) != slice {
					t.Errorf("seed %d: analyzer found %d missed calls, the slice counted %d", seed, found, slice)
				}
			}
		})
	}
}

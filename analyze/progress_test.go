package analyze_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// openEnded returns spec with contract.terminates = false added to its
// text (the trace carries the text; the analyzers read it from there).
func openEnded(t *testing.T, spec *scenario.Spec) *scenario.Spec {
	t.Helper()
	text := strings.Replace(spec.Text, "[contract]\n", "[contract]\nterminates = false\n", 1)
	if text == spec.Text {
		t.Fatal("scenario has no [contract] table")
	}
	s, err := scenario.Parse(spec.ID+"/scenario.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	s.ELF = spec.ELF
	return s
}

// TestProgress: a run stopped by its instruction budget during the boot
// barrier is a progress finding per CPU that did not finish, naming the
// loop and the flag it polled; the same run of a scenario declared
// open-ended is not; a finished run is not.
func TestProgress(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		spec     *scenario.Spec
		maxInsns uint64
		want     bool
	}{
		{"budget", spec, 600, true},
		{"budget, open-ended", openEnded(t, spec), 600, false},
		{"done", spec, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.maxInsns == 0 {
				tc.spec.Params = map[string]uint64{"patch_rounds": 2, "calls": 50, "dwell": 4}
			}
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := record.Run(tc.spec, path, record.Options{Options: emu.Options{Seed: 1, MaxInsns: tc.maxInsns}}); err != nil {
				t.Fatal(err)
			}
			// Not unmatched: 600 instructions reach none of the
			// scenario's injections (TestUnmatched covers that).
			as, err := analyze.Select(protocolAnalyzers())
			if err != nil {
				t.Fatal(err)
			}
			res, err := analyze.AnalyzeFile(path, as)
			if err != nil {
				t.Fatal(err)
			}
			var prog []*analyze.Finding
			for _, f := range res.Findings {
				if f.Analyzer == "progress" {
					prog = append(prog, f)
				}
			}
			if !tc.want {
				if len(prog) != 0 || res.Verdict != analyze.VerdictClean {
					t.Fatalf("verdict %s, progress findings %+v", res.Verdict, prog)
				}
				return
			}
			if res.Outcome != format.OutcomeBudget || res.Verdict != analyze.VerdictFindings {
				t.Fatalf("outcome %q verdict %q", res.Outcome, res.Verdict)
			}
			if len(prog) != 4 {
				t.Fatalf("%d progress findings, want one per CPU (none had finished): %+v", len(prog), prog)
			}
			spinning := 0
			for _, f := range prog {
				if !strings.Contains(f.Message, "cpu0, cpu1, cpu2, cpu3 did not finish") || len(f.Story) == 0 || len(f.Evidence) == 0 {
					t.Errorf("finding %+v", f)
				}
				if strings.Contains(f.Message, "spinning in a 4-instruction loop at start_cpu+") &&
					strings.Contains(f.Message, "polling cpus_booted (mov rax, qword ptr [cpus_booted]") {
					spinning++
				}
			}
			if spinning < 2 {
				t.Errorf("%d CPUs reported spinning on cpus_booted, want at least 2:\n%s", spinning, summary(res))
			}
		})
	}
}

// TestOutcomeJudged: how a run ended decides whether it can be clean,
// whatever the analyzers found in its events.
func TestOutcomeJudged(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec.Params = map[string]uint64{"patch_rounds": 2, "calls": 50, "dwell": 4}
	for _, tc := range []struct {
		outcome, detail string
		verdict         string
		finding         string // analyzer expected to report
	}{
		{format.OutcomeDone, "all CPUs finished", analyze.VerdictClean, ""},
		{format.OutcomeUnsupported, "cpu1 at traced_fn+0x3: unsupported instruction \"0f 0d 08\"", analyze.VerdictIncomplete, "progress"},
		{format.OutcomeError, "decision 3: no CPU 9", analyze.VerdictIncomplete, "progress"},
		{format.OutcomeOops, "cpu2: oops: no handler for #GP at traced_fn+0x1", analyze.VerdictFindings, "trap"},
		{format.OutcomePanic, "cpu0: panic: x", analyze.VerdictFindings, "trap"},
		{format.OutcomeBug, "cpu0: BUG() 0x1", analyze.VerdictFindings, "trap"},
		{format.OutcomeHung, "no CPU can make progress", analyze.VerdictFindings, "progress"},
		{format.OutcomeDecisions, "decision log exhausted", analyze.VerdictIncomplete, ""},
		{"", "", analyze.VerdictClean, ""},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			img, err := emu.LoadImage(spec.ID, spec.ELF)
			if err != nil {
				t.Fatal(err)
			}
			md := record.Meta(spec, img, spec.CPUs, 1)
			live, err := analyze.NewLive(&md, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			// A finished run's events, then the outcome under test.
			if _, err := record.Run(spec, "", record.Options{Options: emu.Options{Seed: 1}, Tee: live}); err != nil {
				t.Fatal(err)
			}
			live.SetOutcome(tc.outcome, tc.detail)
			res := live.Finish()
			if res.Verdict != tc.verdict {
				t.Fatalf("verdict %q, want %q (incomplete %q)\n%s", res.Verdict, tc.verdict, res.Incomplete, summary(res))
			}
			if tc.verdict == analyze.VerdictIncomplete && (!strings.Contains(res.Incomplete, tc.detail) || res.Incomplete == "") {
				t.Errorf("incomplete %q does not say why (%q)", res.Incomplete, tc.detail)
			}
			if tc.finding != "" {
				found := false
				for _, f := range res.Findings {
					found = found || f.Analyzer == tc.finding && (strings.Contains(f.Message, tc.outcome) || strings.Contains(f.Message, tc.detail))
					if tc.outcome == format.OutcomeUnsupported && f.Analyzer == "progress" && (f.CPU != 1 || f.Symbol != "traced_fn" || f.Where != "traced_fn+0x3") {
						t.Errorf("finding placed at cpu%d %s (%s)", f.CPU, f.Where, f.Symbol)
					}
				}
				if !found {
					t.Errorf("no %s finding naming %s:\n%s", tc.finding, tc.outcome, summary(res))
				}
			}
			if tc.outcome == "" && !strings.Contains(strings.Join(res.Warnings, " "), "outcome not recorded") {
				t.Errorf("warnings %q", res.Warnings)
			}
		})
	}
}

// TestProgressRows feeds hand-made events: a CPU halted for good in a hung
// run, a CPU that never called pt_cpu_done in a trace that does not record
// its outcome, the same cut short (no judgement: the rest is unknown), and
// a trace whose outcome says done while its events show cpu1 never
// finished (a rewritten footer): not clean.
func TestProgressRows(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := img.Lookup("traced_fn")
	md := record.Meta(spec, img, 2, 1)
	done := format.Service(0)
	for _, s := range format.Services {
		if s.Name == "pt_cpu_done" {
			done = format.Service(s.Value)
		}
	}
	hlt := [15]byte{0xf4}
	for _, tc := range []struct {
		name      string
		outcome   string
		truncated bool
		want      string // in the finding's message; "" for none
	}{
		{"hung", format.OutcomeHung, false, "cpu1 halted at traced_fn+0x1 waiting for an interrupt that never came"},
		{"not recorded", "", false, "outcome not recorded) and cpu1 never called pt_cpu_done"},
		{"not recorded, truncated", "", true, ""},
		{"done, contradicted by the events", format.OutcomeDone, false, "records outcome done (every CPU finished), but cpu1 never called pt_cpu_done: cpu1 halted at traced_fn+0x1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "progress")})
			if err != nil {
				t.Fatal(err)
			}
			rows := []format.Row{
				{Seq: 1, Kind: format.KindService, CPU: 0, Service: done},
				{Seq: 2, Kind: format.KindInsn, CPU: 1, RIP: fn.Addr, Len: 1, Bytes: hlt},
				{Seq: 3, Kind: format.KindHalt, CPU: 1, RIP: fn.Addr + 1},
			}
			for i := range rows {
				live.Append(&rows[i])
			}
			live.SetOutcome(tc.outcome, "")
			if tc.truncated {
				live.SetTruncated()
			}
			res := live.Finish()
			if tc.want == "" {
				if len(res.Findings) != 0 {
					t.Fatalf("findings %s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || res.Findings[0].CPU != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one cpu1 finding with %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

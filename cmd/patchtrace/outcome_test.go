package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
)

// errorTrace records a run the emulator stops with an error (a decision
// for a CPU the machine does not have) and returns its path.
func errorTrace(t *testing.T, dir string) string {
	t.Helper()
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "error.arrow")
	log := []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 40}, {Kind: emu.DecStep, CPU: 1, N: 40}, {Kind: emu.DecStep, CPU: 99, N: 1}}
	res, err := record.Run(spec, path, record.Options{Source: &emu.LogSource{Log: log}})
	if err == nil || res == nil || res.Stop != emu.StopError {
		t.Fatalf("run: %v", err)
	}
	return path
}

// unsupportedTrace writes the trace of a run that stopped on an
// instruction the emulator does not implement: a real run's events, with
// the outcome the machine records for such a stop.
func unsupportedTrace(t *testing.T, dir string) string {
	t.Helper()
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "unsupported.arrow")
	f, err := format.CreateFile(path, record.Meta(spec, img, spec.CPUs, 1), false)
	if err != nil {
		t.Fatal(err)
	}
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 1, MaxInsns: 500, Sink: record.NewRecorder(f, img)})
	if err != nil {
		t.Fatal(err)
	}
	res := m.Run(src)
	f.SetFinal(format.Final{Decisions: emu.EncodeDecisions(res.Decisions), DecisionsFormat: emu.DecisionsFormat, DecisionCount: len(res.Decisions),
		Outcome: format.OutcomeUnsupported, OutcomeDetail: "cpu1: unsupported instruction 0f 0d 08 at start_cpu+0x3"})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// truncatedTrace records a finished run and cuts its file short.
func truncatedTrace(t *testing.T, dir string) string {
	t.Helper()
	full := filepath.Join(dir, "full.arrow")
	if code, _, errs := runCLI(t, "record", "text-poke-bp-nosync", "-o", full, "--batch-rows", "4096"); code != exitOK {
		t.Fatalf("record: %s", errs)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cut.arrow")
	if err := os.WriteFile(path, b[:len(b)*6/10], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAnalyzeIncomplete: a trace whose run stopped on an emulator error or
// an unsupported instruction, and a truncated trace, are never clean:
// analyze exits 2 in every output format, and each output says why.
func TestAnalyzeIncomplete(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, reason string
	}{
		{"error", errorTrace(t, dir), "no CPU 99"},
		{"unsupported", unsupportedTrace(t, dir), "unsupported instruction 0f 0d 08 at start_cpu+0x3"},
		{"truncated", truncatedTrace(t, dir), "truncated"},
	} {
		for _, fmtName := range []string{"text", "json", "sarif", "junit"} {
			t.Run(tc.name+"/"+fmtName, func(t *testing.T) {
				code, out, errs := runCLI(t, "analyze", tc.path, "--format", fmtName)
				if code != exitError {
					t.Fatalf("exit %d, want %d\n%s%s", code, exitError, out, errs)
				}
				if !strings.Contains(errs, "incomplete") || !strings.Contains(errs, tc.reason) {
					t.Errorf("stderr does not say why: %q", errs)
				}
				switch fmtName {
				case "text":
					if !strings.Contains(out, "INCOMPLETE: ") || !strings.Contains(out, tc.reason) || strings.Contains(out, ": clean") {
						t.Errorf("text:\n%s", out)
					}
				case "json":
					var rs []struct {
						Verdict    string `json:"verdict"`
						Incomplete string `json:"incomplete"`
						Truncated  bool   `json:"truncated"`
						Outcome    string `json:"outcome"`
					}
					if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 {
						t.Fatalf("json: %v\n%s", err, out)
					}
					if rs[0].Verdict != "incomplete" || !strings.Contains(rs[0].Incomplete, tc.reason) || rs[0].Truncated != (tc.name == "truncated") {
						t.Errorf("json: %+v", rs[0])
					}
				case "sarif":
					var log struct {
						Runs []struct {
							Invocations []struct {
								ExecutionSuccessful bool `json:"executionSuccessful"`
								Notes               []struct {
									Level   string `json:"level"`
									Message struct{ Text string }
								} `json:"toolExecutionNotifications"`
							}
						}
					}
					if err := json.Unmarshal([]byte(out), &log); err != nil {
						t.Fatal(err)
					}
					inv := log.Runs[0].Invocations[0]
					found := false
					for _, n := range inv.Notes {
						found = found || n.Level == "error" && strings.Contains(n.Message.Text, tc.reason)
					}
					if inv.ExecutionSuccessful || !found {
						t.Errorf("sarif invocation %+v", inv)
					}
				case "junit":
					var suites struct {
						Errors int `xml:"errors,attr"`
						Suites []struct {
							Cases []struct {
								Name  string `xml:"name,attr"`
								Error *struct {
									Message string `xml:"message,attr"`
								} `xml:"error"`
							} `xml:"testcase"`
						} `xml:"testsuite"`
					}
					if err := xml.Unmarshal([]byte(out), &suites); err != nil {
						t.Fatal(err)
					}
					c := suites.Suites[0].Cases[0]
					if suites.Errors != 1 || c.Name != "run" || c.Error == nil || !strings.Contains(c.Error.Message, tc.reason) {
						t.Errorf("junit:\n%s", out)
					}
				}
			})
		}
	}
	// --allow-truncated judges what the truncated trace has.
	cut := filepath.Join(dir, "cut.arrow")
	code, out, errs := runCLI(t, "analyze", cut, "--allow-truncated", "--format", "junit")
	if code == exitError || !strings.Contains(out, "TRUNCATED") || strings.Contains(out, "<error") {
		t.Errorf("--allow-truncated: exit %d\n%s%s", code, out, errs)
	}
}

// TestCheckEverySeed: a seed whose run the emulator stops with an error
// fails its row but does not stop the others; every seed is reported with
// its outcome, and the failing one with its trace.
func TestCheckEverySeed(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	orig := recordRun
	defer func() { recordRun = orig }()
	recordRun = func(spec *scenario.Spec, path string, opt record.Options) (*record.Result, error) {
		if opt.Seed == 2 {
			opt.Source = &emu.LogSource{Log: []emu.Decision{{Kind: emu.DecStep, CPU: 0, N: 30}, {Kind: emu.DecStep, CPU: 99, N: 1}}}
		}
		return orig(spec, path, opt)
	}
	code, out, errs := runCLI(t, "check", "text-poke-bp", "--seeds", "3")
	if code != exitFinding {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "done:2 error:1") || !strings.Contains(out, "MISMATCH") {
		t.Errorf("row does not count the outcomes of all 3 seeds:\n%s", out)
	}
	var trace string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "text-poke-bp seed 2: ") && strings.Contains(l, "outcome error") && strings.Contains(l, "no CPU 99") {
			_, trace, _ = strings.Cut(l, "; trace ")
		}
	}
	if trace == "" || !fileExists(trace) {
		t.Fatalf("seed 2 not reported with a trace (%q):\n%s", trace, out)
	}
	if want := "traces of the failing seeds in " + filepath.Dir(filepath.Dir(trace)) + " "; !strings.Contains(out, want) {
		t.Errorf("check does not say where it kept the failing traces (%q):\n%s", want, out)
	}
	if code, out, _ := runCLI(t, "analyze", trace); code != exitError || !strings.Contains(out, "no CPU 99") {
		t.Errorf("the failing seed's trace: analyze exit %d\n%s", code, out)
	}
	code, out, errs = runCLI(t, "check", "text-poke-bp", "--seeds", "3", "--json")
	var rows []checkRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != exitFinding || len(rows) != 1 {
		t.Fatalf("--json: exit %d %v\n%s%s", code, err, out, errs)
	}
	var got []string
	for _, s := range rows[0].Seeds {
		got = append(got, fmt.Sprintf("%d:%s:%v", s.Seed, s.Outcome, s.OK))
	}
	if strings.Join(got, " ") != "1:done:true 2:error:false 3:done:true" {
		t.Errorf("seeds %v", got)
	}
}

// TestReplayUnsupportedAsRecorded: a run that really stopped on an
// instruction the emulator does not implement (text-poke-bp with xgetbv
// after traced_fn's fentry nop, which the patcher checks) replays to the same stop: replay --verify
// compares every event and says verified, replay says how it stopped;
// both exited 2 with the instruction's error before. The run itself is
// still incomplete for analyze.
func TestReplayUnsupportedAsRecorded(t *testing.T) {
	spec, err := loadScenario("text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec.ELF = patchSymbol(t, spec.ELF, "traced_fn", 5, []byte{0x0f, 0x01, 0xd0}) // xgetbv
	path := filepath.Join(t.TempDir(), "unsupported.arrow")
	res, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: 1}})
	if res == nil || res.Stop != emu.StopUnsupported {
		t.Fatalf("record: %v %v", res, err)
	}
	if code, out, errs := runCLI(t, "replay", "--verify", path); code != exitOK || !strings.Contains(out, "verified:") {
		t.Errorf("replay --verify: exit %d %q %q, want verified", code, out, errs)
	}
	if code, out, errs := runCLI(t, "replay", path); code != exitOK || !strings.Contains(out, "stopped: unsupported") {
		t.Errorf("replay: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, "analyze", path); code != exitError || !strings.Contains(errs, "incomplete") {
		t.Errorf("analyze: exit %d %q, want incomplete", code, errs)
	}
}

// patchSymbol returns a copy of an ELF with the bytes at sym+off replaced
// by b.
func patchSymbol(t *testing.T, img []byte, sym string, off uint64, b []byte) []byte {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name != sym || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		at := sec.Offset + (s.Value - sec.Addr) + off
		out := bytes.Clone(img)
		copy(out[at:], b)
		return out
	}
	t.Fatalf("no symbol %s", sym)
	return nil
}

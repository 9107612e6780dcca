package record

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

func load(t testing.TB, id string) *scenario.Spec {
	t.Helper()
	s, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// small makes text-poke-bp short enough for unit tests.
func small(s *scenario.Spec) *scenario.Spec {
	s.Params = map[string]uint64{"patch_rounds": 6, "calls": 150, "dwell": 16}
	return s
}

// tee records rows as the machine emits them, for comparison with the file.
type tee struct {
	rec  *Recorder
	rows []format.Row
}

func (t *tee) Append(r *format.Row) error {
	t.rows = append(t.rows, *r)
	return nil
}

func TestRoundTrip(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	// What the machine emits, converted by the same recorder.
	want := &tee{}
	m, src, err := emu.SetupImage(spec, img, emu.Options{Seed: 3, Sink: NewRecorder(want, img)})
	if err != nil {
		t.Fatal(err)
	}
	if res := m.Run(src); res.Stop != emu.StopDone {
		t.Fatalf("stop %v %s", res.Stop, res.Msg)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	res, err := Run(spec, path, Options{Options: emu.Options{Seed: 3}, BatchRows: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != uint64(len(want.rows)) {
		t.Fatalf("file has %d events, machine emitted %d", res.Events, len(want.rows))
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	i := 0
	kinds := map[format.Kind]int{}
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if *row != want.rows[i] {
			t.Fatalf("row %d:\n got  %+v\n want %+v", i, *row, want.rows[i])
		}
		kinds[row.Kind]++
		i++
	}
	if i != len(want.rows) {
		t.Fatalf("read %d rows, want %d", i, len(want.rows))
	}
	for _, k := range []format.Kind{format.KindInsn, format.KindWrite, format.KindTrap, format.KindIret,
		format.KindPerm, format.KindSerialize, format.KindSwitch, format.KindService, format.KindMarker, format.KindInject, format.KindHalt} {
		if kinds[k] == 0 {
			t.Errorf("no %v events recorded", k)
		}
	}
	md := r.Meta()
	if md.Scenario != spec.ID || md.ScenarioText != spec.Text || !bytes.Equal(md.ELF, spec.ELF) || md.CPUs != 4 || md.Seed != 3 {
		t.Errorf("metadata: %q cpus %d seed %d elf %d bytes", md.Scenario, md.CPUs, md.Seed, len(md.ELF))
	}
	ds, err := emu.DecodeDecisions(md.Decisions)
	if err != nil || len(ds) != len(res.Decisions) || md.DecisionsFormat != emu.DecisionsFormat {
		t.Fatalf("decision log: %d decisions (%v), want %d", len(ds), err, len(res.Decisions))
	}
	for i := range ds {
		if ds[i] != res.Decisions[i] {
			t.Fatalf("decision %d: %v, want %v", i, ds[i], res.Decisions[i])
		}
	}
	if md.Outcome != format.OutcomeDone || md.OutcomeDetail != "all CPUs finished" {
		t.Errorf("outcome %q %q, want done", md.Outcome, md.OutcomeDetail)
	}
}

// TestOutcomes: a run stopped on its budget records the outcome with the
// message (that every stop reason is a trace outcome of the same number and
// name is TestEnumTwins').
func TestOutcomes(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	path := filepath.Join(t.TempDir(), "t.arrow")
	if _, err := Run(spec, path, Options{Options: emu.Options{Seed: 1, MaxInsns: 2000}}); err != nil {
		t.Fatal(err)
	}
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if md := r.Meta(); md.Outcome != format.OutcomeBudget || md.OutcomeDetail != "instruction budget exhausted" {
		t.Errorf("outcome %q %q, want budget", md.Outcome, md.OutcomeDetail)
	}
}

func TestRecordingDoesNotChangeTheRun(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	plain, src, err := emu.Setup(spec, emu.Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	pres := plain.Run(src)
	res, err := Run(spec, filepath.Join(t.TempDir(), "r.arrow"), Options{Options: emu.Options{Seed: 11}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Insns != pres.Insns || len(res.Decisions) != len(pres.Decisions) || res.Machine.StateHash() != plain.StateHash() {
		t.Fatalf("recording changed the run: insns %d vs %d", res.Insns, pres.Insns)
	}
}

func TestDeterministicBytes(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	dir := t.TempDir()
	var files [2][]byte
	for i := range files {
		p := filepath.Join(dir, []string{"a.arrow", "b.arrow"}[i])
		if _, err := Run(spec, p, Options{Options: emu.Options{Seed: 5}}); err != nil {
			t.Fatal(err)
		}
		var err error
		if files[i], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("same scenario and seed gave different trace bytes")
	}
}

func TestNoOverwriteWithoutForce(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	p := filepath.Join(t.TempDir(), "x.arrow")
	if err := os.WriteFile(p, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(spec, p, Options{Options: emu.Options{Seed: 1}})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "precious" {
		t.Fatal("existing file was changed")
	}
	if _, err := Run(spec, p, Options{Options: emu.Options{Seed: 1}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := format.Open(p); err != nil {
		t.Fatalf("forced file is not a trace: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("left files behind: %v", ents)
	}
}

// TestToolVersion: a trace records Version() (the build's version; a test
// binary names none, so 0.1.0-dev), or Options.ToolVersion when set.
func TestToolVersion(t *testing.T) {
	spec := small(load(t, "text-poke-bp"))
	if Version() != devVersion {
		t.Errorf("Version() = %q in a test binary, want %q", Version(), devVersion)
	}
	for _, c := range []struct{ opt, want string }{{"", devVersion}, {"v1.2.3", "v1.2.3"}} {
		t.Run(c.want, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "v.arrow")
			if _, err := Run(spec, p, Options{Options: emu.Options{Seed: 1}, ToolVersion: c.opt}); err != nil {
				t.Fatal(err)
			}
			r, err := format.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.Meta().ToolVersion; got != c.want {
				t.Errorf("tool version %q, want %q", got, c.want)
			}
		})
	}
}

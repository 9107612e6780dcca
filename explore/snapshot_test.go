package explore

import (
	"bytes"
	"slices"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestSnapshotRunsByteIdentical records runs started from the scenario's
// snapshot (emu.Snapshot, what every schedule of an exploration starts
// from) and from a machine set up from scratch, for several seeds in turn
// on one snapshot (so each run follows runs that stored to its memory,
// text included: text-poke-bp patches code through the alias, and
// ftrace-int3-skip with its injection rules tears text_poke bytes), and
// requires byte-identical traces and equal final machine states.
func TestSnapshotRunsByteIdentical(t *testing.T) {
	for _, c := range []struct {
		id     string
		params map[string]uint64
	}{
		{"text-poke-bp", map[string]uint64{"patch_rounds": 2, "calls": 100}},
		{"ftrace-int3-skip", map[string]uint64{"rounds": 2}},
	} {
		t.Run(c.id, func(t *testing.T) {
			spec, err := scenario.Load(scenarios.FS, c.id)
			if err != nil {
				t.Fatal(err)
			}
			prepared, err := Prepare(spec, c.params, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			pm, err := NewMachine(prepared)
			if err != nil {
				t.Fatal(err)
			}
			_, sched, err := emu.ConfigFor(prepared, emu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, seed := range []uint64{1, 2, 3, 1} {
				fresh, freshState := recordRun(t, pm, seed, sched, false)
				snap, snapState := recordRun(t, pm, seed, sched, true)
				if !bytes.Equal(fresh, snap) {
					t.Errorf("seed %d: the trace from the snapshot (%d bytes) differs from a fresh machine's (%d bytes)", seed, len(snap), len(fresh))
				}
				if freshState != snapState {
					t.Errorf("seed %d: final state hash %#x from the snapshot, %#x fresh", seed, snapState, freshState)
				}
			}
		})
	}
}

// recordRun runs seed's random schedule on a machine of pm, from its
// snapshot or set up from scratch, and returns the trace and the final
// machine state's hash.
func recordRun(t *testing.T, pm *Machine, seed uint64, sched emu.Schedule, fromSnapshot bool) ([]byte, uint64) {
	t.Helper()
	var buf bytes.Buffer
	w, err := format.NewWriter(&buf, pm.md)
	if err != nil {
		t.Fatal(err)
	}
	rec := record.NewRecorder(w, pm.Img)
	var m *emu.Machine
	if fromSnapshot {
		m, err = pm.machine(rec)
	} else {
		cfg := pm.cfg
		cfg.Sink = rec
		cfg.Inject = slices.Clone(cfg.Inject)
		m, err = emu.New(pm.Img, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	res := m.Run(emu.NewRandomSource(seed, sched))
	if err, seq, _ := rec.Err(); err != nil {
		t.Fatalf("event %d: %v", seq, err)
	}
	if res.Events < 1000 {
		t.Fatalf("seed %d: %d events (%v): too short a run to show anything", seed, res.Events, res.Stop)
	}
	outcome, detail := record.Outcome(res)
	w.SetFinal(format.Final{Outcome: outcome, OutcomeDetail: detail})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m.StateHash()
}

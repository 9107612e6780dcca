package rerun_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/explore"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay/rerun"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// recordSmall records the instance most tests here use: text-poke-bp with
// one patch round (about 12,000 events).
func recordSmall(t *testing.T, seed uint64) string {
	return recordScenario(t, "text-poke-bp", map[string]uint64{"patch_rounds": 1, "calls": 60, "dwell": 8}, seed)
}

// recordScenario records scenario id (with its injection plan) with the
// seeded random scheduler, as `patchtrace record` does.
func recordScenario(t *testing.T, id string, params map[string]uint64, seed uint64) string {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err = explore.Prepare(spec, params, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	if _, err := record.Run(spec, path, record.Options{Options: emu.Options{Seed: seed}, BatchRows: 4096}); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t *testing.T, path string) (*format.Reader, *rerun.Run) {
	t.Helper()
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	run, err := rerun.FromMeta(r.Meta())
	if err != nil {
		t.Fatal(err)
	}
	return r, run
}

func TestVerifyRecorded(t *testing.T) {
	for _, c := range []struct {
		id     string
		params map[string]uint64
		seed   uint64
	}{
		{"text-poke-bp", map[string]uint64{"patch_rounds": 1, "calls": 60, "dwell": 8}, 1},
		{"text-poke-bp", map[string]uint64{"patch_rounds": 1, "calls": 60, "dwell": 8}, 7},
		{"dyn-tramp-ro", map[string]uint64{"calls": 20, "dwell": 100}, 2},              // an injection plan
		{"text-poke-bp-nosync", map[string]uint64{"patch_rounds": 2, "calls": 100}, 3}, // stale fetch
	} {
		seed := c.seed
		path := recordScenario(t, c.id, c.params, seed)
		r, run := open(t, path)
		n, div, err := run.Verify(r.Events())
		if err != nil {
			t.Fatal(err)
		}
		if div != nil {
			t.Fatalf("%s seed %d: %v", c.id, seed, div)
		}
		if n != r.NumEvents() || n == 0 {
			t.Fatalf("%s seed %d: verified %d events, the trace has %d", c.id, seed, n, r.NumEvents())
		}
	}
}

// rewrite copies the trace at src to a new file, passing each row and
// the final metadata through the edit functions.
func rewrite(t *testing.T, src string, editRow func(*format.Row), editFinal func(*format.Final)) string {
	t.Helper()
	r, err := format.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := *r.Meta()
	dst := filepath.Join(t.TempDir(), "altered.arrow")
	f, err := format.CreateFile(dst, md, false, format.WithBatchRows(4096))
	if err != nil {
		t.Fatal(err)
	}
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		c := *row
		if editRow != nil {
			editRow(&c)
		}
		if err := f.Append(&c); err != nil {
			t.Fatal(err)
		}
	}
	fin := md.Final
	if editFinal != nil {
		editFinal(&fin)
	}
	f.SetFinal(fin)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestVerifyReportsDivergence(t *testing.T) {
	path := recordSmall(t, 3)
	// Pick an instruction and a write deep in the run to alter.
	r, _ := open(t, path)
	var insnSeq, writeSeq, regSeq uint64
	regIdx := -1
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if row.Seq > r.NumEvents()/3 && regSeq == 0 && row.Kind == format.KindInsn && row.RegMask != 0 {
			regSeq = row.Seq
			for regIdx = 0; row.RegMask&(1<<regIdx) == 0; regIdx++ {
			}
		}
		if row.Seq > r.NumEvents()/2 && insnSeq == 0 && row.Kind == format.KindInsn {
			insnSeq = row.Seq
		}
		if row.Seq > 2*r.NumEvents()/3 && writeSeq == 0 && row.Kind == format.KindWrite {
			writeSeq = row.Seq
		}
	}
	if insnSeq == 0 || writeSeq == 0 || regSeq == 0 {
		t.Fatal("trace too short for the test")
	}
	cases := []struct {
		name      string
		row       func(*format.Row)
		final     func(*format.Final)
		seq       uint64 // 0: only check that it diverges
		field     string
		wantInMsg string
	}{
		{name: "insn rip", row: func(r *format.Row) {
			if r.Seq == insnSeq {
				r.RIP++
			}
		}, seq: insnSeq, field: "rip"},
		{name: "write value", row: func(r *format.Row) {
			if r.Seq == writeSeq {
				r.New ^= 0x10
			}
		}, seq: writeSeq, field: "new"},
		{name: "register value", row: func(r *format.Row) {
			if r.Seq == regSeq {
				r.Regs[regIdx] ^= 0x100
			}
		}, seq: regSeq, field: "reg_" + format.RegNames[regIdx]},
		{name: "register delta left out", row: func(r *format.Row) {
			if r.Seq == regSeq {
				r.RegMask &^= 1 << regIdx
			}
		}, seq: regSeq, field: "reg_" + format.RegNames[regIdx]},
		{name: "decision log", final: func(f *format.Final) {
			ds, err := emu.DecodeDecisions(f.Decisions)
			if err != nil {
				t.Fatal(err)
			}
			// Lengthen the 20th step decision: the CPUs interleave differently.
			for i, k := 0, 0; i < len(ds); i++ {
				if ds[i].Kind == emu.DecStep {
					if k == 20 {
						ds[i].N += 3
						break
					}
					k++
				}
			}
			f.Decisions = emu.EncodeDecisions(ds)
		}},
		{name: "outcome", final: func(f *format.Final) {
			// The run finished; a footer saying it ran out of budget
			// (or, the other way round, done for a budget run) is not
			// the recorded run.
			f.Outcome, f.OutcomeDetail = format.OutcomeBudget, "instruction budget exhausted"
		}, seq: 0, field: "outcome"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alt := rewrite(t, path, c.row, c.final)
			r, run := open(t, alt)
			n, div, err := run.Verify(r.Events())
			if err != nil {
				t.Fatal(err)
			}
			if div == nil {
				t.Fatalf("no divergence reported (%d events identical)", n)
			}
			t.Logf("%v", div)
			if c.field != "" && div.Field != c.field {
				t.Fatalf("divergence in field %s, want %s", div.Field, c.field)
			}
			if c.seq != 0 && (div.Seq != c.seq || div.Field != c.field) {
				t.Fatalf("divergence at seq %d field %s, want seq %d field %s", div.Seq, div.Field, c.seq, c.field)
			}
			if c.seq != 0 && n != c.seq {
				t.Fatalf("%d identical events before the divergence, want %d", n, c.seq)
			}
			if !strings.Contains(div.Error(), "expected") || div.Expected == div.Got {
				t.Fatalf("divergence does not show expected vs got: %v", div)
			}
		})
	}
}

// TestUntil checks the state at an event against the trace: each CPU's
// RIP is where its next instruction, trap or service event happens.
func TestUntil(t *testing.T) {
	path := recordSmall(t, 5)
	r, run := open(t, path)
	for _, seq := range []uint64{0, r.NumEvents() / 3, 2 * r.NumEvents() / 3, r.NumEvents() - 1} {
		st, err := run.Until(seq)
		if err != nil {
			t.Fatal(err)
		}
		if st.Events <= seq || len(st.CPUs) != run.Meta.CPUs {
			t.Fatalf("until %d: state after %d events, %d CPUs", seq, st.Events, len(st.CPUs))
		}
		next := map[uint16]uint64{}
		for row, err := range r.EventsFrom(st.Events) {
			if err != nil {
				t.Fatal(err)
			}
			switch row.Kind {
			case format.KindInsn, format.KindTrap, format.KindService:
				if _, ok := next[row.CPU]; !ok {
					next[row.CPU] = row.RIP
				}
			}
			if len(next) == len(st.CPUs) {
				break
			}
		}
		for cpu, rip := range next {
			if p := st.CPUs[cpu].Poking; p != "" {
				// Inside a byte-granular text_poke: its next events
				// are alias stores, then it returns to its caller.
				if !strings.HasPrefix(st.CPUs[cpu].Where, "text_poke") {
					t.Errorf("until %d: cpu%d %s but at %s", seq, cpu, p, st.CPUs[cpu].Where)
				}
				continue
			}
			if got := st.CPUs[cpu].Regs.RIP; got != rip {
				t.Errorf("until %d: cpu%d rip %#x, the trace's next event there is at %#x", seq, cpu, got, rip)
			}
		}
		if len(st.Sites) != 1 || st.Sites[0].Site != "traced_fn" || len(st.Sites[0].Bytes) != 5 {
			t.Errorf("until %d: must_call sites %+v", seq, st.Sites)
		}
		var b strings.Builder
		st.WriteText(&b)
		if !strings.Contains(b.String(), "must_call sites:") || !strings.Contains(b.String(), "cpu3") {
			t.Errorf("until %d: text output:\n%s", seq, b.String())
		}
	}
	if _, err := run.Until(r.NumEvents()); err == nil {
		t.Error("until past the last event: no error")
	}
}

// TestVerifyOutcomes: runs that did not finish verify as recorded, their
// outcome included: one stopped by its instruction budget, and one that
// replayed a decision log ending early (decisions-exhausted, as explore
// writes a minimised run).
func TestVerifyOutcomes(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	spec, err = explore.Prepare(spec, map[string]uint64{"patch_rounds": 1, "calls": 60, "dwell": 8}, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	full, err := record.Run(spec, filepath.Join(t.TempDir(), "full.arrow"), record.Options{Options: emu.Options{Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		opt     record.Options
		outcome string
	}{
		{"budget", record.Options{Options: emu.Options{Seed: 2, MaxInsns: 3000}}, format.OutcomeBudget},
		{"decisions-exhausted", record.Options{Options: emu.Options{Seed: 2}, Source: &emu.LogSource{Log: full.Decisions[:len(full.Decisions)/2]}}, format.OutcomeDecisions},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.arrow")
			if _, err := record.Run(spec, path, c.opt); err != nil {
				t.Fatal(err)
			}
			r, run := open(t, path)
			if r.Meta().Outcome != c.outcome {
				t.Fatalf("outcome %q, want %q", r.Meta().Outcome, c.outcome)
			}
			n, div, err := run.Verify(r.Events())
			if err != nil || div != nil {
				t.Fatalf("verify: %v %v", err, div)
			}
			if n != r.NumEvents() {
				t.Fatalf("verified %d of %d events", n, r.NumEvents())
			}
		})
	}
}

// TestExecuteOutcome: a plain re-execution (replay without --verify) says
// when the run ends otherwise than the trace's footer records.
func TestExecuteOutcome(t *testing.T) {
	path := recordSmall(t, 4)
	for _, c := range []struct {
		name string
		path string
		div  bool
	}{
		{"as recorded", path, false},
		{"footer says budget", rewrite(t, path, nil, func(f *format.Final) { f.Outcome = format.OutcomeBudget }), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, run := open(t, c.path)
			_, res, err := run.Execute(nil, -1)
			if err != nil {
				t.Fatal(err)
			}
			d := run.OutcomeDivergence(res)
			if (d != nil) != c.div || d != nil && (d.Field != "outcome" || d.Expected != format.OutcomeBudget || !strings.HasPrefix(d.Got, "done")) {
				t.Fatalf("divergence %v, want one: %v", d, c.div)
			}
		})
	}
}

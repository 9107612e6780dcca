package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/replay/rerun"
)

const replayAbout = "Re-executes the run recorded in FILE from the trace alone: its scenario text, slice\n" +
	"ELF, CPU count and decision log rebuild the machine and feed it the same decisions.\n" +
	"--verify turns every re-executed event into a row and compares it with the trace's,\n" +
	"in lockstep, and reports the first divergence (sequence number, cpu, kind, column:\n" +
	"expected vs got; or the run's outcome when the footer records another one) or\n" +
	"\"verified: N events identical\" (registers included when the trace records them).\n" +
	"--until SEQ prints the machine state right after event SEQ: per CPU its task, trap\n" +
	"depth, registers and next rip, the top of each stack with return addresses as\n" +
	"symbol+offset, the bytes at each must_call site and the per-CPU return slots\n" +
	"(--json for JSON). It reads them from the trace alone (memory from the slice image\n" +
	"and the stores, registers from the register deltas of format version 4), seeking\n" +
	"by batch, without re-executing; a trace that records no registers (older versions,\n" +
	"record --no-regs) is re-executed up to the step that emits event SEQ instead.\n" +
	"Without --verify or --until it re-executes the run and says how it stopped, a\n" +
	"divergence when the trace's footer records another outcome.\n" +
	"Every mode reads the trace's batches: a damaged batch is an error naming it (exit\n" +
	"status 2), after the --until state; a cut file is read up to its last complete batch.\n" +
	"Exit status: 0 replayed (and verified), 1 divergence, 2 error."

func cmdReplay(env *cmdEnv, args []string) int {
	fs := newFlags(env, "replay")
	verify := fs.Bool("verify", false, "compare every re-executed event with the trace")
	until := fs.Int64("until", -1, "stop after the step that emits event SEQ and print the machine state")
	asJSON := fs.Bool("json", false, "print the --until state as JSON")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	switch {
	case len(pos) == 0:
		return usageErr(env, fs, "replay: no trace FILE given")
	case len(pos) > 1:
		return usageErr(env, fs, "replay: one trace FILE at a time (got %s)", strings.Join(pos, " "))
	case *until < -1:
		return usageErr(env, fs, "replay: --until %d: must be an event sequence number (0 or more)", *until)
	}
	path := pos[0]
	r, err := format.Open(path)
	if err != nil {
		return errorf(env, "replay: %v", err)
	}
	defer r.Close()
	if *until >= 0 && !*verify && r.Meta().Regs {
		// The trace records registers: the state is read from it.
		if code := replayUntil(env, r, path, uint64(*until), *asJSON); code != exitOK {
			return code
		}
		return checkBatches(env, r, path)
	}
	if !*verify && *until < 0 {
		// The re-execution reads only the footer's decision log: a
		// damaged batch would go unseen, and "replayed" would vouch for
		// a file that is not whole.
		if code := checkBatches(env, r, path); code != exitOK {
			return code
		}
	}
	run, err := rerun.FromMeta(r.Meta())
	if err != nil {
		return errorf(env, "replay %s: %v", path, err)
	}
	status := exitOK
	switch {
	case *verify:
		start := time.Now()
		n, div, err := run.Verify(r.Events())
		if err != nil {
			return errorf(env, "replay %s: %v", path, err)
		}
		if div != nil {
			fmt.Fprintf(env.stdout, "%s: %v (after %d identical events)\n", path, div, n)
			status = exitFinding
		} else {
			fmt.Fprintf(env.stdout, "verified: %d events identical (%d decisions, %.2fs)\n", n, len(run.Decisions), time.Since(start).Seconds())
		}
	case *until < 0:
		start := time.Now()
		_, res, err := run.Execute(nil, -1)
		if err != nil {
			return errorf(env, "replay %s: %v", path, err)
		}
		fmt.Fprintf(env.stdout, "replayed %s: %d decisions, %d instructions, stopped: %s (%s), %.2fs\n",
			path, len(res.Decisions), res.Insns, res.Stop, res.Msg, time.Since(start).Seconds())
		if div := run.OutcomeDivergence(res); div != nil {
			fmt.Fprintf(env.stdout, "%s: %v\n", path, div)
			status = exitFinding
		}
	}
	if *until >= 0 {
		if r.Meta().Regs {
			return replayUntil(env, r, path, uint64(*until), *asJSON)
		}
		fmt.Fprintf(env.stderr, "patchtrace: replay: %s records no registers (format version %d%s): re-executing the run up to event %d\n",
			path, r.Meta().Version, map[bool]string{true: ", recorded with --no-regs"}[r.Meta().Version >= 4], *until)
		st, err := run.Until(uint64(*until))
		if err != nil {
			return errorf(env, "replay %s: %v", path, err)
		}
		if code := printUntil(env, st, *asJSON); code != exitOK {
			return code
		}
		if code := checkBatches(env, r, path); code != exitOK {
			return code
		}
	}
	return status
}

// checkBatches reads every batch of r (their checksums, shapes and
// sequence numbers; every column when the file has no checksums to cover
// the ones not decoded) and reports the first damage, naming the batch:
// exit 2. A cut file is read up to its last complete batch (the cut is
// not damage: what replay reports does not depend on what is past it).
func checkBatches(env *cmdEnv, r *format.Reader, path string) int {
	proj := format.Projection{Columns: []int{}}
	if !r.Verified() {
		proj = format.AllColumns
	}
	for _, err := range r.Scan(proj) {
		if err != nil {
			return errorf(env, "replay %s: %v", path, err)
		}
	}
	return exitOK
}

// replayUntil prints the state after event seq, reconstructed from the
// trace with a replay.Cursor (no re-execution).
func replayUntil(env *cmdEnv, r *format.Reader, path string, seq uint64, asJSON bool) int {
	c, err := replay.NewCursor(r, nil)
	if err != nil {
		return errorf(env, "replay %s: %v", path, err)
	}
	defer c.Close()
	if err := c.Seek(seq); err != nil {
		return errorf(env, "replay %s: %v", path, err)
	}
	if row, _ := c.Row(); row.Seq != seq {
		why := ""
		if r.Truncated() {
			why = " (" + r.TruncatedError().Error() + ")"
		}
		if row.Seq < seq {
			return errorf(env, "replay %s: the trace's last readable event is %d; there is no event %d%s", path, row.Seq, seq, why)
		}
		return errorf(env, "replay %s: the trace has no event %d", path, seq)
	}
	st, err := rerun.FromCursor(c)
	if err != nil {
		return errorf(env, "replay %s: %v", path, err)
	}
	return printUntil(env, st, asJSON)
}

func printUntil(env *cmdEnv, st *rerun.State, asJSON bool) int {
	if asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return errorf(env, "replay: %v", err)
		}
		return exitOK
	}
	if err := st.WriteText(env.stdout); err != nil {
		return errorf(env, "replay: %v", err)
	}
	return exitOK
}

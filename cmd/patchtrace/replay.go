package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay/rerun"
)

const replayAbout = "Re-executes the run recorded in FILE from the trace alone: its scenario text, slice\n" +
	"ELF, CPU count and decision log rebuild the machine and feed it the same decisions.\n" +
	"--verify turns every re-executed event into a row and compares it with the trace's,\n" +
	"in lockstep, and reports the first divergence (sequence number, cpu, kind, column:\n" +
	"expected vs got; or the run's outcome when the footer records another one) or\n" +
	"\"verified: N events identical\". --until SEQ stops after the step\n" +
	"that emits event SEQ and prints the machine state: registers per CPU, the top of each\n" +
	"stack with return addresses as symbol+offset, the bytes at each must_call site and\n" +
	"the per-CPU return slots (--json for JSON).\n" +
	"Without --verify or --until it re-executes the run and says how it stopped, a\n" +
	"divergence when the trace's footer records another outcome.\n" +
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
		st, err := run.Until(uint64(*until))
		if err != nil {
			return errorf(env, "replay %s: %v", path, err)
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				return errorf(env, "replay: %v", err)
			}
		} else {
			st.WriteText(env.stdout)
		}
	}
	return status
}

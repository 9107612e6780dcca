package main

import (
	"strings"
	"testing"
)

// TestRunReportCounters: run prints the per-CPU counters a scenario lists
// under [report] (any name, in the listed order); without [report] it
// prints the variables named *_calls, *_count, *_ticks; a name that is not
// an 8-byte per-CPU variable is a clear error before anything runs (issue
// 12 item 5).
func TestRunReportCounters(t *testing.T) {
	const id = "text-poke-bp"
	section := func(out string) string {
		_, after, _ := strings.Cut(out, "per-CPU counters:\n")
		return after
	}
	names := func(sec string) []string {
		var out []string
		for _, ln := range strings.Split(strings.TrimSpace(sec), "\n") {
			if f := strings.Fields(ln); len(f) > 0 {
				out = append(out, f[0])
			}
		}
		return out
	}
	code, out, errs := runCLI(t, "run", id)
	if code != exitOK {
		t.Fatalf("run: exit %d: %s", code, errs)
	}
	if got := strings.Join(names(section(out)), " "); got != "timer_ticks nmi_count handler_calls traced_calls" {
		t.Errorf("default counters %q", got)
	}
	add := func(report string) func(string) string {
		return func(s string) string { return s + "\n[report]\n" + report + "\n" }
	}
	dir := scenarioDir(t, id, add(`counters = ["caller_sum", "traced_calls"]`))
	code, out, errs = runCLI(t, "run", dir)
	if code != exitOK {
		t.Fatalf("run: exit %d: %s", code, errs)
	}
	sec := section(out)
	if got := strings.Join(names(sec), " "); got != "caller_sum traced_calls" {
		t.Errorf("[report] counters %q, want caller_sum traced_calls:\n%s", got, out)
	}
	if !strings.Contains(sec, "traced_calls  cpu0=0 cpu1=3500") {
		t.Errorf("traced_calls values missing:\n%s", sec)
	}
	for _, tc := range []struct{ report, want string }{
		{`counters = ["no_such_var"]`, `report.counters: "no_such_var": no such symbol in the slice`},
		{`counters = ["patcher_main"]`, `report.counters: "patcher_main": not a per-CPU variable`},
		{`counters = ["traced_calls", "traced_calls"]`, `report.counters: "traced_calls" listed twice`},
		{`counters = ["a b"]`, `report.counters: "a b": not a symbol name`},
		{`cuonters = ["traced_calls"]`, `cuonters`},
	} {
		t.Run(tc.report, func(t *testing.T) {
			code, out, errs := runCLI(t, "run", scenarioDir(t, id, add(tc.report)))
			if code != exitError || !strings.Contains(errs, tc.want) || out != "" {
				t.Errorf("exit %d, want %d and %q; stdout %q stderr %q", code, exitError, tc.want, out, errs)
			}
		})
	}
}

// TestRunPanicPlace: a panic names the place the oops path named
// (pt_marker(0xffff, regs->ip) in die()), not the panic() stub it runs in:
// an int3 nobody claimed is "int3 at X claimed by no handler" (issue 12
// item 5; it said "unhandled int3 at panic called from die+0x1d").
func TestRunPanicPlace(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"text-poke-bp-early-clear", "panic: int3 at traced_fn claimed by no handler (unhandled int3, from die+0x1d)"},
		{"int3-emulate-call-nogap", "panic: #GP at asm_exc_int3+0x41: general protection fault (from die+0x1d)"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			code, out, errs := runCLI(t, "run", tc.id)
			if code != exitFinding || !strings.Contains(out, tc.want) || strings.Contains(out+errs, " at panic") {
				t.Errorf("exit %d, want %d and %q:\n%s%s", code, exitFinding, tc.want, out, errs)
			}
		})
	}
}

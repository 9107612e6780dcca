package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRegsNotCheckedWithoutDeltas: a scenario whose contract declares
// preserved registers, recorded with --no-regs, cannot be judged by the
// regs analyzer: analyze and check exit 2 and say so, and never call it
// clean; recorded with the deltas, the same scenario's clobber is found.
func TestRegsNotCheckedWithoutDeltas(t *testing.T) {
	dir := t.TempDir()
	bare, full := filepath.Join(dir, "bare.arrow"), filepath.Join(dir, "full.arrow")
	if code, _, errs := runCLI(t, "record", "int3-selftest-kasan", "--no-regs", "-o", bare); code != exitOK {
		t.Fatalf("record --no-regs: exit %d: %s", code, errs)
	}
	code, out, errs := runCLI(t, "analyze", bare, "--only", "regs")
	if code != exitError || !strings.Contains(out+errs, "regs could not check: the trace records no register deltas") || strings.Contains(out, "clean") {
		t.Fatalf("analyze a --no-regs trace: exit %d, want %d and regs not checked:\n%s%s", code, exitError, out, errs)
	}
	code, out, errs = runCLI(t, "check", "int3-selftest", "--no-regs", "--seeds", "1")
	if code == exitOK || !strings.Contains(out, "incomplete") || !strings.Contains(out, "regs could not check") {
		t.Fatalf("check --no-regs: exit %d, want a failure naming regs:\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, "record", "int3-selftest-kasan", "-o", full); code != exitOK {
		t.Fatalf("record: exit %d: %s", code, errs)
	}
	code, out, errs = runCLI(t, "analyze", full, "--only", "regs")
	if code != exitFinding || !strings.Contains(out, "error regs:") || !strings.Contains(out, "registers the compiler assumes the site preserves were clobbered") {
		t.Fatalf("analyze the same run with deltas: exit %d, want %d and the regs finding:\n%s%s", code, exitFinding, out, errs)
	}
}

// TestCheckNoLoadsSaysLifetimeIsPartial: without load rows lifetime
// judges only stores and fetches; each result warns, and check's table,
// which shows no warnings, says so under a pass (it printed a bare ok).
func TestCheckNoLoadsSaysLifetimeIsPartial(t *testing.T) {
	code, out, errs := runCLI(t, "check", "jl-modinit", "--no-loads", "-q")
	if code != exitOK || !strings.Contains(out, "note: --no-loads: lifetime judged only stores and instruction fetches") {
		t.Fatalf("check --no-loads: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "check", "jl-modinit", "-q"); code != exitOK || strings.Contains(out, "note: --no-loads") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errs)
	}
}

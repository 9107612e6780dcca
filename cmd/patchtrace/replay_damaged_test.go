package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayDamaged: replay reads the trace's batches in every mode, so a
// byte flipped inside a batch is an error naming the batch (exit 2), not
// "replayed" with status 0: without --verify the re-execution reads only
// the footer's decision log, and --until reads the batches up to its
// event only.
func TestReplayDamaged(t *testing.T) {
	dir := t.TempDir()
	for _, regs := range []bool{true, false} {
		trace := filepath.Join(dir, "t.arrow")
		args := []string{"record", "text-poke-bp-nosync", "-o", trace, "--force", "--batch-rows", "4096"}
		if !regs {
			args = append(args, "--no-regs")
		}
		if code, _, errs := runCLI(t, args...); code != exitOK {
			t.Fatalf("record: %s", errs)
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x55
		bad := filepath.Join(dir, "bad.arrow")
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range [][]string{nil, {"--verify"}, {"--until", "100"}} {
			code, out, errs := runCLI(t, append([]string{"replay", bad}, mode...)...)
			if code != exitError || !strings.Contains(errs, "batch ") || !strings.Contains(errs, "damaged") || strings.Contains(out, "replayed") {
				t.Errorf("regs %v: replay %v of a damaged trace: exit %d, stdout %q, stderr %q", regs, mode, code, out, errs)
			}
		}
		// The whole file replays cleanly in every mode.
		for _, mode := range [][]string{nil, {"--until", "100"}} {
			if code, _, errs := runCLI(t, append([]string{"replay", trace}, mode...)...); code != exitOK {
				t.Errorf("regs %v: replay %v: exit %d %s", regs, mode, code, errs)
			}
		}
	}
}

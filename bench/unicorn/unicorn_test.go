package unicorn_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestUnicornAgrees builds the harness and runs the bench-fentry guest on
// libunicorn in both modes, for an even and an odd iteration count: it
// must reach bench_main's return with the per-CPU slot and result that
// patchtrace's own run of the same slice ELF leaves, and Unicorn's extra
// instructions for the extra iterations must equal patchtrace's. An
// independent check of our semantics (and of the harness the comparison
// benchmark, compare.sh, times). Skips, saying what to install, when gcc
// or libunicorn-dev is missing.
func TestUnicornAgrees(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ucbench")
	var stderr bytes.Buffer
	build := exec.Command("./build.sh", bin)
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			t.Skipf("no Unicorn to compare with: %s", strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("build.sh: %v\n%s", err, stderr.String())
	}
	spec, err := scenario.Load(scenarios.FS, "bench-fentry")
	if err != nil {
		t.Fatal(err)
	}
	elf := filepath.Join("..", "..", "scenarios", "bench-fentry", spec.Slice)

	type run struct{ insns, slot, result uint64 }
	ours := map[uint64]run{}
	theirs := map[string]map[uint64]run{}
	iters := []uint64{1000, 2001}
	for _, n := range iters {
		spec.Params = map[string]uint64{"bench_iters": n}
		m, src, err := emu.Setup(spec, emu.Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		res := m.Run(src)
		if res.Stop != emu.StopDone {
			t.Fatalf("patchtrace, %d iterations: stop %v %s", n, res.Stop, res.Msg)
		}
		var r run
		r.insns = res.Insns
		for name, p := range map[string]*uint64{"bench_slot": &r.slot, "bench_result": &r.result} {
			v, ok := m.PercpuU64(0, name)
			if !ok {
				t.Fatalf("patchtrace: no per-CPU %s", name)
			}
			*p = v
		}
		ours[n] = r
		for _, mode := range []string{"nohook", "trace+memw"} {
			var out, errb bytes.Buffer
			c := exec.Command(bin, elf, strconv.FormatUint(n, 10), mode)
			c.Stdout, c.Stderr = &out, &errb
			if err := c.Run(); err != nil {
				t.Fatalf("ucbench %d %s: %v\n%s", n, mode, err, errb.String())
			}
			// unicorn MODE INSNS SECONDS MINSTR CPU_SECONDS CPU_MINSTR SLOT RESULT
			f := strings.Fields(out.String())
			if len(f) != 9 || f[0] != "unicorn" || f[1] != mode {
				t.Fatalf("ucbench %d %s printed %q", n, mode, out.String())
			}
			var u run
			for i, p := range map[int]*uint64{2: &u.insns, 7: &u.slot, 8: &u.result} {
				if *p, err = strconv.ParseUint(f[i], 10, 64); err != nil {
					t.Fatalf("ucbench %d %s: field %d: %v", n, mode, i, err)
				}
			}
			if u.slot != r.slot || u.result != r.result {
				t.Errorf("%d iterations, %s: Unicorn ends with bench_slot %d, bench_result %#x; patchtrace with %d, %#x",
					n, mode, u.slot, u.result, r.slot, r.result)
			}
			if theirs[mode] == nil {
				theirs[mode] = map[uint64]run{}
			}
			theirs[mode][n] = u
		}
	}
	a, b := iters[0], iters[1]
	for mode, u := range theirs {
		if d, want := u[b].insns-u[a].insns, ours[b].insns-ours[a].insns; d != want {
			t.Errorf("%s: %d more iterations take Unicorn %d more instructions, patchtrace %d", mode, b-a, d, want)
		}
	}
	t.Logf("bench_result %#x after %d iterations on both", ours[b].result, b)
}

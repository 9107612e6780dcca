package scenarios_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestInjectAtFileLine: exc-tramp's timer injection is written as
// "tramp.S:LINE" (issue 12 item 3), where LINE is, in the source, the
// trampoline's popq %rax after its switch to regs->sp - 24; the rule
// resolves to an instruction whose bytes are that popq (58) right after
// that movq (48 8b 24 24), and the interrupt is raised there, on its CPU.
func TestInjectAtFileLine(t *testing.T) {
	src, err := fs.ReadFile(scenarios.FS, "lib/exc-tramp/tramp.S")
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	lines := strings.Split(string(src), "\n")
	for i := 1; i < len(lines); i++ {
		if strings.HasPrefix(strings.TrimSpace(lines[i-1]), "movq\t(%rsp), %rsp") && strings.TrimSpace(lines[i]) == "popq\t%rax" {
			line = i + 1
		}
	}
	if line == 0 {
		t.Fatal("lib/exc-tramp/tramp.S: no movq (%rsp), %rsp; popq %rax")
	}
	spec := testkit.Load(t, "exc-tramp", map[string]uint64{"calls": 40})
	want := fmt.Sprintf("tramp.S:%d", line)
	if len(spec.Inject) == 0 || spec.Inject[0].At != want {
		t.Fatalf("exc-tramp's first injection is not at %q (the source moved? update scenario.toml): %+v", want, spec.Inject)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	at, err := img.Resolve(want)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bytes(at-4, 5); !bytes.Equal(b, []byte{0x48, 0x8b, 0x24, 0x24, 0x58}) {
		t.Fatalf("%s resolves to %s (%#x), bytes before and at it % x: not movq (%%rsp), %%rsp; popq %%rax", want, img.Describe(at), at, b)
	}
	if got := img.Line(at); got != "lib/exc-tramp/tramp.S:"+fmt.Sprint(line) {
		t.Errorf("Line(%#x) = %q, want lib/exc-tramp/tramp.S:%d", at, got, line)
	}
	rule := spec.Inject[0]
	raised := 0
	sink := sinkFunc(func(e *emu.Event) {
		if e.Kind == emu.EvInject && e.Addr == uint64(rule.CPU) && int(e.CPU) == rule.CPU && e.RIP == at {
			raised++
		}
	})
	m, rs, err := emu.SetupImage(spec, img, emu.Options{Seed: 1, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if res := m.Run(rs); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !m.InjectFired()[0] || raised == 0 {
		t.Errorf("the %s rule did not raise its interrupt at %#x on cpu%d (fired %v, %d inject events there)", want, at, rule.CPU, m.InjectFired()[0], raised)
	}
}

package check

import (
	"testing"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestJudgeTemplateReused: judges of one Meta share one start state (built
// once), and a Meta whose contents were replaced gets a new one.
func TestJudgeTemplateReused(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	t1, err := templateFor(&md)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := templateFor(&md)
	if err != nil {
		t.Fatal(err)
	}
	if t1 != t2 {
		t.Error("a second judge of the same Meta built its start state again")
	}
	md.ScenarioText += "\n# changed\n"
	t3, err := templateFor(&md)
	if err != nil {
		t.Fatal(err)
	}
	if t3 == t1 {
		t.Error("a Meta with another scenario text reused the old start state")
	}
}

package format

import (
	"bytes"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/scenario"
)

// TestScenarioIDRule: the format checks a trace's scenario id by the
// scenario package's rule.
func TestScenarioIDRule(t *testing.T) {
	if scenarioID.String() != scenario.IDPattern || scenarioIDMax != scenario.MaxIDLen {
		t.Fatalf("format checks ids with %q (at most %d bytes), the scenario package with %q (%d)",
			scenarioID, scenarioIDMax, scenario.IDPattern, scenario.MaxIDLen)
	}
}

// TestHostileScenarioID: a trace whose scenario id carries a terminal
// escape and a newline is refused, naming the key; the writer does not
// write one.
func TestHostileScenarioID(t *testing.T) {
	md := fixtureMeta()
	md.Scenario = "ID0123456789"
	var buf bytes.Buffer
	w, err := NewWriter(&buf, md, WithBatchRows(4))
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range loopRows(8) {
		if err := w.Append(&row); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	w.SetFinal(fixtureFinal())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A file cut before its footer (no checksums) with the id in its
	// header replaced by one of the same length.
	data := cutBeforeFooter(t, buf.Bytes())
	evil := "x\x1b[2J\nclean!"
	if bytes.Count(data, []byte(md.Scenario)) != 1 || len(evil) != len(md.Scenario) {
		t.Fatal("the test's id is not once in the header")
	}
	data = bytes.Replace(data, []byte(md.Scenario), []byte(evil), 1)
	_, err = NewReader(bytes.NewReader(data), int64(len(data)))
	if err == nil || !strings.Contains(err.Error(), KeyScenario) || !strings.Contains(err.Error(), `"x\x1b[2J\nclean!"`) {
		t.Errorf("a hostile scenario id: %v", err)
	}
	if r, err := NewReader(bytes.NewReader(cutBeforeFooter(t, buf.Bytes())), int64(len(data))); err != nil || r.Meta().Scenario != md.Scenario {
		t.Errorf("the same file with a valid id: %v", err)
	}
	for _, id := range []string{evil, "../x", ".hidden", strings.Repeat("a", 65)} {
		md.Scenario = id
		if _, err := NewWriter(&bytes.Buffer{}, md); err == nil || !strings.Contains(err.Error(), KeyScenario) {
			t.Errorf("writer with scenario id %q: %v", id, err)
		}
	}
}

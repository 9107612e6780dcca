package analyze_test

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// TestJUnitTimes: every JUnit testsuite and testcase carries a time in
// seconds; the "run" case's is the whole pass, the analyzers' their share.
// (Only that they are there and positive: wall-clock values are not
// asserted.)
func TestJUnitTimes(t *testing.T) {
	spec := testkit.Load(t, "ftrace-int3-skip", nil)
	res := analyzeRun(t, spec, emu.Options{Seed: 1})
	var b bytes.Buffer
	if err := analyze.WriteJUnit(&b, []*analyze.Result{res}); err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Time  *string `xml:"time,attr"`
			Cases []struct {
				Name string  `xml:"name,attr"`
				Time *string `xml:"time,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	if len(suites.Suites) != 1 || suites.Suites[0].Time == nil {
		t.Fatalf("testsuite without time:\n%s", b.Bytes())
	}
	var run, analyzers float64
	for _, c := range suites.Suites[0].Cases {
		if c.Time == nil {
			t.Errorf("testcase %s has no time", c.Name)
			continue
		}
		v, err := strconv.ParseFloat(*c.Time, 64)
		if err != nil || v < 0 {
			t.Errorf("testcase %s: time %q", c.Name, *c.Time)
		}
		if c.Name == "run" {
			run = v
		} else {
			analyzers += v
		}
	}
	if run <= 0 || analyzers <= 0 {
		t.Errorf("run %gs, analyzers %gs: want both > 0", run, analyzers)
	}
}

// Package testkit holds the helpers the module's tests share, so that each
// is written once: a built-in scenario loaded with its parameters changed,
// the seed of a randomized test from TEST_SEED, injection rules moved
// across a window seed by seed, and loop counts shrunk for sweeps over many
// seeds, a trace rewritten through the format's writer. It imports no
// machine (emu's own tests use it).
package testkit

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// Load returns the built-in scenario id with params changing its
// parameters (a copy: the loaded spec's map is not shared). A parameter
// the scenario does not declare fails the test: a typo would otherwise
// test the default.
func Load(t testing.TB, id string, params map[string]uint64) *scenario.Spec {
	t.Helper()
	s, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatalf("built-in scenario %s: %v", id, err)
	}
	SetParams(t, s, params)
	return s
}

// SetParams changes spec's parameters to params, in a new map (a copy of
// a spec does not share the change). A parameter the scenario does not
// declare fails the test.
func SetParams(t testing.TB, spec *scenario.Spec, params map[string]uint64) {
	t.Helper()
	p := make(map[string]uint64, len(spec.Params))
	for k, v := range spec.Params {
		p[k] = v
	}
	for k, v := range params {
		if _, ok := p[k]; !ok {
			t.Fatalf("%s: no param %q", spec.ID, k)
		}
		p[k] = v
	}
	spec.Params = p
}

// Seed returns the seed of a randomized test: TEST_SEED when set, else the
// clock. It is logged, so a failure can be replayed with TEST_SEED.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("TEST_SEED=%q: %v", s, err)
		}
		t.Logf("TEST_SEED=%d (from the environment)", v)
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("TEST_SEED=%d (rerun with TEST_SEED=%d)", v, v)
	return v
}

// Shrink scales spec's loop counts down so that many seeds run fast: rounds
// to at most 20, calls and iterations to at most 400. The map is replaced,
// not changed in place.
func Shrink(spec *scenario.Spec) {
	p := make(map[string]uint64, len(spec.Params))
	for k, v := range spec.Params {
		switch {
		case strings.Contains(k, "round") && v > 20:
			v = 20
		case (k == "calls" || strings.HasSuffix(k, "_calls") || strings.HasSuffix(k, "iters")) && v > 400:
			v = 400
		}
		p[k] = v
	}
	spec.Params = p
}

// MoveInjections rewrites spec's injection rules (from base) for seed i so
// that over the seeds every rule visits the points ("sym+off"), rules
// spread apart, with the arrival count (Hit) cycling through 1..4.
func MoveInjections(spec *scenario.Spec, base []scenario.Inject, points []string, i int) {
	spec.Inject = append([]scenario.Inject(nil), base...)
	for k := range spec.Inject {
		spec.Inject[k].At = points[(i*(2*k+1)+k*len(points)/2)%len(points)]
		spec.Inject[k].Hit = uint64(1 + (i+k)%4)
	}
}

// RewriteTrace copies the trace at in to out through the format's own
// writer (checksums and footer as a recording writes them), its metadata
// changed by edit (nil: kept) and only the rows keep accepts (nil: all):
// the way a test forges a well-formed trace that says something its rows
// do not, or leaves out rows no footer declares lost.
func RewriteTrace(t testing.TB, in, out string, edit func(*format.Meta), keep func(*format.Row) bool) {
	t.Helper()
	r, err := format.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := *r.Meta()
	if edit != nil {
		edit(&md)
	}
	w, err := format.CreateFile(out, md, false)
	if err != nil {
		t.Fatal(err)
	}
	for row, err := range r.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if keep != nil && !keep(row) {
			continue
		}
		if err := w.Append(row); err != nil {
			t.Fatal(err)
		}
	}
	w.SetFinal(md.Final)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

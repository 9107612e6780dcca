package testkit

import (
	"testing"

	"github.com/patchtrace/patchtrace/scenario"
)

func TestLoadParams(t *testing.T) {
	s := Load(t, "text-poke-bp", map[string]uint64{"calls": 7})
	if s.Params["calls"] != 7 {
		t.Errorf("calls = %d, want 7", s.Params["calls"])
	}
	if d := Load(t, "text-poke-bp", nil); d.Params["calls"] == 7 {
		t.Errorf("the change leaked into the next load: calls = %d", d.Params["calls"])
	}
}

func TestSeedFromEnv(t *testing.T) {
	t.Setenv("TEST_SEED", "0x2a")
	if got := Seed(t); got != 42 {
		t.Errorf("Seed = %d, want 42", got)
	}
}

func TestShrink(t *testing.T) {
	orig := map[string]uint64{"patch_rounds": 100, "calls": 5000, "lp_iters": 9000, "dwell": 1000, "rounds": 3}
	s := &scenario.Spec{Params: orig}
	Shrink(s)
	want := map[string]uint64{"patch_rounds": 20, "calls": 400, "lp_iters": 400, "dwell": 1000, "rounds": 3}
	for k, v := range want {
		if s.Params[k] != v {
			t.Errorf("%s = %d, want %d", k, s.Params[k], v)
		}
	}
	if orig["calls"] != 5000 {
		t.Errorf("Shrink changed the caller's map")
	}
}

func TestMoveInjections(t *testing.T) {
	base := []scenario.Inject{{Kind: "nmi", CPU: 1, At: "x"}, {Kind: "timer", CPU: 2, At: "y"}}
	points := []string{"f+0x0", "f+0x1", "f+0x4", "f+0x8"}
	seen := map[string]bool{}
	s := &scenario.Spec{}
	for i := 0; i < 8; i++ {
		MoveInjections(s, base, points, i)
		if len(s.Inject) != 2 || s.Inject[0].Kind != "nmi" || s.Inject[1].CPU != 2 {
			t.Fatalf("seed %d: rules %+v", i, s.Inject)
		}
		if s.Inject[0].Hit < 1 || s.Inject[0].Hit > 4 {
			t.Errorf("seed %d: hit %d", i, s.Inject[0].Hit)
		}
		seen[s.Inject[0].At] = true
	}
	if len(seen) != len(points) || base[0].At != "x" {
		t.Errorf("the first rule visited %v of %v; base %+v", seen, points, base)
	}
}

func TestSetParamsCopies(t *testing.T) {
	a := &scenario.Spec{ID: "x", Params: map[string]uint64{"rounds": 100, "calls": 5}}
	b := *a
	SetParams(t, &b, map[string]uint64{"rounds": 10})
	if b.Params["rounds"] != 10 || b.Params["calls"] != 5 || a.Params["rounds"] != 100 {
		t.Errorf("copy %v, original %v", b.Params, a.Params)
	}
}

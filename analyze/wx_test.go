package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/replay"
)

// TestWXStores: a store that reaches an executable page other than through
// the text-poke alias is a finding; the same store through the alias, or a
// plain store to a data page, is not.
func TestWXStores(t *testing.T) {
	for _, tc := range []struct {
		name    string
		target  string // symbol stored to
		size    uint32
		alias   bool
		finding bool
	}{
		{"into text, directly", "traced_fn", 1, false, true},
		{"into text, 8 bytes directly", "traced_fn", 8, false, true},
		{"into text, through the alias", "traced_fn", 1, true, false},
		{"into data", "patch_rounds", 8, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "wx")
			c := ctx{cpu: 0, task: 1}
			f.write(c, f.sym("patcher_main", 0), f.sym(tc.target, 0), tc.size, 0xcc, tc.alias)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "not through the text-poke alias") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestWXExecution: an instruction fetched from a writable page is a
// finding, whether the page was writable in the image or became so; one
// from a page that is executable and not writable is not.
func TestWXExecution(t *testing.T) {
	const page = slice.ModuleBase // a module_alloc page
	for _, tc := range []struct {
		name    string
		perm    uint8 // the module page's permissions (0: not used)
		rip     func(f *feed) uint64
		finding bool
	}{
		{"kernel text", 0, func(f *feed) uint64 { return f.sym("traced_fn", 0) }, false},
		{"a data page of the image", 0, func(f *feed) uint64 { return f.sym("patch_rounds", 0) }, true},
		{"a module page made r-x", replay.PermR | replay.PermX, func(*feed) uint64 { return page + 0x10 }, false},
		{"a module page left rw-", replay.PermR | replay.PermW, func(*feed) uint64 { return page + 0x10 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "wx")
			c := ctx{cpu: 2, task: 3}
			if tc.perm != 0 {
				f.perm(c, page, 1, 0, tc.perm)
			}
			f.insn(c, tc.rip(f), "NOP", 0xffffffff81111f00)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "(writable)") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

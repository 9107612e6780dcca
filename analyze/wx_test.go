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

// TestWXBoot: with contract.boot_until_marker (dyn-tramp-boot: marker 3),
// what early boot does before the marker is not a finding (a page made
// rwx, a direct store to it, execution from it); a page still writable
// and executable at the marker is, once, as the kernel's W+X check at
// mark_rodata_ro() reports it; after the marker all three rules hold
// again.
func TestWXBoot(t *testing.T) {
	const page = slice.ModuleBase // a module_alloc page
	rw, rwx, rx := replay.PermR|replay.PermW, replay.PermR|replay.PermW|replay.PermX, replay.PermR|replay.PermX
	for _, tc := range []struct {
		name     string
		roAtBoot bool   // set_memory_ro before the marker
		after    string // what happens after the marker
		want     []string
	}{
		{"made read-only before the end of boot", true, "", nil},
		{"still rwx at the end of boot", false, "", []string{"still rwx at the end of boot"}},
		{"a direct store after boot", true, "store", []string{"not through the text-poke alias"}},
		{"made rwx after boot", true, "rwx", []string{"writable and executable at once", "(writable)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "dyn-tramp-boot", "wx")
			c := ctx{cpu: 0, task: 1}
			f.perm(c, page, 1, 0, rw)
			f.perm(c, page, 1, rw, rwx)
			f.insn(c, page+0x10, "NOP", 0xffffffff81111f00)
			f.write(c, f.sym("memcpy", 6), page+0x30, 1, 0x30, false)
			if tc.roAtBoot {
				f.perm(c, page, 1, rwx, rx)
			}
			f.marker(c, 3, 0)
			switch tc.after {
			case "store":
				f.write(c, f.sym("memcpy", 6), page+0x30, 1, 0x30, false)
			case "rwx":
				f.perm(c, page, 1, rx, rwx)
				f.insn(c, page+0x10, "NOP", 0xffffffff81111f00)
			}
			res := f.finish()
			if len(res.Findings) != len(tc.want) {
				t.Fatalf("%d findings, want %d %q:\n%s", len(res.Findings), len(tc.want), tc.want, summary(res))
			}
			for i, w := range tc.want {
				if !strings.Contains(res.Findings[i].Message, w) {
					t.Errorf("finding %d: %q, want it to say %q", i, res.Findings[i].Message, w)
				}
			}
		})
	}
}

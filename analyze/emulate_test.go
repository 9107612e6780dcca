package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// TestTrapEmulatedBranch feeds hand-made events over kprobe-jcc's slice,
// whose probed_fn+3 is a jle (0f 8e rel32): a kprobe's int3 over its first
// byte, a #BP with the saved flags, and the IRETQ that resumes the context.
// Resuming where the flags send the jle is fine; the other of its two
// places is an emulation that went the wrong way (Linux's JNG/JNLE
// emulation before commit 8924779df820); anywhere else (an out-of-line
// slot, a redirect) is not judged, nor is an int3 over an instruction
// being replaced (its other bytes no longer as built).
func TestTrapEmulatedBranch(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "kprobe-jcc")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := img.Lookup("probed_fn")
	stack, ok := img.Lookup("task_stacks")
	if !ok {
		t.Fatal("no task_stacks in kprobe-jcc's slice")
	}
	site := fn.Addr + 3
	built := img.Bytes(site, 6)
	if len(built) != 6 || built[0] != 0x0f || built[1] != 0x8e {
		t.Fatalf("probed_fn+3 holds % x, not jle rel32", built)
	}
	rel := int32(uint32(built[2]) | uint32(built[3])<<8 | uint32(built[4])<<16 | uint32(built[5])<<24)
	next := site + 6
	target := next + uint64(int64(rel))
	md := record.Meta(spec, img, spec.CPUs, 1)
	const (
		zf = 0x40
		sf = 0x80
		of = 0x800
	)
	for _, tc := range []struct {
		name    string
		flags   uint64
		resume  uint64
		tail    bool // the jle's second byte rewritten too
		finding bool
	}{
		{"less, taken", 0x202 | sf, target, false, false},
		{"equal, taken", 0x202 | zf, target, false, false},
		{"greater, not taken", 0x202, next, false, false},
		{"overflowed less, taken", 0x202 | of, target, false, false},
		{"equal, fell through", 0x202 | zf, next, false, true},
		{"less, fell through", 0x202 | sf, next, false, true},
		{"greater, jumped", 0x202, target, false, true},
		{"less, to a slot", 0x202 | sf, fn.Addr - 0x100, false, false},
		{"equal, fell through, tail rewritten", 0x202 | zf, next, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "trap")})
			if err != nil {
				t.Fatal(err)
			}
			seq := uint64(0)
			poke := func(addr uint64, old, b byte) {
				seq++
				live.Append(&format.Row{Seq: seq, Kind: format.KindWrite, CPU: 0, RIP: 1, Addr: addr, HasAddr: true,
					Size: 1, Old: uint64(old), New: uint64(b), Alias: true, AliasAddr: slice.AliasBase})
			}
			poke(site, built[0], 0xcc)
			if tc.tail {
				poke(site+1, built[1], 0xe9)
			}
			seq++
			live.Append(&format.Row{Seq: seq, Kind: format.KindInsn, CPU: 1, Task: 2, RIP: fn.Addr, Len: 3})
			// the #BP frame: RIP, CS, RFLAGS, RSP, SS up from rsp
			rsp := stack.Addr + 0x7fa8
			for i, w := range []uint64{site + 1, 0x10, tc.flags, rsp + 0x30, 0x18} {
				seq++
				live.Append(&format.Row{Seq: seq, Kind: format.KindWrite, CPU: 1, Task: 2, RIP: site + 1, Addr: rsp + uint64(8*i), HasAddr: true,
					Size: 8, New: w})
			}
			seq++
			live.Append(&format.Row{Seq: seq, Kind: format.KindTrap, CPU: 1, Task: 2, RIP: site + 1, RSP: rsp, Vector: 3,
				RFlags: tc.flags, Handler: fn.Addr - 0x200})
			seq++
			live.Append(&format.Row{Seq: seq, Kind: format.KindInsn, CPU: 1, Task: 2, Depth: 1, RIP: fn.Addr - 0x200, Len: 1})
			seq++
			live.Append(&format.Row{Seq: seq, Kind: format.KindIret, CPU: 1, Task: 2, RIP: fn.Addr - 0x1f0,
				RFlags: tc.flags, Handler: tc.resume})
			res := live.Finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v: %+v", got, tc.finding, res.Findings)
			}
			if tc.finding {
				m := res.Findings[0].Message
				if !strings.Contains(m, "over the conditional branch jle") || !strings.Contains(m, "emulation of the branch went the other way") ||
					res.Findings[0].RIP != site {
					t.Errorf("finding at %#x: %q", res.Findings[0].RIP, m)
				}
			}
		})
	}
}

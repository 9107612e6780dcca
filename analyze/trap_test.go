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

// TestTrapReturnIntoInstruction feeds hand-made events over text-poke-bp's
// slice: IRETQs to traced_fn+5 (after the nop5) are fine; to traced_fn+1 they
// land inside the 5-byte instruction, whether the site holds the nop, a call,
// or a text_poke_bp int3 guard standing for one.
func TestTrapReturnIntoInstruction(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	site, _ := img.Lookup("traced_fn")
	md := record.Meta(spec, img, spec.CPUs, 1)
	for _, tc := range []struct {
		name    string
		poke    []byte // written at the site first (through the alias)
		target  uint64
		finding bool
	}{
		{"after the nop", nil, site.Addr + 5, false},
		{"inside the nop", nil, site.Addr + 1, true},
		{"after an int3 guard", []byte{0xcc}, site.Addr + 5, false},
		{"inside an int3-guarded site", []byte{0xcc}, site.Addr + 1, true},
		{"inside a call", []byte{0xe8, 1, 2, 3, 4}, site.Addr + 2, true},
		{"function entry", nil, site.Addr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "trap")})
			if err != nil {
				t.Fatal(err)
			}
			seq := uint64(0)
			for i, b := range tc.poke {
				live.Append(&format.Row{Seq: seq, Kind: format.KindWrite, CPU: 0, RIP: 1, Addr: site.Addr + uint64(i), HasAddr: true,
					Size: 1, New: uint64(b), Alias: true, AliasAddr: slice.AliasBase})
				seq++
			}
			live.Append(&format.Row{Seq: seq, Kind: format.KindIret, CPU: 1, RIP: site.Addr - 0x100, Handler: tc.target})
			res := live.Finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v: %+v", got, tc.finding, res.Findings)
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "inside the") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

func mustSelect(t *testing.T, id string) analyze.Analyzer {
	as, err := analyze.Select([]string{id})
	if err != nil {
		t.Fatal(err)
	}
	return as[0]
}

// TestTrapFindingNamesWhatTheFaultCarries: an exception that ends in die()
// (marker 0xffff naming regs->ip, then panic) or in the machine's oops
// names the #PF fault address (CR2) and error code, and a #GP's error code
// (the selector IRETQ rejected), not only the RIP.
func TestTrapFindingNamesWhatTheFaultCarries(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	site, _ := img.Lookup("traced_fn")
	md := record.Meta(spec, img, spec.CPUs, 1)
	const cr2 = 0xffffffff81f00008
	for _, tc := range []struct {
		name  string
		rows  []format.Row
		wants []string
	}{
		{"#PF through die()", []format.Row{
			{Kind: format.KindTrap, RIP: site.Addr, Vector: 14, HasVector: true, ErrCode: 2, HasErrCode: true, Addr: cr2, HasAddr: true},
			{Kind: format.KindMarker, Args: [4]uint64{0xffff, site.Addr}},
			{Kind: format.KindFault, Msg: "panic: Oops", Service: format.Service(emu.SvcPanic), HasVector: true, HasErrCode: true, HasAddr: true},
		}, []string{"#PF", "address 0xffffffff81f00008", "error code 0x2", "not present, write", "claimed by no handler"}},
		{"#GP from IRETQ through die()", []format.Row{
			{Kind: format.KindTrap, RIP: site.Addr, Vector: 13, HasVector: true, ErrCode: 0x4564, HasErrCode: true, HasAddr: true},
			{Kind: format.KindMarker, Args: [4]uint64{0xffff, site.Addr}},
			{Kind: format.KindFault, Msg: "panic: Oops", Service: format.Service(emu.SvcPanic), HasVector: true, HasErrCode: true, HasAddr: true},
		}, []string{"#GP", "error code 0x4564"}},
		{"#CP ENDBRANCH through die()", []format.Row{
			{Kind: format.KindTrap, RIP: site.Addr, Vector: 21, HasVector: true, ErrCode: 3, HasErrCode: true, HasAddr: true},
			{Kind: format.KindMarker, Args: [4]uint64{0xffff, site.Addr}},
			{Kind: format.KindFault, Msg: "panic: Missing ENDBR", Service: format.Service(emu.SvcPanic), HasVector: true, HasErrCode: true, HasAddr: true},
		}, []string{"#CP", "error code 0x3: ENDBRANCH", "no ENDBR64"}},
		{"#PF with no handler", []format.Row{
			{Kind: format.KindFault, RIP: site.Addr, Msg: "oops: no handler for #PF at traced_fn", Vector: 14, HasVector: true, ErrCode: 0x11, HasErrCode: true, Addr: cr2, HasAddr: true},
		}, []string{"no handler for #PF", "address 0xffffffff81f00008", "error code 0x11", "protection, fetch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "trap")})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.rows {
				r := tc.rows[i]
				r.Seq, r.CPU = uint64(i)+1, 1
				live.Append(&r)
			}
			res := live.Finish()
			if len(res.Findings) != 1 {
				t.Fatalf("findings %+v", res.Findings)
			}
			// A page fault's finding carries its address as a field.
			if f := res.Findings[0]; f.HasFaultAddr != (tc.wants[0] != "#GP" && tc.wants[0] != "#CP") || (f.HasFaultAddr && f.FaultAddr != cr2) {
				t.Errorf("fault address %v %#x, want it set to %#x for a #PF only", f.HasFaultAddr, f.FaultAddr, uint64(cr2))
			}
			for _, w := range tc.wants {
				if !strings.Contains(res.Findings[0].Message, w) {
					t.Errorf("message %q does not name %q", res.Findings[0].Message, w)
				}
			}
			// Both renderers carry it.
			var text, js strings.Builder
			if err := analyze.WriteText(&text, []*analyze.Result{res}); err != nil {
				t.Fatal(err)
			}
			if err := analyze.WriteJSON(&js, []*analyze.Result{res}); err != nil {
				t.Fatal(err)
			}
			for out, s := range map[string]string{"text": text.String(), "json": js.String()} {
				if !strings.Contains(s, tc.wants[1]) {
					t.Errorf("%s output does not name %q:\n%s", out, tc.wants[1], s)
				}
			}
		})
	}
}

// TestTrapBranchIntoInstruction: a branch (an instruction of a context
// that does not follow its previous one, with no delivery or IRETQ
// between) to the middle of an instruction of patched code is a finding;
// to an instruction start, or after a delivery, or into a page no
// text_poke wrote, it is not.
func TestTrapBranchIntoInstruction(t *testing.T) {
	for _, tc := range []struct {
		name    string
		target  uint64 // offset in traced_fn
		written bool   // the site was rewritten through the alias
		trapped bool   // a delivery came between
		finding bool
	}{
		{"into the new call's displacement", 1, true, false, true},
		{"to the new call", 0, true, false, false},
		{"to the instruction after it", 5, true, false, false},
		{"after a delivery", 1, true, true, false},
		{"into code as built", 1, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "text-poke-bp", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			site := f.sym("traced_fn", 0)
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			if tc.written {
				// nop5 -> call rel32 (e8 11 22 33 44), through the alias.
				f.write(c0, f.sym("text_poke", 0), site, 4, 0x332211e8, true)
				f.write(c0, f.sym("text_poke", 0), site+4, 1, 0x44, true)
			}
			f.insn(c1, f.sym("caller_main", 0), "JMP", ltStackB)
			if tc.trapped {
				f.trap(c1, f.sym("caller_main", 0), 0xec, f.sym("asm_sysvec_apic_timer_interrupt", 0), ltStackB-48)
			}
			f.insn(c1, site+tc.target, "NOP", ltStackB)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v:\n%s", got, tc.finding, summary(res))
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "branched to traced_fn+0x1, inside the 5-byte instruction at traced_fn (e8 11 22 33 44)") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestTrapBranchBehindGuard: optprobe's probed_fn starts with a one-byte
// push; while text_poke_bp() installs a 5-byte jump there, its int3 reads
// as that push, so probed_fn+1 decodes as a boundary. A branch to it once
// the jump's tail is written behind the int3 is a finding all the same;
// with the original bytes behind the int3 (a kprobe), or once the jump is
// complete (a plain mid-instruction finding), the message says which.
func TestTrapBranchBehindGuard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tail  uint32 // bytes +1..+4 written behind the int3
		first byte   // the first byte at the end (0xcc: still guarded)
		want  string // "" no finding
	}{
		{"jump's tail behind the guard", 0x44332211, 0xcc, "into the bytes text_poke_bp() wrote after its int3 at probed_fn"},
		{"original bytes behind a kprobe's int3", 0, 0xcc, ""},
		{"jump complete", 0x44332211, 0xe9, "inside the 5-byte instruction at probed_fn (e9 11 22 33 44)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "optprobe", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			fn := f.sym("probed_fn", 0)
			tail := tc.tail
			if tail == 0 {
				b := f.img.Bytes(fn+1, 4)
				tail = uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
			}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			f.write(c0, f.sym("text_poke", 0), fn, 1, 0xcc, true)
			f.write(c0, f.sym("text_poke", 0), fn+1, 4, uint64(tail), true)
			if tc.first != 0xcc {
				f.write(c0, f.sym("text_poke", 0), fn, 1, uint64(tc.first), true)
			}
			f.insn(c1, f.sym("kprobe_boost_slot", 1), "JMP", ltStackB)
			f.insn(c1, fn+1, "NOP", ltStackB)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) > 0 {
					t.Fatalf("unexpected findings:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one finding saying %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

// TestTrapOutOfLineCopy feeds hand-made events over kprobe-riprel's slice:
// a context runs the instruction slot (written through the alias) and then
// goes on at probed_fn+7, behind the original mov probe_base(%rip), %rax -
// single-stepped (arriving by the #DB's IRETQ), or boosted (a jump back
// after the copy). A copy whose displacement reaches probe_base from the
// slot stands for the original; a byte-for-byte copy reads elsewhere and is
// a finding; code that is no copy of the original is not judged.
func TestTrapOutOfLineCopy(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "kprobe-riprel")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := img.Lookup("probed_fn")
	slot, _ := img.Lookup("kprobe_insn_slot")
	orig := img.Bytes(fn.Addr, 7)
	if len(orig) != 7 || orig[0] != 0x48 || orig[1] != 0x8b || orig[2] != 0x05 {
		t.Fatalf("probed_fn starts % x, not mov disp32(%%rip), %%rax", orig)
	}
	md := record.Meta(spec, img, spec.CPUs, 1)
	disp := func(b []byte) int32 {
		return int32(uint32(b[3]) | uint32(b[4])<<8 | uint32(b[5])<<16 | uint32(b[6])<<24)
	}
	withDisp := func(d int32) []byte {
		b := append([]byte(nil), orig...)
		for i := 0; i < 4; i++ {
			b[3+i] = byte(uint32(d) >> (8 * i))
		}
		return b
	}
	fixed := withDisp(disp(orig) + int32(int64(fn.Addr)-int64(slot.Addr)))
	jmpBack := func(copyLen int) []byte {
		rel := int32(int64(fn.Addr+7) - int64(slot.Addr+uint64(copyLen)+5))
		return []byte{0xe9, byte(rel), byte(rel >> 8), byte(rel >> 16), byte(rel >> 24)}
	}
	for _, tc := range []struct {
		name    string
		slot    []byte
		boost   bool // a jump back after the copy; else single-stepped
		finding bool
	}{
		{"adjusted, single-stepped", fixed, false, false},
		{"byte for byte, single-stepped", orig, false, true},
		{"adjusted, boosted", fixed, true, false},
		{"byte for byte, boosted", orig, true, true},
		{"adjusted for the wrong address", withDisp(disp(orig) - 0x40), false, true},
		{"no copy (another load)", []byte{0x48, 0x8b, 0x47, 0x08, 0x90, 0x90, 0x90}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "trap")})
			if err != nil {
				t.Fatal(err)
			}
			code := append([]byte(nil), tc.slot...)
			if tc.boost {
				code = append(code, jmpBack(len(tc.slot))...)
			}
			seq := uint64(0)
			for i, b := range code {
				seq++
				live.Append(&format.Row{Seq: seq, Kind: format.KindWrite, CPU: 0, RIP: 1, Addr: slot.Addr + uint64(i), HasAddr: true,
					Size: 1, Old: 0xcc, New: uint64(b), Alias: true, AliasAddr: slice.AliasBase})
			}
			insn := func(rip uint64, n uint8, depth uint8) {
				seq++
				live.Append(&format.Row{Seq: seq, Kind: format.KindInsn, CPU: 1, Task: 2, Depth: depth, RIP: rip, Len: n})
			}
			insn(slot.Addr, 7, 0)
			if tc.boost {
				insn(slot.Addr+7, 5, 0)
			} else {
				// the single-step #DB's handler, one level deeper
				insn(slot.Addr-0x100, 1, 1)
			}
			insn(fn.Addr+7, 3, 0)
			res := live.Finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v: %+v", got, tc.finding, res.Findings)
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "out-of-line copy of the instruction at probed_fn") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestTrapPadding feeds hand-made events over sc-tail's slice, where
// mod_tail_fn ends in a tail call's 5-byte jmp and 7 bytes of alignment
// padding come before mod_next_fn: an instruction there is a finding,
// however the context got there (a RET returning to the bytes after the
// jmp, a fall-through past the function's end, a resumption), unless the
// alias wrote its bytes; the next function's entry is not padding.
func TestTrapPadding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		how     string // ret, fall, trap
		next    bool   // to mod_next_fn's entry instead
		written bool   // the padding byte was written through the alias
		want    string // in the message; "" for no finding
	}{
		{"ret to after the tail call", "ret", false, false, "the ret at sc_func_a+0x4 returned there"},
		{"fall-through past the end", "fall", false, false, "fell through from mod_tail_site+0x4 past the end of mod_tail_fn"},
		{"resumed after a delivery", "trap", false, false, "resumed there"},
		{"the next function's entry", "ret", true, false, ""},
		{"code text_poke installed", "ret", false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "sc-tail", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			end := f.sym("mod_tail_site", 5)
			if end >= f.sym("mod_next_fn", 0) {
				t.Fatalf("no padding after mod_tail_fn: ends %#x, mod_next_fn %#x", end, f.sym("mod_next_fn", 0))
			}
			to := end
			if tc.next {
				to = f.sym("mod_next_fn", 0)
			}
			if tc.written {
				f.write(c0, f.sym("text_poke", 0), to, 1, 0x90, true)
			}
			switch tc.how {
			case "ret":
				f.insn(c1, f.sym("sc_func_a", 4), "RET", ltStackB)
			case "fall":
				f.insn(c1, end-1, "NOP", ltStackB)
			case "trap":
				f.insn(c1, f.sym("caller_main", 0), "NOP", ltStackB)
				f.trap(c1, f.sym("caller_main", 0), 0xec, f.sym("asm_sysvec_apic_timer_interrupt", 0), ltStackB-48)
			}
			f.insn(c1, to, "NOP", ltStackB)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) > 0 {
					t.Fatalf("want no finding, got:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 {
				t.Fatalf("want one finding, got:\n%s", summary(res))
			}
			msg := res.Findings[0].Message
			if !strings.Contains(msg, "padding between mod_tail_fn and mod_next_fn") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to name the padding and %q", msg, tc.want)
			}
		})
	}
}

// TestTrapBranchBehindOptimizedRegion: an optprobe's 5-byte jump over
// optprobe-riprel's first eight bytes (push, then a 7-byte mov) leaves three
// bytes of the mov behind it that nothing runs; the detour's jump back to
// probed_fn+8 lands on an instruction however those bytes decode, whether
// the jump is complete, guarded by text_poke_bp()'s int3 while it is being
// removed, or half restored. A branch into the jump or into the bytes it
// left dead is a finding.
func TestTrapBranchBehindOptimizedRegion(t *testing.T) {
	f0 := newFeed(t, "optprobe-riprel", "trap")
	fn := f0.sym("probed_fn", 0)
	orig := f0.img.Bytes(fn, 8)
	le := func(b []byte) uint64 {
		return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
	}
	const rel = 0x00000123 // jmp optprobe_detour's displacement, as far as this test cares
	for _, tc := range []struct {
		name    string
		writes  [][3]uint64 // offset, size, value, in order
		target  uint64
		finding bool
	}{
		{"jump complete, back behind the region", [][3]uint64{{0, 1, 0xcc}, {1, 4, rel}, {0, 1, 0xe9}}, 8, false},
		{"jump complete, into the dead bytes", [][3]uint64{{0, 1, 0xcc}, {1, 4, rel}, {0, 1, 0xe9}}, 6, true},
		{"jump complete, into its displacement", [][3]uint64{{0, 1, 0xcc}, {1, 4, rel}, {0, 1, 0xe9}}, 1, true},
		{"jump being removed, guarded", [][3]uint64{{0, 1, 0xcc}, {1, 4, rel}, {0, 1, 0xe9}, {0, 1, 0xcc}}, 8, false},
		{"jump half restored", [][3]uint64{{0, 1, 0xcc}, {1, 4, rel}, {0, 1, 0xe9}, {0, 1, 0xcc}, {1, 1, uint64(orig[1])}}, 8, false},
		{"kprobe's int3 over the code as built", [][3]uint64{{0, 1, 0xcc}}, 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "optprobe-riprel", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			for _, w := range tc.writes {
				f.write(c0, f.sym("text_poke", 0), fn+w[0], uint32(w[1]), w[2], true)
			}
			f.insn(c1, f.sym("optprobe_detour", 13), "JMP", ltStackB)
			f.insn(c1, fn+tc.target, "NOP", ltStackB)
			res := f.finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v (code as built % x, %#x):\n%s", got, tc.finding, orig, le(orig[1:5]), summary(res))
			}
		})
	}
}

// TestTrapBranchBesideNeighbourSite: optprobe-range's probed_fn has a
// kprobe's int3 on +0 (the one-byte push under it) and another probe at +4,
// the next instruction but one: its int3, text_poke_bp()'s guard while its
// jump goes in or out, or its complete 5-byte jump. That change is a site of
// its own, not the tail of an instruction the int3 at +0 stands for: the
// kprobe's boost slot jumps back to +1 as to a boundary, and the entry
// probe's detour jumping back to +7 lands inside the jump at +4 (commit
// f1c97a1b4ef7's bug), while a half-written jump behind a guard at +0 is
// still the guard's.
func TestTrapBranchBesideNeighbourSite(t *testing.T) {
	f0 := newFeed(t, "optprobe-range", "trap")
	fn := f0.sym("probed_fn", 0)
	rel := (f0.sym("detour_in", 0) - (fn + 9)) & 0xffffffff
	for _, tc := range []struct {
		name   string
		writes [][3]uint64 // offset, size, value, in order
		from   string
		target uint64
		want   string // "" no finding
	}{
		{"int3 at +0, jump at +4: slot back to +1", [][3]uint64{{4, 1, 0xcc}, {5, 4, rel}, {4, 1, 0xe9}, {0, 1, 0xcc}}, "slot_entry", 1, ""},
		{"int3 at +0, jump at +4: detour back to +7", [][3]uint64{{4, 1, 0xcc}, {5, 4, rel}, {4, 1, 0xe9}, {0, 1, 0xcc}}, "detour_entry", 7,
			"inside the 5-byte instruction at probed_fn+0x4 (e9"},
		{"int3 at +0, int3 at +4: slot back to +1", [][3]uint64{{4, 1, 0xcc}, {0, 1, 0xcc}}, "slot_entry", 1, ""},
		{"int3 at +0, guard at +4 over a jump going in: slot back to +1", [][3]uint64{{0, 1, 0xcc}, {4, 1, 0xcc}, {5, 4, rel}}, "slot_entry", 1, ""},
		{"jump going in at +0, tail half written behind its guard", [][3]uint64{{0, 1, 0xcc}, {1, 1, 0x11}, {2, 1, 0x22}, {3, 1, 0x33}, {4, 1, 0x44}}, "slot_entry", 1,
			"into the bytes text_poke_bp() wrote after its int3 at probed_fn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "optprobe-range", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			for _, w := range tc.writes {
				f.write(c0, f.sym("text_poke", 0), fn+w[0], uint32(w[1]), w[2], true)
			}
			f.insn(c1, f.sym(tc.from, 1), "JMP", ltStackB)
			f.insn(c1, fn+tc.target, "NOP", ltStackB)
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) > 0 {
					t.Fatalf("unexpected findings:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one finding saying %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

// TestTrapGuardPage: a #PF in the unmapped page right after a live
// module_alloc() allocation (the guard page the machine leaves, as
// vmalloc does) names the allocation it ran past and its mapping; one
// past an allocation since freed, or in no allocation's guard page, names
// none.
func TestTrapGuardPage(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	site, _ := img.Lookup("traced_fn")
	md := record.Meta(spec, img, spec.CPUs, 1)
	const mod = 0xffffffffa0000000
	alloc := func(page uint64) format.Row {
		return format.Row{Kind: format.KindPerm, Addr: page, HasAddr: true, Size: 1, PermNew: 3, Service: format.Service(emu.SvcModuleAlloc)}
	}
	pf := func(cr2 uint64) []format.Row {
		return []format.Row{
			{Kind: format.KindTrap, RIP: site.Addr, Vector: 14, HasVector: true, ErrCode: 0, HasErrCode: true, Addr: cr2, HasAddr: true},
			{Kind: format.KindMarker, Args: [4]uint64{0xffff, site.Addr}},
			{Kind: format.KindFault, Msg: "panic: Oops", Service: format.Service(emu.SvcPanic), HasVector: true, HasErrCode: true, HasAddr: true},
		}
	}
	for _, tc := range []struct {
		name string
		rows []format.Row
		want string // "": the message names no allocation
		ev   uint64 // the allocation's seq in the evidence
	}{
		{"three bytes into the guard page of a two-page allocation",
			append([]format.Row{alloc(mod), alloc(mod + 0x1000)}, pf(mod+0x2003)...),
			"0xffffffffa0002003 is 3 bytes past the end of the module_alloc() allocation 0xffffffffa0000000..0xffffffffa0002000 (2 page(s), mapped at seq 1), in the unmapped guard page behind it", 1},
		{"the first byte past the second of two allocations",
			append([]format.Row{alloc(mod), alloc(mod + 0x2000)}, pf(mod+0x3000)...),
			"0xffffffffa0003000 is the first byte past the end of the module_alloc() allocation 0xffffffffa0002000..0xffffffffa0003000 (1 page(s), mapped at seq 2)", 2},
		{"past an allocation since freed",
			append([]format.Row{alloc(mod), {Kind: format.KindPerm, Addr: mod, HasAddr: true, Size: 1, PermOld: 3, Service: format.Service(emu.SvcModuleFree)}}, pf(mod+0x1000)...),
			"", 0},
		{"two pages past",
			append([]format.Row{alloc(mod)}, pf(mod+0x2000)...),
			"", 0},
		{"inside a live allocation (a protection fault's page)",
			append([]format.Row{alloc(mod)}, pf(mod+0x800)...),
			"", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "trap")})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.rows {
				r := tc.rows[i]
				r.Seq, r.CPU = uint64(i)+1, 1
				live.Append(&r)
			}
			res := live.Finish()
			if len(res.Findings) != 1 {
				t.Fatalf("findings %+v", res.Findings)
			}
			f := res.Findings[0]
			if tc.want == "" {
				if strings.Contains(f.Message, "module_alloc") {
					t.Errorf("message %q names an allocation", f.Message)
				}
				return
			}
			if !strings.Contains(f.Message, tc.want) {
				t.Errorf("message %q does not say %q", f.Message, tc.want)
			}
			if len(f.Evidence) == 0 || f.Evidence[0] != tc.ev {
				t.Errorf("evidence %v: want the allocation's seq %d first", f.Evidence, tc.ev)
			}
		})
	}
}

// TestTrapOutOfLineCopyNotBuilt: a context leaves optprobe-range's
// probed_fn from the int3 at +0 for kp_entry's detour (call opt_thunk, the
// copies of the three instructions at +0..+6, jmp back to +7). The copies
// made from the instructions as built pass; the detour of commit
// 868a6fc0ca24's bug, whose copy of incq %rbx at +4 is the live bytes of
// another optprobe's jump (e9 and two displacement bytes), or one whose copy
// there is that probe's int3, is reported at that copy, two copies in; a
// line of one matching copy before something else is not judged.
func TestTrapOutOfLineCopyNotBuilt(t *testing.T) {
	f0 := newFeed(t, "optprobe-range", "trap")
	fn := f0.sym("probed_fn", 0)
	det := f0.sym("detour_entry", 0)
	thunk := f0.sym("opt_thunk", 0)
	le32 := func(v uint64) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	call := append([]byte{0xe8}, le32(thunk-(det+5))...)
	type step struct {
		off uint64 // in the detour
		op  string
		n   uint8
	}
	for _, tc := range []struct {
		name   string
		copies []byte // the detour's bytes behind the call
		steps  []step // what the context runs in the detour after opt_thunk returns
		to     uint64 // where it goes after the last step
		want   string
	}{
		{"copies as built, jump back to +7",
			append([]byte{0x53, 0x48, 0x89, 0xfb, 0x48, 0xff, 0xc3, 0xe9}, le32(fn+7-(det+17))...),
			[]step{{5, "PUSH", 1}, {6, "MOV", 3}, {9, "INC", 3}, {12, "JMP", 5}}, fn + 7, ""},
		{"copy of +4 made from another probe's jump",
			[]byte{0x53, 0x48, 0x89, 0xfb, 0xe9, 0xb7, 0xff, 0xe9, 0x16},
			[]step{{5, "PUSH", 1}, {6, "MOV", 3}, {9, "JMP", 5}}, 0xffffffff97ea0be5,
			"the next instruction in that line, at detour_entry+0x9 (e9 b7 ff e9 16), is jmpq 0xffffffff97ea0be5: neither the copy of the instruction built at probed_fn+0x4 (48 ff c3: inc %rbx)"},
		{"copy of +4 made from another probe's int3",
			[]byte{0x53, 0x48, 0x89, 0xfb, 0xcc, 0xff, 0xc3},
			[]step{{5, "PUSH", 1}, {6, "MOV", 3}, {9, "INT3", 1}}, 0,
			"is int3: neither the copy of the instruction built at probed_fn+0x4"},
		{"one copy, then something else",
			[]byte{0x53, 0xcc},
			[]step{{5, "PUSH", 1}, {6, "INT3", 1}}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t, "optprobe-range", "trap")
			c0, c1 := ctx{cpu: 0, task: 1}, ctx{cpu: 1, task: 2}
			f.insn(c0, f.sym("patcher_main", 0), "NOP", ltStackA)
			for i, b := range append(append([]byte{}, call...), tc.copies...) {
				f.write(c0, f.sym("text_poke", 0), det+uint64(i), 1, uint64(b), true)
			}
			f.write(c0, f.sym("text_poke", 0), fn, 1, 0xcc, true)
			insn := func(rip uint64, op string, n uint8) {
				f.add(c1, &format.Row{Kind: format.KindInsn, RIP: rip, Op: f.ops[op], Len: n, RSP: ltStackB})
			}
			insn(f.sym("caller_main", 0), "CALL", 5)
			insn(fn, "INT3", 1)
			insn(det, "CALL", 5)
			insn(thunk, "PUSH", 1)
			insn(thunk+1, "RET", 1)
			for _, s := range tc.steps {
				insn(det+s.off, s.op, s.n)
			}
			if tc.to != 0 {
				insn(tc.to, "NOP", 1)
			}
			res := f.finish()
			if tc.want == "" {
				if len(res.Findings) > 0 {
					t.Fatalf("unexpected findings:\n%s", summary(res))
				}
				return
			}
			if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Message, tc.want) {
				t.Fatalf("want one finding saying %q, got:\n%s", tc.want, summary(res))
			}
		})
	}
}

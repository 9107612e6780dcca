package analyze_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/internal/testkit"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// cmcStep is one hand-made event of a cmc test.
type cmcStep struct {
	kind  emu.EventKind
	cpu   uint16
	addr  uint64 // write, perm: target; insn: RIP
	bytes []byte // write: new bytes (old ones are memory's); insn: the instruction
	alias bool   // write through the text-poke alias
	perm  [2]uint8
}

// TestCMCHalfWritten: an instruction executed while another CPU's
// byte-granular text_poke over it is in progress is reported as executed
// half-written; once the poke is done, it is an ordinary finding.
func TestCMCHalfWritten(t *testing.T) {
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
	for _, done := range []bool{false, true} {
		t.Run(fmt.Sprint("done=", done), func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "cmc")})
			if err != nil {
				t.Fatal(err)
			}
			alias := slice.AliasBase + site.Addr&0xfff
			rows := []*format.Row{
				{Kind: format.KindSerialize, CPU: 1},
				{Kind: format.KindService, CPU: 0, Service: 1, Args: [4]uint64{site.Addr, 0xffffffff81006000, 5}},
				{Kind: format.KindPerm, CPU: 0, Addr: site.Addr &^ 0xfff, HasAddr: true, Size: 1, PermNew: 3, Alias: true, AliasAddr: alias &^ 0xfff},
				{Kind: format.KindWrite, CPU: 0, Addr: site.Addr, HasAddr: true, Size: 1, Old: 0x0f, New: 0xe8, Alias: true, AliasAddr: alias},
			}
			if done {
				rows = append(rows, &format.Row{Kind: format.KindPerm, CPU: 0, Addr: site.Addr &^ 0xfff, HasAddr: true, Size: 1, PermOld: 3, Alias: true, AliasAddr: alias &^ 0xfff})
			}
			ex := &format.Row{Kind: format.KindInsn, CPU: 1, RIP: site.Addr, Len: 5}
			copy(ex.Bytes[:], []byte{0xe8, 0x1f, 0x44, 0x00, 0x00})
			rows = append(rows, ex)
			for i, r := range rows {
				r.Seq = uint64(i) + 1
				if r.Kind != format.KindInsn {
					r.RIP = site.Addr - 0x100
				}
				if err := live.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			res := live.Finish()
			if len(res.Findings) != 1 {
				t.Fatalf("findings %+v, want one", res.Findings)
			}
			if got := strings.Contains(res.Findings[0].Message, "half-written while cpu0's text_poke of 5 bytes"); got == done {
				t.Errorf("message %q: says half-written %v, want %v", res.Findings[0].Message, got, !done)
			}
		})
	}
}

// TestCMCRules feeds hand-made events over text-poke-bp's slice to the cmc
// analyzer. CPU 1 serializes first; CPU 0 (the patcher) then changes code
// and CPU 1 executes it. Each rule of the analyzer has a case on each side.
func TestCMCRules(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	site, _ := img.Lookup("traced_fn") // a nop5 at the function's entry
	site5 := site.Addr
	nop5 := []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}
	call := []byte{0xe8, 1, 2, 3, 4}
	// .text is one page; .rodata follows it. Making .rodata executable
	// gives an instruction that crosses from .text into it.
	rodata := uint64(0xffffffff81001000)
	for _, s := range img.Sections {
		if s.Name == ".rodata" {
			rodata = s.Addr
		}
	}
	cross := rodata - 2 // 2 bytes on .text, 3 on .rodata
	makeX := cmcStep{kind: emu.EvPerm, addr: rodata, perm: [2]uint8{1, 5}}
	write := func(addr uint64, alias bool, b ...byte) cmcStep {
		return cmcStep{kind: emu.EvWrite, addr: addr, bytes: b, alias: alias}
	}
	insn := func(cpu uint16, addr uint64, b ...byte) cmcStep {
		return cmcStep{kind: emu.EvInsn, cpu: cpu, addr: addr, bytes: b}
	}
	ser := cmcStep{kind: emu.EvSerialize, cpu: 1}
	md := record.Meta(spec, img, spec.CPUs, 1)
	for _, tc := range []struct {
		name    string
		steps   []cmcStep
		finding bool
	}{
		{"int3 installed by the patcher, int3 executed",
			[]cmcStep{ser, write(site5, true, 0xcc), insn(1, site5, 0xcc)}, false},
		{"int3 installed by the patcher, old instruction executed",
			[]cmcStep{ser, write(site5, true, 0xcc), insn(1, site5, nop5...)}, false},
		{"int3 removed by the patcher",
			[]cmcStep{write(site5, true, 0xcc), ser, write(site5, true, 0x0f), insn(1, site5, nop5...)}, false},
		{"first byte changed to something not an int3",
			[]cmcStep{ser, write(site5, true, 0xe8), insn(1, site5, 0xe8, 0x1f, 0x44, 0x00, 0x00)}, true},
		{"int3 stored by something other than the patcher",
			[]cmcStep{ser, write(site5, false, 0xcc), insn(1, site5, 0xcc)}, true},
		{"int3 stored at a byte other than the first",
			[]cmcStep{ser, write(site5+1, true, 0xcc), insn(1, site5, 0x0f, 0xcc, 0x44, 0x00, 0x00)}, true},
		{"tail rewritten without a serialization",
			[]cmcStep{write(site5, true, 0xcc), ser, write(site5+1, true, 1, 2, 3, 4), insn(1, site5, nop5...)}, true},
		{"tail rewritten before the serialization",
			[]cmcStep{write(site5, true, 0xcc), write(site5+1, true, 1, 2, 3, 4), ser, insn(1, site5, 0xcc, 1, 2, 3, 4)}, false},
		{"five bytes in one go",
			[]cmcStep{ser, write(site5, true, call...), insn(1, site5, call...)}, true},
		// One-byte instructions: the int3 itself is the guard; any other
		// one-byte change is not.
		{"one-byte instruction: int3 installed",
			[]cmcStep{ser, write(site5+4, true, 0xcc), insn(1, site5+4, 0xcc)}, false},
		{"one-byte instruction: changed to ret",
			[]cmcStep{ser, write(site5+4, true, 0xc3), insn(1, site5+4, 0xc3)}, true},
		// An instruction crossing into the next page: a change of the
		// bytes there counts like one on the first page.
		{"second page changed, crossing instruction executed",
			[]cmcStep{makeX, ser, write(rodata, true, 0xaa), insn(0, cross-1, 0x90), insn(1, cross, 0xb8, 0, 0, 0xaa, 0)}, true},
		{"second page changed before the serialization",
			[]cmcStep{makeX, write(rodata, true, 0xaa), ser, insn(1, cross-1, 0x90), insn(1, cross, 0xb8, 0, 0, 0xaa, 0)}, false},
		// set_memory_nx, a store, set_memory_x: still changed code.
		{"store while not executable",
			[]cmcStep{ser, {kind: emu.EvPerm, addr: site5 &^ 0xfff, perm: [2]uint8{5, 3}}, write(site5, false, call...),
				{kind: emu.EvPerm, addr: site5 &^ 0xfff, perm: [2]uint8{3, 5}}, insn(1, site5, call...)}, true},
		{"store to a fresh page made executable",
			[]cmcStep{ser, {kind: emu.EvPerm, addr: slice.ModuleBase, perm: [2]uint8{0, 3}}, write(slice.ModuleBase, false, call...),
				{kind: emu.EvPerm, addr: slice.ModuleBase, perm: [2]uint8{3, 5}}, insn(1, slice.ModuleBase, call...)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "cmc")})
			if err != nil {
				t.Fatal(err)
			}
			mem := map[uint64]byte{}
			for i := uint64(0); i < 8; i++ {
				mem[site5+i] = nop5[min(i, 4)]
			}
			for seq, s := range tc.steps {
				r := &format.Row{Seq: uint64(seq) + 1, Kind: format.Kind(s.kind), CPU: s.cpu, RIP: site5 - 0x100}
				switch s.kind {
				case emu.EvWrite:
					r.Addr, r.HasAddr, r.Size, r.Alias = s.addr, true, uint32(len(s.bytes)), s.alias
					if s.alias {
						r.AliasAddr = slice.AliasBase + s.addr&0xfff
					}
					for i, b := range s.bytes {
						r.Old |= uint64(mem[s.addr+uint64(i)]) << (8 * i)
						r.New |= uint64(b) << (8 * i)
						mem[s.addr+uint64(i)] = b
					}
				case emu.EvPerm:
					r.Addr, r.HasAddr, r.Size = s.addr, true, 1
					r.PermOld, r.PermNew = s.perm[0], s.perm[1]
				case emu.EvInsn:
					r.RIP, r.Len = s.addr, uint8(len(s.bytes))
					copy(r.Bytes[:], s.bytes)
				}
				if err := live.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			res := live.Finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v: %+v", got, tc.finding, res.Findings)
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "without the int3 guard") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

// TestTornFetchExecutesHalfWritten: on text-poke-bp-nosync's plain 5-byte
// text_poke (mode 1), the torn fetch model lets a CPU execute the site
// half-written, and cmc says so; with whole text_poke stores (stale) no
// execution is half-written.
func TestTornFetchExecutesHalfWritten(t *testing.T) {
	for _, fetch := range []string{"torn", "stale"} {
		t.Run(fetch, func(t *testing.T) {
			half := 0
			for seed := uint64(1); seed <= 12; seed++ {
				spec := testkit.Load(t, "text-poke-bp-nosync", map[string]uint64{"mode": 1})
				spec.Quirks.Fetch = fetch
				// Torn code may be anything: a run that ends on an
				// instruction the interpreter lacks still shows what ran.
				r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: seed}, Analyzers: []analyze.Analyzer{mustSelect(t, "cmc")}})
				if err != nil {
					t.Fatal(err)
				}
				if r.Run.Err != nil {
					t.Logf("seed %d: %v", seed, r.Run.Err)
				}
				for _, f := range r.Analysis.Findings {
					if strings.Contains(f.Message, "half-written") {
						half++
					}
				}
			}
			if (half > 0) != (fetch == "torn") {
				t.Errorf("%d half-written executions reported over 12 seeds", half)
			}
		})
	}
}

// TestDefaultFetchModelShowsMissingSync: text-poke-bp-nosync written
// without a quirks.fetch line (an author who does not know which model
// shows the bug) still gets its cmc finding on every seed: the default
// model keeps stale decodes. Under coherent fetch the missing sync is
// invisible.
func TestDefaultFetchModelShowsMissingSync(t *testing.T) {
	base, err := scenario.Load(scenarios.FS, "text-poke-bp-nosync")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(base.Text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "fetch") {
			kept = append(kept, l)
		}
	}
	spec, err := scenario.Parse("nosync-default/scenario.toml", []byte(strings.Join(kept, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	spec.ELF = base.ELF
	if spec.Quirks.Fetch != "torn" {
		t.Fatalf("default fetch model %q, want torn", spec.Quirks.Fetch)
	}
	for seed := uint64(1); seed <= 3; seed++ {
		r, err := check.Run(spec, check.Options{Options: emu.Options{Seed: seed}, Analyzers: []analyze.Analyzer{mustSelect(t, "cmc")}})
		if err == nil {
			err = r.Run.Err
		}
		if err != nil {
			t.Fatal(err)
		}
		if res := r.Analysis; len(res.Findings) == 0 {
			t.Errorf("seed %d: no cmc finding with the default fetch model", seed)
		}
	}
}

// TestCMCStream: cmc's second rule. A context that executed the instruction
// at P and then the one right after it, at A, with both rewritten in
// between (serializing or not), ran across a rewrite of the code it was in
// (bpf-dispatcher-nosync): a finding. Rewriting only one of the two, A
// behind an int3 (text_poke_bp), P back to what was executed, another
// context or a handler that ended in between, or a jump elsewhere is not.
func TestCMCStream(t *testing.T) {
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	site, _ := img.Lookup("traced_fn")
	p := site.Addr // nop5
	a := p + 5     // the next instruction, 3 bytes here
	nop5 := []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}
	call := []byte{0xe8, 1, 2, 3, 4}
	nop3 := []byte{0x0f, 0x1f, 0x00}
	other := []byte{0x48, 0x89, 0xc8}
	type step struct {
		kind  format.Kind
		task  uint32
		depth uint8
		addr  uint64
		bytes []byte
		alias bool
	}
	exec := func(task uint32, depth uint8, addr uint64, b []byte) step {
		return step{kind: format.KindInsn, task: task, depth: depth, addr: addr, bytes: b}
	}
	write := func(addr uint64, alias bool, b ...byte) step {
		return step{kind: format.KindWrite, addr: addr, bytes: b, alias: alias}
	}
	ser := step{kind: format.KindSerialize}
	md := record.Meta(spec, img, spec.CPUs, 1)
	for _, tc := range []struct {
		name    string
		steps   []step
		finding bool
	}{
		{"both rewritten, then serialized",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), write(a, true, other...), ser, exec(2, 0, a, other)}, true},
		{"both rewritten by plain stores",
			[]step{exec(2, 0, p, nop5), write(p, false, call...), write(a, false, other...), ser, exec(2, 0, a, other)}, true},
		{"only P rewritten (one instruction replaced)",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), ser, exec(2, 0, a, nop3)}, false},
		{"only A rewritten",
			[]step{exec(2, 0, p, nop5), write(a, true, other...), ser, exec(2, 0, a, other)}, false},
		{"A replaced behind an int3",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), write(a, true, 0xcc), ser, write(a+1, true, other[1:]...), ser,
				write(a, true, other[0]), ser, exec(2, 0, a, other)}, false},
		{"P rewritten and put back",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), write(a, true, other...), write(p, true, nop5...), ser, exec(2, 0, a, other)}, false},
		{"another task runs A",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), write(a, true, other...), ser, exec(3, 0, a, other)}, false},
		{"a handler ended in between",
			[]step{exec(2, 1, p, nop5), {kind: format.KindIret, task: 2}, write(p, true, call...), write(a, true, other...), ser,
				exec(2, 1, a, other)}, false},
		{"the handler's interrupted context resumes",
			[]step{exec(2, 0, p, nop5), exec(2, 1, p-0x100, nop3), write(p, true, call...), write(a, true, other...),
				{kind: format.KindIret, task: 2}, ser, exec(2, 0, a, other)}, true},
		{"a jump elsewhere",
			[]step{exec(2, 0, p, nop5), write(p, true, call...), write(a+3, true, other...), ser, exec(2, 0, a+3, other)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, []analyze.Analyzer{mustSelect(t, "cmc")})
			if err != nil {
				t.Fatal(err)
			}
			mem := map[uint64]byte{}
			for i, b := range img.Bytes(p, 16) {
				mem[p+uint64(i)] = b
			}
			for seq, s := range tc.steps {
				r := &format.Row{Seq: uint64(seq) + 1, Kind: s.kind, CPU: 1, Task: s.task, Depth: s.depth, RIP: p - 0x100}
				switch s.kind {
				case format.KindWrite:
					r.CPU = 0
					r.Addr, r.HasAddr, r.Size, r.Alias = s.addr, true, uint32(len(s.bytes)), s.alias
					if s.alias {
						r.AliasAddr = slice.AliasBase + s.addr&0xfff
					}
					for i, b := range s.bytes {
						r.Old |= uint64(mem[s.addr+uint64(i)]) << (8 * i)
						r.New |= uint64(b) << (8 * i)
						mem[s.addr+uint64(i)] = b
					}
				case format.KindInsn:
					r.RIP, r.Len = s.addr, uint8(len(s.bytes))
					copy(r.Bytes[:], s.bytes)
				}
				if err := live.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			res := live.Finish()
			if got := len(res.Findings) > 0; got != tc.finding {
				t.Fatalf("finding %v, want %v: %+v", got, tc.finding, res.Findings)
			}
			if tc.finding && !strings.Contains(res.Findings[0].Message, "ran across a rewrite of the code it was in") {
				t.Errorf("message %q", res.Findings[0].Message)
			}
		})
	}
}

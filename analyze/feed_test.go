package analyze_test

import (
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/slice"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// feed hands an analyzer a hand-made event stream over a built-in
// scenario's metadata (its slice, symbols and contract), one row at a
// time, as the machine would emit it.
type feed struct {
	t    *testing.T
	img  *emu.Image
	md   format.Meta
	live *analyze.Live
	seq  uint64
	ops  map[string]uint16
}

// newFeed prepares a stream over scenario id for the named analyzer.
func newFeed(t *testing.T, id, analyzer string) *feed {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, id)
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{t: t, img: img, md: record.Meta(spec, img, spec.CPUs, 1), ops: map[string]uint16{}}
	for i, n := range f.md.OpNames {
		f.ops[n] = uint16(i)
	}
	f.live, err = analyze.NewLive(&f.md, []analyze.Analyzer{mustSelect(t, analyzer)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sym is a symbol's address plus off.
func (f *feed) sym(name string, off uint64) uint64 {
	f.t.Helper()
	s, ok := f.img.Lookup(name)
	if !ok {
		f.t.Fatalf("no symbol %s", name)
	}
	return s.Addr + off
}

// ctx is who an event runs as.
type ctx struct {
	cpu   uint16
	task  uint32
	depth uint8
}

func (f *feed) add(c ctx, r *format.Row) uint64 {
	r.Seq, r.CPU, r.Task, r.Depth = f.seq, c.cpu, c.task, c.depth
	f.seq++
	if err := f.live.Append(r); err != nil {
		f.t.Fatal(err)
	}
	return r.Seq
}

// insn retires one instruction (op is the x86asm mnemonic) at rip with
// rsp before it.
func (f *feed) insn(c ctx, rip uint64, op string, rsp uint64) uint64 {
	f.t.Helper()
	o, ok := f.ops[op]
	if !ok {
		f.t.Fatalf("no op %s", op)
	}
	return f.add(c, &format.Row{Kind: format.KindInsn, RIP: rip, Op: o, Len: 1, RSP: rsp})
}

func (f *feed) write(c ctx, rip, addr uint64, size uint32, v uint64, alias bool) uint64 {
	r := &format.Row{Kind: format.KindWrite, RIP: rip, Addr: addr, Size: size, New: v, Alias: alias}
	if alias {
		r.AliasAddr = slice.AliasBase | addr&0xfff
	}
	return f.add(c, r)
}

// percpuWrite stores v into per-CPU variable name of cpu owner.
func (f *feed) percpuWrite(c ctx, rip uint64, name string, owner uint16, v uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindWrite, RIP: rip, Addr: slice.PercpuBase | uint64(owner)<<16, Size: 8, New: v,
		Percpu: true, PercpuCPU: owner, PercpuVar: name})
}

func (f *feed) percpuRead(c ctx, rip uint64, name string, owner uint16, v uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindPercpuRead, RIP: rip, Addr: slice.PercpuBase | uint64(owner)<<16, Size: 8, New: v,
		PercpuCPU: owner, PercpuVar: name})
}

// percpuLoad is percpuRead as a version 4 trace records it: a load row
// in a per-CPU area.
func (f *feed) percpuLoad(c ctx, rip uint64, name string, owner uint16, v uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindLoad, RIP: rip, Addr: slice.PercpuBase | uint64(owner)<<16, Size: 8, New: v,
		Percpu: true, PercpuCPU: owner, PercpuVar: name})
}

// trap delivers vector from rip (the saved RIP) to handler; c is the
// context interrupted (the row carries the depth before the delivery).
func (f *feed) trap(c ctx, rip uint64, vector uint8, handler, rsp uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindTrap, RIP: rip, Vector: vector, Handler: handler, RSP: rsp, Size: 40})
}

// iret returns from the IRETQ at rip to to with rsp; c is the context
// returned to (the row carries the depth after the return).
func (f *feed) iret(c ctx, rip, to, rsp uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindIret, RIP: rip, Handler: to, RSP: rsp})
}

func (f *feed) marker(c ctx, id, v uint64) uint64 {
	return f.add(c, &format.Row{Kind: format.KindMarker, RIP: f.sym("pt_marker", 0), Service: format.Service(emu.SvcMarker), Args: [4]uint64{id, v}})
}

// service runs a native service with arguments args.
func (f *feed) service(c ctx, svc emu.ServiceID, args ...uint64) uint64 {
	r := &format.Row{Kind: format.KindService, Service: format.Service(svc)}
	copy(r.Args[:], args)
	return f.add(c, r)
}

// switchTo is the scheduler's switch on c.cpu from c.task to next.
func (f *feed) switchTo(c ctx, next uint32) uint64 {
	return f.add(c, &format.Row{Kind: format.KindSwitch, Old: uint64(c.task), New: uint64(next)})
}

func (f *feed) perm(c ctx, page uint64, pages uint32, old, new uint8) uint64 {
	return f.add(c, &format.Row{Kind: format.KindPerm, Addr: page, Size: pages, PermOld: old, PermNew: new, Service: format.Service(emu.SvcSetMemoryX)})
}

func (f *feed) finish() *analyze.Result { return f.live.Finish() }

// symExpr resolves "sym" or "sym+off".
func (f *feed) symExpr(expr string) (uint64, error) {
	return replay.NewSymbols(f.md.Symbols).Resolve(expr)
}

func haltRow() *format.Row { return &format.Row{Kind: format.KindHalt} }

// callReturn is the address right after the first CALL in function fn:
// a genuine return address of the image.
func (f *feed) callReturn(fn string) uint64 {
	f.t.Helper()
	s, ok := f.img.Lookup(fn)
	if !ok {
		f.t.Fatalf("no symbol %s", fn)
	}
	code := f.img.Bytes(s.Addr, s.Size)
	ret := uint64(0)
	slice.Walk(len(code), decodeLength(code), func(off, n int) bool {
		if in, _ := x86asm.Decode(code[off:], 64); in.Op == x86asm.CALL {
			ret = s.Addr + uint64(off+n)
			return false
		}
		return true
	})
	if ret != 0 {
		return ret
	}
	f.t.Fatalf("no call in %s", fn)
	return 0
}

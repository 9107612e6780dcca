package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
	"golang.org/x/arch/x86/x86asm"
)

// trapCheck reports exceptions no handler claimed (the oops, panic and BUG
// fault events) and handlers that returned (IRETQ) into the middle of an
// instruction. An address is an instruction boundary if an instruction has
// already started there in this run, or decoding its function from the start
// lands on it in the slice image as built or in the code bytes now (a patch
// site holding an int3 misaligns the current decode of what follows it, so
// neither view alone is enough).
type trapCheck struct {
	started map[uint64]bool // addresses some instruction has started at
}

func (*trapCheck) ID() string { return "trap" }
func (*trapCheck) Doc() string {
	return "An int3 or fault that no handler claimed (an oops, panic or BUG), or a handler that returned to a non-instruction boundary."
}
func (a *trapCheck) Start(*Context) error {
	a.started = map[uint64]bool{}
	return nil
}

func (a *trapCheck) Event(ctx *Context, r *format.Row) {
	switch r.Kind {
	case replay.KInsn:
		a.started[r.RIP] = true
	case replay.KFault:
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{r.Seq},
			Message: r.Msg,
		}, fmt.Sprintf("fault|%#x", r.RIP))
	case replay.KIret:
		if a.started[r.Handler] {
			return
		}
		if _, _, ok := boundary(ctx.St.Syms, ctx.St.Image, r.Handler); ok {
			return
		}
		start, insn, ok := boundary(ctx.St.Syms, ctx.St.Mem, r.Handler)
		if ok {
			return
		}
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.Handler, Evidence: []uint64{r.Seq},
			Message: fmt.Sprintf("iretq from %s returned to %s, inside the %d-byte instruction at %s (%s)",
				ctx.Describe(r.RIP), ctx.Describe(r.Handler), len(insn), ctx.Describe(start), hexBytes(insn)),
		}, fmt.Sprintf("iret|%#x", r.Handler))
	}
}

func (*trapCheck) Finish(*Context) {}

// boundary decodes the function containing addr from its start, on the
// code bytes in mem, and reports whether addr starts an instruction; if not
// it returns the instruction that covers it. Addresses outside any sized
// function symbol, or code that does not decode, are given the benefit of
// the doubt.
func boundary(syms *replay.Symbols, mem *replay.Memory, addr uint64) (start uint64, insn []byte, ok bool) {
	sym, found := syms.At(addr)
	if !found || sym.Size == 0 || addr == sym.Addr {
		return 0, nil, true
	}
	code := make([]byte, sym.Size+15)
	if !mem.Read(sym.Addr, code[:sym.Size]) {
		return 0, nil, true
	}
	for off := uint64(0); off < sym.Size; {
		a := sym.Addr + off
		if a == addr {
			return 0, nil, true
		}
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil || in.Len == 0 {
			return 0, nil, true
		}
		if a+uint64(in.Len) > addr {
			return a, code[off : off+uint64(in.Len)], false
		}
		off += uint64(in.Len)
	}
	return 0, nil, true
}

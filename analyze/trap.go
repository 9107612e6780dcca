package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
	"golang.org/x/arch/x86/x86asm"
)

// trapCheck reports exceptions no handler claimed (the oops, panic and BUG
// fault events) and handlers that returned (IRETQ) into the middle of an
// instruction, judged against the code bytes at the time of the return.
type trapCheck struct{}

func (*trapCheck) ID() string { return "trap" }
func (*trapCheck) Doc() string {
	return "An int3 or fault that no handler claimed (an oops, panic or BUG), or a handler that returned to a non-instruction boundary."
}
func (*trapCheck) Start(*Context) error { return nil }

func (*trapCheck) Event(ctx *Context, r *format.Row) {
	switch r.Kind {
	case replay.KFault:
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{r.Seq},
			Message: r.Msg,
		}, fmt.Sprintf("fault|%#x", r.RIP))
	case replay.KIret:
		start, insn, ok := boundary(ctx.St, r.Handler)
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
// current code bytes, and reports whether addr starts an instruction; if not
// it returns the instruction that covers it. Addresses outside any sized
// function symbol, or code that does not decode, are given the benefit of
// the doubt.
func boundary(st *replay.State, addr uint64) (start uint64, insn []byte, ok bool) {
	sym, found := st.Syms.At(addr)
	if !found || sym.Size == 0 || addr == sym.Addr {
		return 0, nil, true
	}
	code := make([]byte, sym.Size+15)
	st.Mem.Read(sym.Addr, code)
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

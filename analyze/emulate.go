package analyze

import (
	"encoding/binary"
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"golang.org/x/arch/x86/x86asm"
)

// Emulated conditional branches (part of trapCheck).
//
// An int3 handler that does not send the CPU to an out-of-line copy of
// the instruction under its int3 emulates it: it sets the saved RIP (and
// whatever else the instruction changes) in the #BP frame and returns.
// Linux's kprobes emulate every instruction that changes RIP that way
// since commit 6256e668b7af ("x86/kprobes: Use int3 instead of debug trap
// for single-step"), text_poke_bp() the instruction it installs or
// removes (int3_emulate_jmp, _call, _ret, and _jcc for a static call's
// conditional tail call). For a conditional branch the emulation decides
// between two places, and a wrong condition sends the context down the
// other path with no fault and every address a boundary: commit
// 8924779df820 ("x86/kprobes: Fix JNG/JNLE emulation") fixed a test of
// "ZF = 1 or SF != OF" written with "and", which never took a probed jle.
//
// The rule knows no handler, only the instruction: a #BP whose int3 sits
// on the first byte of a conditional branch as built (Jcc, SDM Vol. 2A
// "Jcc"), with the branch's other bytes as built in memory (a probe over
// the code, not an instruction being replaced), that the handler ends by
// an IRETQ resuming the interrupted context at the branch's target or at
// the instruction after it, must resume it at the one the flags it was
// interrupted with select (the RFLAGS saved in the #BP frame: the int3
// changes no arithmetic flag). A resumption anywhere else is not judged: an
// out-of-line copy (judged by the copy rule), a pre-handler that
// redirects the context on purpose, or the int3 found gone. LOOP, LOOPcc
// and JrCXZ, which test RCX, are not judged. An int3 in text_poke_bp()'s
// first step looks like a probe too, and its handler emulates the
// instruction going in: Linux replaces a Jcc only by a Jcc with the same
// condition (a static call's conditional tail call, retargeted), whose
// other target is neither place, so the rule holds there as well.

// emuPending is a #BP over a conditional branch as built, waiting for the
// IRETQ that resumes its context.
type emuPending struct {
	seq          uint64 // the trap row
	at           uint64 // the branch (the int3)
	next, target uint64
	taken        bool   // what the saved flags select
	flags        uint64 // the saved RFLAGS
	insn         []byte // the branch as built
	text         string // its disassembly
}

// jccTaken reports whether the conditional branch op is taken under
// flags (SDM Vol. 2A "Jcc", Table "Jcc—Jump if Condition Is Met"), and
// whether op is such a branch.
func jccTaken(op x86asm.Op, flags uint64) (taken, ok bool) {
	cf, pf, zf := flags&0x1 != 0, flags&0x4 != 0, flags&0x40 != 0
	sf, of := flags&0x80 != 0, flags&0x800 != 0
	switch op {
	case x86asm.JO:
		return of, true
	case x86asm.JNO:
		return !of, true
	case x86asm.JB:
		return cf, true
	case x86asm.JAE:
		return !cf, true
	case x86asm.JE:
		return zf, true
	case x86asm.JNE:
		return !zf, true
	case x86asm.JBE:
		return cf || zf, true
	case x86asm.JA:
		return !cf && !zf, true
	case x86asm.JS:
		return sf, true
	case x86asm.JNS:
		return !sf, true
	case x86asm.JP:
		return pf, true
	case x86asm.JNP:
		return !pf, true
	case x86asm.JL:
		return sf != of, true
	case x86asm.JGE:
		return sf == of, true
	case x86asm.JLE:
		return zf || sf != of, true
	case x86asm.JG:
		return !zf && sf == of, true
	}
	return false, false
}

// flagNames spells the flags a Jcc tests, as set in flags.
func flagNames(flags uint64) string {
	b := func(bit uint64) int {
		if flags&bit != 0 {
			return 1
		}
		return 0
	}
	return fmt.Sprintf("CF=%d PF=%d ZF=%d SF=%d OF=%d", b(0x1), b(0x4), b(0x40), b(0x80), b(0x800))
}

// emuTrap notes a #BP whose int3 covers a conditional branch as built.
func (a *trapCheck) emuTrap(ctx *Context, r *format.Row) {
	k := ctxKey{cpu: r.CPU, task: r.Task, depth: r.Depth}
	delete(a.emu, k)
	if r.Vector != 3 || r.RIP == 0 {
		return
	}
	at := r.RIP - 1
	st := ctx.St
	var built [15]byte
	n := len(built)
	for n > 0 && !st.Image.Read(at, built[:n]) {
		n--
	}
	if n == 0 || built[0] == 0xcc {
		return
	}
	in, err := x86asm.Decode(built[:n], 64)
	if err != nil {
		return
	}
	// The saved RFLAGS, in the frame the delivery pushed (its write rows
	// come before the trap row): RIP, CS, RFLAGS, RSP, SS up from the RSP
	// after the delivery, #BP pushing no error code.
	var fb [8]byte
	if !st.Mem.Read(r.RSP+16, fb[:]) {
		return
	}
	flags := binary.LittleEndian.Uint64(fb[:])
	taken, ok := jccTaken(in.Op, flags)
	rel, isRel := in.Args[0].(x86asm.Rel)
	if !ok || !isRel {
		return
	}
	now := make([]byte, in.Len)
	if !st.Mem.Read(at, now) || now[0] != 0xcc || string(now[1:]) != string(built[1:in.Len]) {
		return // not an int3 over the branch as built
	}
	next := at + uint64(in.Len)
	a.emu[k] = emuPending{
		seq: r.Seq, at: at, next: next, target: next + uint64(int64(rel)), taken: taken, flags: flags,
		insn: append([]byte(nil), built[:in.Len]...), text: x86asm.GNUSyntax(in, at, nil),
	}
}

// emuIret judges the IRETQ that resumes a context noted by emuTrap.
func (a *trapCheck) emuIret(ctx *Context, r *format.Row) {
	k := ctxKey{cpu: r.CPU, task: r.Task, depth: r.Depth}
	p, ok := a.emu[k]
	if !ok {
		return
	}
	delete(a.emu, k)
	if p.next == p.target || (r.Handler != p.next && r.Handler != p.target) {
		return
	}
	want, went := p.next, "the instruction after it"
	if p.taken {
		want = p.target
	}
	if r.Handler == want {
		return
	}
	if r.Handler == p.target {
		went = "the branch target"
	}
	sel := "do not take the branch"
	if p.taken {
		sel = "take the branch"
	}
	ctx.Report(Finding{
		CPU: int(r.CPU), Task: r.Task, Context: contextName(r), SeqFirst: p.seq, SeqLast: r.Seq, RIP: p.at,
		Evidence: []uint64{p.seq, r.Seq},
		Message: fmt.Sprintf("cpu%d hit the int3 at %s over the conditional branch %s (%s, as built), and the #BP handler's IRETQ resumed it at %s, %s; the flags it was interrupted with (rflags %#x: %s) %s, to %s: the handler's emulation of the branch went the other way",
			r.CPU, ctx.Describe(p.at), p.text, hexBytes(p.insn), ctx.Describe(r.Handler), went, p.flags, flagNames(p.flags), sel, ctx.Describe(want)),
	}, fmt.Sprintf("emu|%#x|%#x", p.at, r.Handler))
}

package analyze

import (
	"fmt"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// wx enforces W^X (mail 001 of docs/background.md, Mark Rutland: "Please do not break W^X"):
//   - no page may be writable and executable at once (from the slice image
//     or after a permission change);
//   - no store may reach an executable page except through the text-poke
//     alias;
//   - no instruction may execute from a writable page.
//
// A scenario that starts in early boot (contract.boot_until_marker) is
// held to the kernel's own boot-time rule instead until that marker: early
// boot writes text directly (text_poke_early()) and runs text and
// boot-time trampolines that are still writable, and the kernel checks
// W^X once, at the end of boot (mark_rodata_ro() runs CONFIG_DEBUG_WX's
// scan: "Found insecure W+X mapping"). So before the marker nothing is
// reported; at it, every page still writable and executable is; after it,
// all three rules hold. (Upstream commit 59566b0b622e, "x86/ftrace: Have
// ftrace trampolines turn read-only at the end of system boot up", keeps
// boot-time trampolines writable until then for exactly this reason.)
type wx struct {
	bootMarker uint64 // contract.boot_until_marker; 0: none
	booting    bool   // before the first pt_marker(bootMarker, ...)
}

func (*wx) ID() string { return "wx" }
func (*wx) Doc() string {
	return "A page that is writable and executable at once, a store to an executable page not through the text-poke alias, or execution from a writable page."
}

func (a *wx) Start(ctx *Context) error {
	a.bootMarker, a.booting = 0, false
	if ctx.St.Spec != nil && ctx.St.Spec.Contract.BootUntilMarker != 0 {
		// The image's pages are checked at the end of boot, with the rest.
		a.bootMarker, a.booting = ctx.St.Spec.Contract.BootUntilMarker, true
		return nil
	}
	// Pages the slice image maps rwx from the start.
	ctx.St.Mem.Mapped(func(vpn, n uint64, perm uint8) {
		if perm&(replay.PermW|replay.PermX) != replay.PermW|replay.PermX {
			return
		}
		for i := uint64(0); i < n; i++ {
			addr := (vpn + i) << 12
			ctx.Report(Finding{RIP: addr, Message: fmt.Sprintf("the slice image maps page %#x (%s) writable and executable", addr, ctx.Describe(addr))},
				fmt.Sprintf("rwx|%#x", addr))
		}
	})
	return nil
}

func (a *wx) Needs() Needs {
	if a.bootMarker != 0 {
		return Needs{Kinds: []format.Kind{format.KindPerm, format.KindWrite, format.KindInsn, format.KindMarker},
			Columns: []int{format.ColAlias, format.ColPermNew, format.ColPermOld, format.ColService, format.ColAddr, format.ColSize, format.ColArg0}}
	}
	return Needs{Kinds: []format.Kind{format.KindPerm, format.KindWrite, format.KindInsn},
		Columns: []int{format.ColAlias, format.ColPermNew, format.ColPermOld, format.ColService, format.ColAddr, format.ColSize}}
}

// endOfBoot reports every page still writable and executable when boot
// ends (the marker row r), as the kernel's W+X scan at mark_rodata_ro()
// does, naming the last permission change that left it so.
func (a *wx) endOfBoot(ctx *Context, r *format.Row) {
	a.booting = false
	ctx.St.Mem.Mapped(func(vpn, n uint64, perm uint8) {
		if perm&(replay.PermW|replay.PermX) != replay.PermW|replay.PermX {
			return
		}
		for i := uint64(0); i < n; i++ {
			addr := (vpn + i) << 12
			ctx.Report(Finding{
				CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: addr, Evidence: []uint64{r.Seq},
				Message: fmt.Sprintf("page %#x (%s) is still %s at the end of boot (pt_marker(%d)): writable and executable after mark_rodata_ro(), where the kernel's W+X check reports it",
					addr, ctx.Describe(addr), format.PermString(perm), a.bootMarker),
			}, fmt.Sprintf("rwx|%#x", addr))
		}
	})
}

func (a *wx) Event(ctx *Context, r *format.Row) {
	st := ctx.St
	if a.booting {
		if r.Kind == format.KindMarker && r.Args[0] == a.bootMarker {
			a.endOfBoot(ctx, r)
		}
		return
	}
	switch r.Kind {
	case format.KindPerm:
		if r.Alias || r.PermNew&(replay.PermW|replay.PermX) != replay.PermW|replay.PermX {
			return
		}
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{r.Seq},
			Message: fmt.Sprintf("%s made page %#x %s: writable and executable at once (was %s)",
				r.Service, r.Addr, format.PermString(r.PermNew), format.PermString(r.PermOld)),
		}, fmt.Sprintf("rwx|%#x", r.Addr))
	case format.KindWrite:
		if r.Alias || st.Mem.Perm(r.Addr)&replay.PermX == 0 {
			return
		}
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{r.Seq},
			Message: fmt.Sprintf("store to executable %s (%d bytes) not through the text-poke alias", ctx.Describe(r.Addr), r.Size),
		}, fmt.Sprintf("store|%#x|%#x", r.RIP, r.Addr&^0xfff))
	case format.KindInsn:
		if st.Mem.Perm(r.RIP)&replay.PermW == 0 {
			return
		}
		ctx.Report(Finding{
			CPU: int(r.CPU), Task: r.Task, SeqFirst: r.Seq, SeqLast: r.Seq, RIP: r.RIP, Evidence: []uint64{r.Seq},
			Message: fmt.Sprintf("executed %s from page %#x while it is %s (writable)", ctx.Describe(r.RIP), r.RIP&^0xfff, format.PermString(st.Mem.Perm(r.RIP))),
		}, fmt.Sprintf("exec|%#x", r.RIP&^0xfff))
	}
}

func (*wx) Finish(*Context) {}

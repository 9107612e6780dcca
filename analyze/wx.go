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
type wx struct{}

func (*wx) ID() string { return "wx" }
func (*wx) Doc() string {
	return "A page that is writable and executable at once, a store to an executable page not through the text-poke alias, or execution from a writable page."
}

func (*wx) Start(ctx *Context) error {
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

func (*wx) Needs() Needs {
	return Needs{Kinds: []format.Kind{format.KindPerm, format.KindWrite, format.KindInsn},
		Columns: []int{format.ColAlias, format.ColPermNew, format.ColPermOld, format.ColService, format.ColAddr, format.ColSize}}
}

func (*wx) Event(ctx *Context, r *format.Row) {
	st := ctx.St
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

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

const eventsAbout = "Lists the events of trace FILE, one line per event in sequence order, as perf script\n" +
	"lists samples: seq, cpu, task, trap depth, kind, where (rip as symbol+offset), the\n" +
	"instruction in AT&T syntax as objdump prints it (insn rows), and what the event read,\n" +
	"wrote or changed: registers (\"rax 0x0 -> 0x1\"; \"rax = 0x1\" when the listing\n" +
	"started after the register's previous value), loads (\"load [cpu_bp@cpu1] = 0x0\n" +
	"(stored at seq N by cpu2)\": the last store to its bytes the listing read, else the\n" +
	"slice image), " +
	"stores (\"store [x] 0x0 -> 0x1\", \"store via alias 0xALIAS [text] ...\"), traps,\n" +
	"iretq, permission changes, services with their arguments and result, markers.\n" +
	"Per-CPU addresses read var+off@cpuN. Registers and loads are in traces of format\n" +
	"version 4 recorded without --no-regs / --no-loads.\n" +
	"Filters (all must hold): --cpu, --task and --kind take comma-separated lists;\n" +
	"--sym NAME lists the events whose rip is in symbol NAME; --from/--to a sequence\n" +
	"range; --addr ADDR[:LEN] (an address or symbol[+off]; LEN defaults to the symbol's\n" +
	"size, else 1) the events touching those bytes: stores and loads overlapping them\n" +
	"(through the text-poke alias too), instructions whose bytes overlap them, permission\n" +
	"changes of their pages; --around SEQ[:N] the events from SEQ-N to SEQ+N (N\n" +
	"defaults to 10). --from and --around seek to the batch holding their first event\n" +
	"instead of reading the file from its start. --regs adds after each event its CPU's\n" +
	"whole register file (a listing that starts mid-file first reads the trace from its\n" +
	"start to know them). --json prints one JSON object per line\n" +
	"(addresses and values as hex strings), with \"source\": the rip's file:line from the\n" +
	"DWARF line table of the slice ELF the trace carries; --src ends each text line\n" +
	"with \"@ file:line\".\n" +
	"It streams: constant memory, the first line at once; a closed pipe (| head) ends it\n" +
	"quietly. A truncated or damaged file is listed up to its last readable event, then\n" +
	"an error says where it ends.\n" +
	"Exit status: 0 listed, 2 error (the file could not be read to the end of the range)."

// eventFilter is what `events` keeps.
type eventFilter struct {
	cpus, tasks map[uint64]bool
	kinds       map[format.Kind]bool
	syms        []format.Symbol
	from, to    uint64
	addrLo      uint64
	addrHi      uint64 // exclusive; 0: no --addr
}

func (f *eventFilter) keep(r *format.Row) bool {
	if r.Seq < f.from || r.Seq > f.to {
		return false
	}
	if f.cpus != nil && !f.cpus[uint64(r.CPU)] {
		return false
	}
	if f.tasks != nil && !f.tasks[uint64(r.Task)] {
		return false
	}
	if f.kinds != nil && !f.kinds[r.Kind] {
		return false
	}
	if f.syms != nil {
		in := false
		for _, s := range f.syms {
			if r.RIP >= s.Addr && r.RIP < s.Addr+max(s.Size, 1) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if f.addrHi != 0 && !f.touches(r) {
		return false
	}
	return true
}

// overlaps reports whether [a, a+n) meets the filter's byte range.
func (f *eventFilter) overlaps(a, n uint64) bool {
	return n > 0 && a < f.addrHi && a+n > f.addrLo
}

func (f *eventFilter) touches(r *format.Row) bool {
	switch r.Kind {
	case format.KindInsn:
		return f.overlaps(r.RIP, uint64(r.Len))
	case format.KindWrite:
		return f.overlaps(r.Addr, uint64(r.Size)) || (r.Alias && f.overlaps(r.AliasAddr, uint64(r.Size)))
	case format.KindPerm:
		lo := r.Addr &^ 0xfff
		if r.Alias {
			return f.overlaps(lo, 4096) || f.overlaps(r.AliasAddr&^0xfff, 4096)
		}
		return f.overlaps(lo, uint64(r.Size)*4096)
	case format.KindTrap, format.KindIret, format.KindSerialize, format.KindSwitch, format.KindService,
		format.KindMarker, format.KindFault, format.KindInject, format.KindHalt:
		return false
	}
	// percpu_read, load: a read of Size bytes at Addr.
	return r.HasAddr && f.overlaps(r.Addr, uint64(r.Size))
}

func parseUintList(s, what string) (map[uint64]bool, error) {
	if s == "" {
		return nil, nil
	}
	m := map[uint64]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimPrefix(strings.TrimSpace(p), what)
		v, err := strconv.ParseUint(p, 0, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s number", p, what)
		}
		m[v] = true
	}
	return m, nil
}

func cmdEvents(env *cmdEnv, args []string) int {
	fs := newFlags(env, "events")
	cpus := fs.String("cpu", "", "only these CPUs (comma-separated: 0,2)")
	tasks := fs.String("task", "", "only these tasks (comma-separated ids)")
	kinds := fs.String("kind", "", "only these kinds (comma-separated: insn,write,trap; see docs/trace-format.md)")
	syms := fs.String("sym", "", "only events whose rip is in these symbols (comma-separated)")
	from := fs.Uint64("from", 0, "first sequence number")
	to := fs.Uint64("to", ^uint64(0), "last sequence number")
	addr := fs.String("addr", "", "only events touching ADDR[:LEN] (address or symbol[+off]; LEN: the symbol's size, else 1)")
	around := fs.String("around", "", "only events SEQ-N..SEQ+N (SEQ[:N], N defaults to 10)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	regs := fs.Bool("regs", false, "after each event, its CPU's whole register file")
	src := fs.Bool("src", false, "end each line with \"@ file:line\", the rip's source line")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageErr(env, fs, "events: %s", oneFile(pos))
	}
	f := eventFilter{from: *from, to: *to}
	var err error
	if f.cpus, err = parseUintList(*cpus, "cpu"); err != nil {
		return usageErr(env, fs, "events: --cpu: %v", err)
	}
	if f.tasks, err = parseUintList(*tasks, "task"); err != nil {
		return usageErr(env, fs, "events: --task: %v", err)
	}
	if *kinds != "" {
		f.kinds = map[format.Kind]bool{}
		for _, k := range strings.Split(*kinds, ",") {
			k = strings.TrimSpace(k)
			found := false
			var names []string
			for _, ki := range format.Kinds {
				names = append(names, ki.Name)
				if ki.Name == k {
					f.kinds[ki.Kind], found = true, true
				}
			}
			if !found {
				return usageErr(env, fs, "events: --kind: no kind %q (kinds: %s)", k, strings.Join(names, ", "))
			}
		}
	}
	if *around != "" {
		s, n, _ := strings.Cut(*around, ":")
		center, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return usageErr(env, fs, "events: --around %s: %q is not a sequence number", *around, s)
		}
		width := uint64(10)
		if n != "" {
			if width, err = strconv.ParseUint(n, 0, 32); err != nil {
				return usageErr(env, fs, "events: --around %s: %q is not a number of events", *around, n)
			}
		}
		f.from = max(f.from, center-min(center, width))
		if center+width >= center {
			f.to = min(f.to, center+width)
		}
	}
	if f.from > f.to {
		return usageErr(env, fs, "events: --from %d is after --to %d", f.from, f.to)
	}
	path := pos[0]
	r, err := format.Open(path)
	if err != nil {
		return errorf(env, "events: %v", err)
	}
	defer r.Close()
	for c := range f.cpus {
		if n := r.Meta().CPUs; c >= uint64(n) {
			// An empty listing would read as "no such events" (CPUs
			// count from 0: a trace of 4 CPUs has cpu0..cpu3).
			return usageErr(env, fs, "events: --cpu %d: the trace has %d CPUs (cpu0..cpu%d)", c, n, n-1)
		}
	}
	table := replay.MetaSymbols(r.Meta())
	if *syms != "" {
		f.syms = []format.Symbol{}
		for _, name := range strings.Split(*syms, ",") {
			s, ok := table.Lookup(strings.TrimSpace(name))
			if !ok {
				return usageErr(env, fs, "events: --sym: the trace has no symbol %q", name)
			}
			f.syms = append(f.syms, s)
		}
	}
	if *addr != "" {
		if f.addrLo, f.addrHi, err = parseAddrRange(table, *addr); err != nil {
			return usageErr(env, fs, "events: --addr %s: %v", *addr, err)
		}
	}
	if isOSStdout(env.stdout) {
		// A closed pipe (| head) must end the listing with an error from
		// Write, not kill the process with SIGPIPE.
		signal.Ignore(syscall.SIGPIPE)
	}
	if *regs && !r.Meta().Regs {
		return errorf(env, "events: --regs: %s records no registers (format version %d%s)", path, r.Meta().Version,
			map[bool]string{true: ", recorded with --no-regs"}[r.Meta().Version >= 4])
	}
	return listEvents(env, r, path, &f, *asJSON, *regs, *src, table)
}

// parseAddrRange reads ADDR[:LEN]: ADDR a number or symbol[+off], LEN the
// symbol's size when ADDR is a bare sized symbol, else 1.
func parseAddrRange(table *replay.Symbols, s string) (lo, hi uint64, err error) {
	a, l, hasLen := strings.Cut(s, ":")
	lo, err = table.Resolve(a)
	if err != nil {
		return 0, 0, err
	}
	n := uint64(1)
	if hasLen {
		if n, err = strconv.ParseUint(l, 0, 64); err != nil || n == 0 {
			return 0, 0, fmt.Errorf("%q is not a length in bytes", l)
		}
	} else if sym, ok := table.Lookup(a); ok && sym.Size > 0 {
		n = sym.Size
	}
	hi = lo + n
	if hi < lo {
		hi = ^uint64(0)
	}
	return lo, hi, nil
}

// listEvents prints the rows f keeps. It returns the exit status.
func listEvents(env *cmdEnv, r *format.Reader, path string, f *eventFilter, asJSON, regs, src bool, table *replay.Symbols) int {
	w := bufio.NewWriterSize(env.stdout, 64<<10)
	md := r.Meta()
	et := replay.NewEventText(table, r.OpName, md.CPUs)
	et.Source = src
	first, err := r.Seek(f.from)
	if err != nil {
		return errorf(env, "events: %v", err)
	}
	if first == 0 {
		et.FromStart()
	} else if regs && first < r.NumBatches() {
		// The registers where the listing's first batch starts, from
		// the trace (a Cursor: read from the start, once).
		info, err := r.BatchInfo(first)
		if err != nil {
			return errorf(env, "events: %v", err)
		}
		c, err := replay.NewCursor(r, nil)
		if err != nil {
			return errorf(env, "events: %v", err)
		}
		if info.FirstSeq > 0 {
			if err := c.Seek(info.FirstSeq - 1); err != nil && !errors.Is(err, replay.ErrNoEvent) {
				c.Close()
				return errorf(env, "events: %v", err)
			}
		}
		for cpu := range md.CPUs {
			et.SetRegs(cpu, c.Regs(cpu))
		}
		c.Close()
	}
	var (
		row     format.Row
		last    uint64 // the last row read
		read    bool
		printed bool
		werr    error
	)
	finish := func() int {
		if werr == nil {
			werr = w.Flush()
		}
		if werr != nil {
			if errors.Is(werr, syscall.EPIPE) {
				return exitOK
			}
			return errorf(env, "events: %v", werr)
		}
		return exitOK
	}
	ended := func(err error) int {
		if code := finish(); werr != nil {
			return code
		}
		where := "before its first event"
		if read {
			where = fmt.Sprintf("after seq %d", last)
		}
		return errorf(env, "events: %s: the readable events end %s: %v", path, where, err)
	}
	for i := first; i < r.NumBatches(); i++ {
		b, err := r.Batch(i)
		if err != nil {
			return ended(err)
		}
		for j := 0; j < b.Len(); j++ {
			b.Row(j, &row)
			last, read = row.Seq, true
			if row.Seq > f.to {
				b.Release()
				return finish()
			}
			if !f.keep(&row) {
				et.Observe(&row)
				continue
			}
			switch {
			case asJSON && regs:
				w.Write(et.JSONRegs(&row))
			case asJSON:
				w.Write(et.JSON(&row))
			default:
				w.WriteString(et.Line(&row))
				if regs {
					w.WriteString("\n          ")
					w.WriteString(et.RegFileText(row.CPU))
				}
			}
			if werr = w.WriteByte('\n'); werr == nil && !printed {
				werr = w.Flush() // the first line at once
				printed = true
			}
			if werr != nil {
				b.Release()
				return finish()
			}
		}
		b.Release()
		if werr = w.Flush(); werr != nil {
			return finish()
		}
	}
	if r.Truncated() {
		return ended(r.TruncatedError())
	}
	return finish()
}

package gdbserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// Finding is what `monitor finding K` needs of an analyzer finding: its
// first event and a one-line summary.
type Finding struct {
	Seq     uint64
	Summary string
}

// Config configures a Server.
type Config struct {
	// Reader is the trace; the server reads it only (and alone: nothing
	// else may use the reader while the server does).
	Reader *format.Reader
	// Findings runs the analyzers over the trace, for `monitor finding`
	// (nil: the command says findings are not available). Called at most
	// once, when first needed.
	Findings func() ([]Finding, error)
	// FindingsNote, when not nil, is asked after Findings: why the
	// analysis is incomplete ("" when it is not: a run stopped on an
	// unsupported instruction, a truncated trace, events missing).
	// monitor finding prints it, so no finding is not read as clean.
	FindingsNote func() string
	// Progress, when not nil, is called as New reads the trace through.
	Progress func(batch, batches int)
	// Log, when not nil, receives one line per protocol problem
	// (malformed packets, dropped connections).
	Log io.Writer
}

// Server serves one recorded run to gdb clients, one at a time. The
// position, like the recorded run, is shared by the sessions: a client
// that reconnects finds the run where it left it.
type Server struct {
	cfg Config
	t   *target

	findings    []Finding
	findingsErr error
	findingsRun bool

	// Per session.
	c       *conn
	gThread int // the thread 'g', 'p' and 'm' read (Hg), a CPU
	cThread int // the thread 'c' and 's' resume (Hc), -1: the last stopped
	last    stop
}

// New reads the trace through once (taking the seek snapshots) and
// returns a server positioned before the trace's first instruction.
func New(cfg Config) (*Server, error) {
	if cfg.Reader == nil {
		return nil, errors.New("gdbserver: no trace")
	}
	t, err := newTarget(cfg.Reader, cfg.Progress)
	if err != nil {
		return nil, fmt.Errorf("gdbserver: %w", err)
	}
	s := &Server{cfg: cfg, t: t}
	// The first stop is the first instruction's CPU.
	_ = t.cur.Scan(func(r *format.Row) bool {
		if isStepRow(r) {
			s.last = stop{cpu: int(r.CPU)}
			return false
		}
		return true
	})
	return s, nil
}

// Close releases the batches the server holds (not the reader).
func (s *Server) Close() {
	s.t.batches.close()
	s.t.cur.Close()
}

// Position returns the sequence number of the last event applied (false:
// before the first event) and the CPU of the last stop.
func (s *Server) Position() (seq uint64, at bool, cpu int) {
	seq, at = s.t.pos()
	return seq, at, s.last.cpu
}

func (s *Server) logf(format string, a ...any) {
	if s.cfg.Log != nil {
		fmt.Fprintf(s.cfg.Log, "patchtrace debug: "+format+"\n", a...)
	}
}

// errSessionEnd ends a session (gdb detached or killed the target).
var errSessionEnd = errors.New("session ended")

// Serve runs one gdb session over rw until gdb detaches, kills the target
// or disconnects. It returns nil for a session gdb ended and the
// connection's error otherwise (io.EOF: gdb went away mid-session).
func (s *Server) Serve(rw io.ReadWriter) error {
	s.c = newConn(rw, s.logf)
	s.gThread, s.cThread = s.last.cpu, -1
	s.t.bps = map[uint64]bool{}
	s.t.watches = nil
	for {
		pkt, err := s.c.readPacket()
		if errors.Is(err, errInterrupt) {
			// Nothing runs between packets (a resume replies when its
			// scan ends): a ^C arriving now was for a resume that has
			// already stopped and replied. A second stop reply would be
			// one gdb does not expect.
			s.logf("interrupt while stopped: ignored")
			continue
		}
		if err != nil {
			return err
		}
		reply, err := s.handle(string(pkt))
		if errors.Is(err, errNoReply) {
			continue
		}
		if errors.Is(err, errSessionEnd) {
			if reply != "" {
				s.c.writeString(reply)
			}
			return nil
		}
		if err != nil {
			// A failure reading the trace: say so, and go on.
			s.logf("%v", err)
			reply = "E01"
		}
		if err := s.c.writeString(reply); err != nil {
			return err
		}
	}
}

// tid is a CPU's gdb thread id.
func tid(cpu int) string { return strconv.FormatInt(int64(cpu+1), 16) }

// parseThread reads a thread id: a CPU (ok), or any/all (-1).
func (s *Server) parseThread(p string) (int, bool) {
	if p == "-1" || p == "0" {
		return -1, true
	}
	if i := strings.IndexByte(p, '.'); i >= 0 && strings.HasPrefix(p, "p") {
		p = p[i+1:] // multiprocess pPID.TID
	}
	v, err := parseHex(p)
	if err != nil || v < 1 || v > uint64(s.t.ncpu) {
		return 0, false
	}
	return int(v - 1), true
}

// supported is the qSupported reply.
const supported = "PacketSize=10000;QStartNoAckMode+;qXfer:features:read+;qXfer:threads:read+;" +
	"swbreak+;hwbreak+;vContSupported+;ReverseContinue+;ReverseStep+"

// handle answers one packet. Unknown and malformed packets get an empty
// reply (unknown) or an error (malformed); nothing a client sends stops
// the server but errSessionEnd.
func (s *Server) handle(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	switch p[0] {
	case '?':
		return s.stopReply(s.last), nil
	case 'q':
		return s.query(p)
	case 'Q':
		if p == "QStartNoAckMode" {
			// The OK still goes with acks; after it, none.
			if err := s.c.writeString("OK"); err != nil {
				return "", err
			}
			s.c.noAck = true
			return "", errNoReply
		}
		return "", nil
	case 'H':
		if len(p) < 2 {
			return "E01", nil
		}
		cpu, ok := s.parseThread(p[2:])
		if !ok {
			return "E01", nil
		}
		switch p[1] {
		case 'g':
			if cpu < 0 {
				cpu = s.last.cpu
			}
			s.gThread = cpu
		case 'c':
			s.cThread = cpu
		default:
			return "E01", nil
		}
		return "OK", nil
	case 'T':
		if _, ok := s.parseThread(p[1:]); ok {
			return "OK", nil
		}
		return "E01", nil
	case 'g':
		var b []byte
		for i := range registers {
			b = s.t.appendReg(b, s.gThread, i)
		}
		return string(b), nil
	case 'p':
		n, err := parseHex(p[1:])
		if err != nil || n >= uint64(len(registers)) {
			return "E01", nil
		}
		return string(s.t.appendReg(nil, s.gThread, int(n))), nil
	case 'm':
		return s.readMem(p[1:]), nil
	case 'M', 'X', 'G', 'P':
		return "E01", nil // the recorded run is read-only
	case 'Z', 'z':
		return s.breakpoint(p), nil
	case 'c', 'C':
		return s.resume('c', s.resumeCPU())
	case 's', 'S':
		return s.resume('s', s.resumeCPU())
	case 'b':
		switch p {
		case "bc":
			return s.resume('C', s.resumeCPU())
		case "bs":
			return s.resume('S', s.resumeCPU())
		}
		return "", nil
	case 'v':
		return s.vPacket(p)
	case 'D':
		return "OK", errSessionEnd
	case 'k':
		return "", errSessionEnd
	}
	return "", nil
}

// errNoReply: the handler has replied already.
var errNoReply = errors.New("replied")

func (s *Server) resumeCPU() int {
	if s.cThread >= 0 {
		return s.cThread
	}
	return s.last.cpu
}

func (s *Server) vPacket(p string) (string, error) {
	switch {
	case p == "vCont?":
		return "vCont;c;C;s;S", nil
	case strings.HasPrefix(p, "vCont;"):
		// The first action names what runs: "s:2" steps thread 2; a "c"
		// anywhere continues (time is global: every CPU runs).
		cpu := s.resumeCPU()
		mode := byte(0)
		for _, a := range strings.Split(p[len("vCont;"):], ";") {
			act, th, hasTh := strings.Cut(a, ":")
			if act == "" {
				return "E01", nil
			}
			k := act[0]
			if k == 'C' || k == 'S' {
				k += 'a' - 'A' // signals are not delivered: the run is recorded
			}
			if k != 'c' && k != 's' {
				return "E01", nil
			}
			if mode != 0 {
				continue
			}
			mode = k
			if hasTh {
				c, ok := s.parseThread(th)
				if !ok {
					return "E01", nil
				}
				if c >= 0 {
					cpu = c
				}
			}
		}
		return s.resume(mode, cpu)
	case strings.HasPrefix(p, "vKill"):
		return "OK", errSessionEnd
	case p == "vMustReplyEmpty":
		return "", nil
	}
	return "", nil
}

// resume runs: 'c' continue, 's' step, 'C' reverse continue, 'S'
// reverse step.
func (s *Server) resume(mode byte, cpu int) (string, error) {
	var st stop
	var err error
	switch mode {
	case 'c':
		st, err = s.t.cont(cpu)
	case 's':
		st, err = s.t.step(cpu)
	case 'C':
		st, err = s.t.reverseCont(cpu)
	case 'S':
		st, err = s.t.stepBack(cpu)
	}
	if err != nil {
		return "", err
	}
	s.last = st
	// gdb takes the stop reply's thread as the one its next register and
	// memory reads are of (remote.c record_currthread), without an Hg.
	s.gThread = st.cpu
	return s.stopReply(st), nil
}

func (s *Server) stopReply(st stop) string {
	return "T05thread:" + tid(st.cpu) + ";core:" + strconv.FormatInt(int64(st.cpu), 16) + ";" + st.reason
}

// readMem answers m ADDR,LEN: the bytes as they were at the position, up
// to the first unmapped page (an error when the first byte is on one).
func (s *Server) readMem(args string) string {
	a, l, ok := strings.Cut(args, ",")
	addr, err1 := parseHex(a)
	n, err2 := parseHex(l)
	if !ok || err1 != nil || err2 != nil {
		return "E01"
	}
	n = min(n, maxPacket/2-16)
	buf := make([]byte, n)
	got := 0
	for got < len(buf) {
		at := addr + uint64(got)
		end := min(uint64(len(buf)), uint64(got)+(4096-at%4096))
		if !s.t.cur.ReadMemory(at, buf[got:end]) {
			break
		}
		got = int(end)
	}
	if got == 0 && n > 0 {
		return "E14" // EFAULT
	}
	return string(appendHex(nil, buf[:got]))
}

// breakpoint answers Z/z TYPE,ADDR,KIND.
func (s *Server) breakpoint(p string) string {
	on := p[0] == 'Z'
	f := strings.Split(p[1:], ",")
	if len(f) < 3 || len(f[0]) != 1 {
		return "E01"
	}
	addr, err1 := parseHex(f[1])
	kind, err2 := parseHex(strings.SplitN(f[2], ";", 2)[0])
	if err1 != nil || err2 != nil {
		return "E01"
	}
	switch f[0][0] {
	case '0', '1':
		if on {
			if len(s.t.bps) >= MaxBreakpoints && !s.t.bps[addr] {
				return "E0c" // ENOMEM: gdb says it could not insert it
			}
			s.t.bps[addr] = true
		} else {
			delete(s.t.bps, addr)
		}
		return "OK"
	case '2', '3', '4':
		if f[0][0] != '2' && !s.t.hasLoads {
			// The trace has no load events: a read watchpoint would
			// never fire, which would say nothing read the memory.
			return ""
		}
		if f[0][0] != '2' {
			// Nor are they believed when the rows contradict the
			// claim (loads missing): refused the same way.
			if p, err := s.t.recordedProblem(); err != nil || p != "" {
				if err == nil {
					err = fmt.Errorf("the trace contradicts its metadata: %s", p)
				}
				s.logf("read and access watchpoints refused: %v", err)
				return ""
			}
		}
		if kind == 0 {
			return "E01"
		}
		if !s.t.setWatch(watch{kind: f[0][0], addr: addr, n: kind}, on) {
			return "E0c" // ENOMEM: gdb says it could not insert it
		}
		return "OK"
	}
	return ""
}

// query answers the q packets.
func (s *Server) query(p string) (string, error) {
	name, args, _ := strings.Cut(p, ":")
	if i := strings.IndexByte(name, ','); i >= 0 {
		name, args = p[:i], p[i+1:]
	}
	switch name {
	case "qSupported":
		return supported, nil
	case "qAttached":
		return "1", nil
	case "qC":
		return "QC" + tid(s.last.cpu), nil
	case "qfThreadInfo":
		var ids []string
		for c := 0; c < s.t.ncpu; c++ {
			ids = append(ids, tid(c))
		}
		return "m" + strings.Join(ids, ","), nil
	case "qsThreadInfo":
		return "l", nil
	case "qThreadExtraInfo":
		cpu, ok := s.parseThread(args)
		if !ok || cpu < 0 {
			return "E01", nil
		}
		return string(appendHex(nil, []byte(s.threadInfo(cpu)))), nil
	case "qSymbol":
		return "OK", nil
	case "qXfer":
		return s.xfer(args), nil
	case "qRcmd":
		cmd, err := decodeHex(args)
		if err != nil {
			return "E01", nil
		}
		return s.monitor(string(cmd))
	}
	return "", nil
}

// threadInfo is a CPU's extra info for `info threads`.
func (s *Server) threadInfo(cpu int) string {
	c, _ := s.t.cur.CPU(cpu)
	info := fmt.Sprintf("cpu%d task %d trap depth %d", cpu, c.Task, c.Depth)
	if pc, ok := s.t.pc(cpu); ok {
		info += " at " + s.t.syms.Describe(pc)
	} else {
		info += ", no further instruction in the trace"
	}
	return info
}

// xfer answers qXfer:OBJECT:read:ANNEX:OFF,LEN.
func (s *Server) xfer(args string) string {
	f := strings.SplitN(args, ":", 4)
	if len(f) != 4 || f[1] != "read" {
		return ""
	}
	var doc string
	switch {
	case f[0] == "features" && f[2] == "target.xml":
		doc = targetXML
	case f[0] == "features":
		return "E00"
	case f[0] == "threads":
		var b strings.Builder
		b.WriteString("<?xml version=\"1.0\"?>\n<threads>\n")
		for c := 0; c < s.t.ncpu; c++ {
			fmt.Fprintf(&b, "<thread id=\"%s\" core=\"%d\" name=\"cpu%d\">%s</thread>\n", tid(c), c, c, xmlEscape(s.threadInfo(c)))
		}
		b.WriteString("</threads>\n")
		doc = b.String()
	default:
		return ""
	}
	o, l, ok := strings.Cut(f[3], ",")
	off, err1 := parseHex(o)
	n, err2 := parseHex(l)
	if !ok || err1 != nil || err2 != nil {
		return "E01"
	}
	if off >= uint64(len(doc)) {
		return "l"
	}
	end := min(uint64(len(doc)), off+n)
	if end == uint64(len(doc)) {
		return "l" + doc[off:end]
	}
	return "m" + doc[off:end]
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// monitor runs a `monitor` command: its output goes to gdb in O packets
// (hex text), then OK.
func (s *Server) monitor(cmd string) (string, error) {
	var out strings.Builder
	err := s.runMonitor(&out, strings.Fields(cmd))
	if err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
	}
	text := out.String()
	for len(text) > 0 {
		n := min(len(text), 4000)
		if werr := s.c.writeString("O" + string(appendHex(nil, []byte(text[:n])))); werr != nil {
			return "", werr
		}
		text = text[n:]
	}
	return "OK", nil
}

// MaxMonitorEvents bounds monitor events N: the events on each side of
// the position it formats and sends in one reply.
const MaxMonitorEvents = 1000

const monitorHelp = `monitor commands (patchtrace debug):
  monitor seq [N]      go to just before event N (its CPU's thread stops there); without N, print the position
  monitor finding [K]  go to finding K's first event (1-based); without K, list the findings
  monitor events [N]   list the events around the position (patchtrace events --around SEQ:N, N defaults to 10, at most 1000)
  monitor help         this text
After seq and finding, gdb's cached registers are stale: the gdb script
patchtrace debug writes flushes them after every monitor command
(maintenance flush register-cache); select the thread it names.
`

func (s *Server) runMonitor(out *strings.Builder, f []string) error {
	if len(f) == 0 || f[0] == "help" {
		out.WriteString(monitorHelp)
		return nil
	}
	arg := func() (uint64, bool, error) {
		if len(f) < 2 {
			return 0, false, nil
		}
		v, err := strconv.ParseUint(f[1], 0, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%q is not a number", f[1])
		}
		return v, true, nil
	}
	switch f[0] {
	case "seq":
		n, ok, err := arg()
		if err != nil {
			return err
		}
		if !ok {
			s.where(out)
			return nil
		}
		return s.gotoEvent(out, n)
	case "finding":
		k, ok, err := arg()
		if err != nil {
			return err
		}
		fs, err := s.getFindings()
		if err != nil {
			return err
		}
		if !ok {
			note := ""
			if s.cfg.FindingsNote != nil {
				note = s.cfg.FindingsNote()
			}
			switch {
			case note != "":
				fmt.Fprintf(out, "the analysis is INCOMPLETE (not clean): %s\n", note)
				if len(fs) == 0 {
					out.WriteString("no findings up to there\n")
				}
			case len(fs) == 0:
				out.WriteString("no findings\n")
			}
			if s.t.hasLoads {
				p, err := s.t.recordedProblem()
				switch {
				case err != nil:
					fmt.Fprintf(out, "read and access watchpoints are refused: %v\n", err)
				case p != "":
					fmt.Fprintf(out, "read and access watchpoints are refused (they could miss reads): the trace contradicts its metadata: %s\n", p)
				}
			}
			for i, fd := range fs {
				fmt.Fprintf(out, "%d: seq %d: %s\n", i+1, fd.Seq, fd.Summary)
			}
			return nil
		}
		if k < 1 || k > uint64(len(fs)) {
			return fmt.Errorf("no finding %d (the trace has %d)", k, len(fs))
		}
		fd := fs[k-1]
		fmt.Fprintf(out, "finding %d: %s\n", k, fd.Summary)
		return s.gotoEvent(out, fd.Seq)
	case "events":
		n, ok, err := arg()
		if err != nil {
			return err
		}
		if !ok {
			n = 10
		}
		if n > MaxMonitorEvents {
			// One short packet must not make the server format (and
			// send gdb) a whole trace: 10M events are GBs of text.
			return fmt.Errorf("monitor events %d: at most %d on each side of the position (patchtrace events --around SEQ:N lists more)", n, MaxMonitorEvents)
		}
		return s.events(out, n)
	}
	return fmt.Errorf("unknown monitor command %q (monitor help lists them)", f[0])
}

func (s *Server) getFindings() ([]Finding, error) {
	if s.cfg.Findings == nil {
		return nil, errors.New("findings are not available")
	}
	if !s.findingsRun {
		s.findings, s.findingsErr = s.cfg.Findings()
		s.findingsRun = true
	}
	return s.findings, s.findingsErr
}

func (s *Server) gotoEvent(out *strings.Builder, seq uint64) error {
	cpu, err := s.t.gotoEvent(seq)
	if err != nil {
		return err
	}
	// gdb is not told (a monitor command is no stop): the thread it
	// reads stays the one it selected, until it selects another (Hg).
	s.last = stop{cpu: cpu}
	s.where(out)
	fmt.Fprintf(out, "(thread %s is cpu%d: 'thread %s' selects it)\n", tid(cpu), cpu, tid(cpu))
	return nil
}

// where prints the position.
func (s *Server) where(out *strings.Builder) {
	seq, at := s.t.pos()
	if !at {
		out.WriteString("before the first event; ")
	} else {
		fmt.Fprintf(out, "after seq %d; ", seq)
	}
	fmt.Fprintf(out, "%s\n", s.threadInfo(s.last.cpu))
}

// events lists the events around the position as `patchtrace events
// --around NEXT:n` does, NEXT the first event after the position.
func (s *Server) events(out *strings.Builder, n uint64) error {
	seq, at := s.t.pos()
	center := uint64(0)
	if at {
		center = seq + 1
	}
	from := center - min(center, n)
	to := center + n
	if to < center {
		to = ^uint64(0)
	}
	md := s.t.md
	et := replay.NewEventText(s.t.syms, s.t.r.OpName, md.CPUs)
	first, err := s.t.r.Seek(from)
	if err != nil {
		return err
	}
	var row format.Row
	marked := false
	for i := first; i < s.t.r.NumBatches(); i++ {
		b, err := s.t.r.Batch(i)
		if err != nil {
			return err
		}
		for j := 0; j < b.Len(); j++ {
			b.Row(j, &row)
			if row.Seq > to {
				b.Release()
				return nil
			}
			if row.Seq < from {
				et.Observe(&row)
				continue
			}
			if !marked && (!at || row.Seq > seq) {
				out.WriteString("--- position ---\n")
				marked = true
			}
			out.WriteString(et.Line(&row))
			out.WriteByte('\n')
		}
		b.Release()
	}
	return nil
}

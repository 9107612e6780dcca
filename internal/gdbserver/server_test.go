package gdbserver

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

var (
	traceOnce sync.Once
	traceDir  string
	traceErr  error
)

// testTrace records ftrace-int3-skip once for the package's tests, in
// small batches (so that seeks cross snapshots): with loads and register
// deltas, and (bare) without.
func testTrace(t testing.TB, bare bool) string {
	t.Helper()
	traceOnce.Do(func() {
		spec, err := scenario.Load(scenarios.FS, "ftrace-int3-skip")
		if err != nil {
			traceErr = err
			return
		}
		if traceDir, traceErr = os.MkdirTemp("", "gdbserver-test-"); traceErr != nil {
			return
		}
		if _, traceErr = record.Run(spec, filepath.Join(traceDir, "t.arrow"), record.Options{Options: emu.Options{Seed: 1}, BatchRows: 8192}); traceErr != nil {
			return
		}
		_, traceErr = record.Run(spec, filepath.Join(traceDir, "bare.arrow"), record.Options{Options: emu.Options{Seed: 1, NoLoads: true, NoRegs: true}, BatchRows: 8192})
	})
	if traceErr != nil {
		t.Fatal(traceErr)
	}
	if bare {
		return filepath.Join(traceDir, "bare.arrow")
	}
	return filepath.Join(traceDir, "t.arrow")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if traceDir != "" {
		os.RemoveAll(traceDir)
	}
	os.Exit(code)
}

func newServer(t testing.TB) (*Server, *format.Reader) { return newServerOf(t, false) }

// newServerOf serves the test trace (bare: without loads and registers),
// with the analyzers' findings for monitor finding.
func newServerOf(t testing.TB, bare bool) (*Server, *format.Reader) {
	t.Helper()
	path := testTrace(t, bare)
	r, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := New(Config{Reader: r, Findings: func() ([]Finding, error) {
		res, err := analyze.AnalyzeFile(path, analyze.All())
		if err != nil {
			return nil, err
		}
		var fs []Finding
		for _, f := range res.Findings {
			fs = append(fs, Finding{Seq: f.SeqFirst, Summary: f.Analyzer + ": " + f.Message})
		}
		return fs, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, r
}

// client speaks the protocol to a server over a pipe.
type client struct {
	t     testing.TB
	nc    net.Conn
	r     *bufio.Reader
	noAck bool
	done  chan error
}

func dial(t testing.TB, s *Server) *client {
	t.Helper()
	a, b := tcpPair(t)
	c := &client{t: t, nc: a, r: bufio.NewReader(a), done: make(chan error, 1)}
	go func() { c.done <- s.Serve(b); b.Close() }()
	t.Cleanup(func() { a.Close() })
	return c
}

// tcpPair returns the two ends of a loopback TCP connection (buffered, as
// gdb's is: a net.Pipe would block the server's replies on the client's
// acks).
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}

func frame(p string) string {
	var sum byte
	for i := 0; i < len(p); i++ {
		sum += p[i]
	}
	return fmt.Sprintf("$%s#%02x", p, sum)
}

func (c *client) raw(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// readByte reads one byte of the server's output.
func (c *client) readByte() byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

// reply reads the next packet (skipping acks), checks its checksum and
// acknowledges it.
func (c *client) reply() string {
	c.t.Helper()
	for {
		b := c.readByte()
		if b == '+' {
			continue
		}
		if b != '$' {
			c.t.Fatalf("unexpected byte %q", b)
		}
		var p []byte
		var sum byte
		for {
			b = c.readByte()
			if b == '#' {
				break
			}
			sum += b
			p = append(p, b)
		}
		h := string([]byte{c.readByte(), c.readByte()})
		if h != fmt.Sprintf("%02x", sum) {
			c.t.Fatalf("reply %q: checksum %s, computed %02x", p, h, sum)
		}
		if !c.noAck {
			io.WriteString(c.nc, "+") // the server may have closed after its last reply
		}
		// Unescape.
		var out []byte
		for i := 0; i < len(p); i++ {
			if p[i] == '}' && i+1 < len(p) {
				i++
				out = append(out, p[i]^0x20)
				continue
			}
			out = append(out, p[i])
		}
		return string(out)
	}
}

// ask sends a packet and returns the reply (O packets collected into
// out, for monitor commands).
func (c *client) ask(p string) string {
	c.t.Helper()
	c.raw(frame(p))
	for {
		r := c.reply()
		if strings.HasPrefix(r, "O") && r != "OK" {
			continue
		}
		return r
	}
}

// monitor runs a monitor command and returns its output.
func (c *client) monitor(cmd string) string {
	c.t.Helper()
	c.raw(frame("qRcmd," + string(appendHex(nil, []byte(cmd)))))
	var out []byte
	for {
		r := c.reply()
		if strings.HasPrefix(r, "O") && r != "OK" {
			b, err := decodeHex(r[1:])
			if err != nil {
				c.t.Fatalf("O packet %q: %v", r, err)
			}
			out = append(out, b...)
			continue
		}
		if r != "OK" {
			c.t.Fatalf("monitor %s: reply %q", cmd, r)
		}
		return string(out)
	}
}

// TestProtocolEdgeCases: unknown packets get the empty reply, malformed
// ones an error, writes are refused, and the server answers the next
// packet after each.
func TestProtocolEdgeCases(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	for _, tc := range []struct{ pkt, want string }{
		{"qFooBar", ""},
		{"vFooBar", ""},
		{"vMustReplyEmpty", ""},
		{"Q", ""},
		{"y", ""},
		{"bx", ""},
		{"Z", "E01"},
		{"Z0,zz,1", "E01"},
		{"Z0,10", "E01"},
		{"Z9,10,1", ""},
		{"Z2,ffffffff810014b0,0", "E01"},
		{"m", "E01"},
		{"mzz,4", "E01"},
		{"m10,", "E01"},
		{"m0,4", "E14"}, // unmapped
		{"p", "E01"},
		{"p99", "E01"},
		{"pffffffffffffffffff", "E01"},
		{"H", "E01"},
		{"Hg", "E01"},
		{"Hg99", "E01"},
		{"Hx1", "E01"},
		{"T9", "E01"},
		{"T1", "OK"},
		{"M0,1:00", "E01"},
		{"X0,1:a", "E01"},
		{"G00", "E01"},
		{"P0=00", "E01"},
		{"vCont;", "E01"},
		{"vCont;x", "E01"},
		{"vCont;s:99", "E01"},
		{"qXfer:features:read:target.xml:zz,10", "E01"},
		{"qXfer:features:read:other.xml:0,10", "E00"},
		{"qXfer:nope:read::0,10", ""},
		{"qThreadExtraInfo,99", "E01"},
		{"qRcmd,zz", "E01"},
	} {
		t.Run(tc.pkt, func(t *testing.T) {
			if got := c.ask(tc.pkt); got != tc.want {
				t.Errorf("%q: reply %q, want %q", tc.pkt, got, tc.want)
			}
		})
	}
	if got := c.ask("qSupported:multiprocess+;swbreak+"); !strings.Contains(got, "ReverseStep+") || !strings.Contains(got, "swbreak+") {
		t.Errorf("qSupported: %q", got)
	}
	if got := c.ask("Z3," + siteHex(t, s) + ",1"); got != "OK" {
		t.Errorf("Z3 on a trace with loads: %q", got)
	}
	if got := c.monitor("bogus"); !strings.Contains(got, "unknown monitor command") {
		t.Errorf("monitor bogus: %q", got)
	}
}

// TestBadChecksum: a packet with a wrong checksum is answered '-' and
// dropped; the next good one is served.
func TestBadChecksum(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	c.raw("$qC#00")
	if b := c.readByte(); b != '-' {
		t.Fatalf("bad checksum answered %q, want '-'", b)
	}
	c.raw("$qC#zz")
	if b := c.readByte(); b != '-' {
		t.Fatalf("non-hex checksum answered %q, want '-'", b)
	}
	c.raw("noise" + frame("qC"))
	if got := c.reply(); !strings.HasPrefix(got, "QC") {
		t.Fatalf("after bad packets: %q", got)
	}
	// A '-' from gdb asks for the last reply again.
	c.raw("-")
	if got := c.reply(); !strings.HasPrefix(got, "QC") {
		t.Fatalf("resent: %q", got)
	}
	// Too long: dropped whole.
	c.raw(frame(strings.Repeat("q", maxPacket+10)))
	if b := c.readByte(); b != '-' {
		t.Fatalf("oversized packet answered %q, want '-'", b)
	}
	// An escaped byte: "}" 0x5d ^ ... "q}\x03" is "q#" unescaped: unknown.
	c.raw(frame("q}\x03"))
	if got := c.reply(); got != "" {
		t.Fatalf("escaped packet: %q", got)
	}
	if got := c.ask("qC"); !strings.HasPrefix(got, "QC") {
		t.Fatalf("after: %q", got)
	}
	// A ^C while stopped gets no reply: the next packet's is next.
	c.raw("\x03")
	if got := c.ask("qC"); !strings.HasPrefix(got, "QC") {
		t.Fatalf("after ^C: %q", got)
	}
}

// TestNoAckMode: after QStartNoAckMode's OK the server sends no acks.
func TestNoAckMode(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	if got := c.ask("QStartNoAckMode"); got != "OK" {
		t.Fatalf("QStartNoAckMode: %q", got)
	}
	c.noAck = true
	c.raw(frame("qC"))
	if b := c.readByte(); b != '$' {
		t.Fatalf("no-ack mode: got %q before the reply", b)
	}
}

// siteHex is lp_fn2's address as gdb sends it (looked up, so that the
// tests follow the slice when it is rebuilt).
func siteHex(t testing.TB, s *Server) string { return fmt.Sprintf("%x", symAddr(t, s, lpFn2)) }

// TestDisconnect: a client that goes away mid-packet, or mid-session,
// ends its session with an error, and the server serves the next one
// from where the first left it.
func TestDisconnect(t *testing.T) {
	s, _ := newServer(t)
	c := dial(t, s)
	c.ask("Z0," + siteHex(t, s) + ",1")
	if got := c.ask("c"); !strings.Contains(got, "swbreak") {
		t.Fatalf("continue: %q", got)
	}
	seq, _, _ := s.Position()
	c.raw("$qSupp")
	c.nc.Close()
	select {
	case err := <-c.done:
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("session ended with %v, want EOF", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end when its client went away")
	}
	c2 := dial(t, s)
	if got := c2.ask("?"); !strings.HasPrefix(got, "T05thread:2;") {
		t.Fatalf("second session's stop reply: %q", got)
	}
	if seq2, _, _ := s.Position(); seq2 != seq {
		t.Fatalf("position %d after reconnecting, was %d", seq2, seq)
	}
	// The breakpoints were the first session's.
	if got := c2.ask("c"); !strings.Contains(got, "replaylog") {
		t.Fatalf("continue without breakpoints: %q, want the end of the trace", got)
	}
	if got := c2.ask("D"); got != "OK" {
		t.Fatalf("detach: %q", got)
	}
	if err := <-c2.done; err != nil {
		t.Fatalf("detached session: %v", err)
	}
}

// TestNeverWritesTrace: a session that tries every writing packet leaves
// the trace file byte for byte as it was.
func TestNeverWritesTrace(t *testing.T) {
	path := testTrace(t, false)
	sum := func() [32]byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	before := sum()
	s, _ := newServer(t)
	c := dial(t, s)
	site := siteHex(t, s)
	for _, p := range []string{"M" + site + ",1:90", "X" + site + ",1:\x90", "G" + strings.Repeat("00", 300), "P0=0100000000000000", "Z0," + site + ",1", "c", "bc", "bs", "s"} {
		c.ask(p)
	}
	c.monitor("finding 1")
	c.raw(frame("k"))
	if err := <-c.done; err != nil {
		t.Fatalf("killed session: %v", err)
	}
	if sum() != before {
		t.Fatal("the trace changed")
	}
	if st2, _ := os.Stat(path); !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the trace's modification time changed")
	}
}

// FuzzPackets: whatever bytes a client sends, the server answers or
// drops them without panicking.
func FuzzPackets(f *testing.F) {
	for _, seed := range []string{
		frame("qSupported:swbreak+") + frame("g") + frame("vCont;s:1") + frame("bs"),
		frame("Z2,ffffffff810014b0,1") + frame("bc") + frame("c"),
		"$}#00", "$#00", "\x03", "-+-+", frame("qXfer:threads:read::0,ffff"),
		frame("m ffffffffffffffff,ffff"), frame("qRcmd,6576656e7473"),
		frame("vCont;c:-1;s:1"), frame("Hc-1") + frame("s"),
	} {
		f.Add([]byte(seed))
	}
	s, _ := newServer(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := tcpPair(t)
		done := make(chan struct{})
		go func() { s.Serve(b); b.Close(); close(done) }()
		go io.Copy(io.Discard, a)
		a.SetWriteDeadline(time.Now().Add(10 * time.Second))
		a.Write(in)
		a.Close()
		<-done
	})
}

// TestBareTrace: on a trace without loads and register deltas, read and
// access watchpoints are refused (they would never fire: nothing would
// seem to read the memory) and every register the deltas carry is 'x'
// (gdb's <unavailable>), never a made-up value.
func TestBareTrace(t *testing.T) {
	s, _ := newServerOf(t, true)
	c := dial(t, s)
	site := siteHex(t, s)
	for _, z := range []string{"Z3," + site + ",1", "Z4," + site + ",1"} {
		if got := c.ask(z); got != "" {
			t.Errorf("%s without loads: %q, want the empty reply (unsupported)", z, got)
		}
	}
	if got := c.ask("Z2," + site + ",1"); got != "OK" {
		t.Errorf("Z2: %q", got)
	}
	c.ask("Z0," + site + ",1")
	c.ask("c")
	g := c.ask("g")
	if want := strings.Repeat("x", 16*16); g[:16*16] != want {
		t.Fatalf("general registers without deltas: %s", g[:16*16])
	}
	if strings.HasPrefix(g[16*16:], "x") {
		t.Fatal("rip unavailable: it is the next instruction's address, in every trace")
	}
}

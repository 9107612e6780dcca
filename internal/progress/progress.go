// Package progress shows how far long work has got, on stderr, for the
// CLI's check, export, explore and report: on a terminal a bar redrawn in
// place with counts, rate and ETA; otherwise (a pipe, a file, or CI set in
// the environment) a plain line every few seconds, so logs stay readable
// and a short job prints nothing. It never writes anywhere but the writer
// it is given, so stdout stays clean for the command's output; a nil
// *Meter (a --quiet command) does nothing.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Intervals between redraws on a terminal and between plain lines.
const (
	TerminalEvery = 200 * time.Millisecond
	PlainEvery    = 5 * time.Second
)

// Config describes the work a Meter follows.
type Config struct {
	Label string // what is running, e.g. "check" or "explore text-poke-bp"
	Unit  string // what is counted, e.g. "scenarios", "schedules"
	Total int64  // the count when done; 0 when unknown (no bar, no ETA)
	// Every overrides the interval between draws (default TerminalEvery
	// on a terminal, PlainEvery otherwise).
	Every time.Duration
}

// Meter follows one piece of work and draws it from its own goroutine
// until Done. Its methods are safe for concurrent use and do nothing on
// a nil *Meter.
type Meter struct {
	mu    sync.Mutex
	w     io.Writer
	c     Config
	tty   bool
	start time.Time
	done  int64
	note  string
	drawn bool // a terminal line is on screen
	stop  chan struct{}
	once  sync.Once // closes stop
	ended sync.WaitGroup
}

// Terminal reports whether w is a terminal that progress may redraw in
// place: a character device (no cgo: the file mode, not an ioctl), and CI
// not set in the environment (CI logs keep every \r as a line).
func Terminal(w io.Writer) bool {
	if os.Getenv("CI") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Start starts a Meter drawing on w (normally stderr).
func Start(w io.Writer, c Config) *Meter {
	return start(w, c, Terminal(w))
}

func start(w io.Writer, c Config, tty bool) *Meter {
	m := &Meter{w: w, c: c, tty: tty, start: time.Now(), stop: make(chan struct{})}
	if m.c.Every <= 0 {
		m.c.Every = PlainEvery
		if tty {
			m.c.Every = TerminalEvery
		}
	}
	m.ended.Add(1)
	go m.loop()
	return m
}

func (m *Meter) loop() {
	defer m.ended.Done()
	t := time.NewTicker(m.c.Every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			m.draw()
			m.mu.Unlock()
		}
	}
}

// Every is the interval between draws (0 for a nil Meter).
func (m *Meter) Every() time.Duration {
	if m == nil {
		return 0
	}
	return m.c.Every
}

// Add counts n more units done.
func (m *Meter) Add(n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.done += n
	m.mu.Unlock()
}

// Set sets the count of units done.
func (m *Meter) Set(n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.done = n
	m.mu.Unlock()
}

// Note sets a short text shown after the counts (the current phase or
// item).
func (m *Meter) Note(s string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.note = s
	m.mu.Unlock()
}

// Above runs print (which writes other output, e.g. a table row on
// stdout) with the terminal bar cleared, and redraws the bar after it, so
// the two do not garble each other when both go to one terminal. With a
// nil Meter print just runs.
func (m *Meter) Above(print func()) {
	if m == nil {
		print()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drawn {
		fmt.Fprint(m.w, "\r\x1b[K")
		m.drawn = false
		print()
		m.draw()
		return
	}
	print()
}

// Done stops drawing and clears the terminal bar; plain lines are left
// as they are (the command's own output says how the work ended). It may
// be called more than once.
func (m *Meter) Done() {
	if m == nil {
		return
	}
	m.once.Do(func() { close(m.stop) })
	m.ended.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drawn {
		fmt.Fprint(m.w, "\r\x1b[K")
		m.drawn = false
	}
}

// draw writes the current state: redrawn in place on a terminal, one
// plain line otherwise. m.mu is held.
func (m *Meter) draw() {
	el := time.Since(m.start)
	if m.tty {
		fmt.Fprintf(m.w, "\r%s\x1b[K", m.line(el, true))
		m.drawn = true
		return
	}
	fmt.Fprintln(m.w, m.line(el, false))
}

// line formats the state after el: "LABEL [bar] DONE/TOTAL UNIT PCT%
// ELAPSED ETA E; NOTE" (the bar on a terminal only; without a total, the
// count and rate).
func (m *Meter) line(el time.Duration, bar bool) string {
	var b strings.Builder
	b.WriteString(m.c.Label)
	b.WriteString(":")
	if m.c.Total > 0 {
		frac := min(float64(m.done)/float64(m.c.Total), 1)
		if bar {
			const width = 24
			n := int(frac * width)
			fmt.Fprintf(&b, " [%s%s]", strings.Repeat("=", n), strings.Repeat(" ", width-n))
		}
		fmt.Fprintf(&b, " %d/%d %s (%.0f%%), %s", m.done, m.c.Total, m.c.Unit, 100*frac, round(el))
		if m.done > 0 && m.done < m.c.Total {
			eta := time.Duration(float64(el) / float64(m.done) * float64(m.c.Total-m.done))
			fmt.Fprintf(&b, ", ETA %s", round(eta))
		}
	} else {
		fmt.Fprintf(&b, " %d %s", m.done, m.c.Unit)
		if s := el.Seconds(); s > 0 {
			fmt.Fprintf(&b, ", %.0f/s", float64(m.done)/s)
		}
		fmt.Fprintf(&b, ", %s", round(el))
	}
	if m.note != "" {
		b.WriteString("; ")
		b.WriteString(m.note)
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

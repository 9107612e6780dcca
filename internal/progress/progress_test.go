package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuf is a bytes.Buffer safe for the Meter's goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer holds want (the Meter draws from its own
// ticker), failing after a generous deadline.
func waitFor(t *testing.T, b *syncBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, b.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMeter(t *testing.T) {
	for _, c := range []struct {
		name  string
		tty   bool
		cfg   Config
		want  []string
		avoid []string
	}{
		{"plain with total", false, Config{Label: "check", Unit: "scenarios", Total: 4}, []string{"check: 1/4 scenarios (25%), ", ", ETA ", "; tp\n"}, []string{"\r", "["}},
		{"terminal with total", true, Config{Label: "check", Unit: "scenarios", Total: 4}, []string{"\rcheck: [======                  ] 1/4 scenarios (25%)", "\x1b[K"}, []string{"\n"}},
		{"plain without total", false, Config{Label: "explore x", Unit: "schedules"}, []string{"explore x: 1 schedules, ", "/s, "}, []string{"ETA", "%"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b syncBuf
			c.cfg.Every = time.Millisecond
			m := start(&b, c.cfg, c.tty)
			m.Add(1)
			m.Note("tp")
			waitFor(t, &b, "; tp")
			m.Done()
			got := b.String()
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("no %q in %q", w, got)
				}
			}
			for _, a := range c.avoid {
				if strings.Contains(got, a) {
					t.Errorf("%q in %q", a, got)
				}
			}
			if c.tty && !strings.HasSuffix(got, "\r\x1b[K") {
				t.Errorf("Done leaves the bar on screen: %q", got)
			}
			n := len(got)
			time.Sleep(10 * time.Millisecond)
			if len(b.String()) != n {
				t.Errorf("drawn after Done: %q", b.String()[n:])
			}
		})
	}
}

// TestAbove checks that other output on a terminal is printed with the bar
// cleared and the bar redrawn after it.
func TestAbove(t *testing.T) {
	var b syncBuf
	m := start(&b, Config{Label: "check", Unit: "scenarios", Total: 2, Every: time.Millisecond}, true)
	waitFor(t, &b, "0/2")
	m.Above(func() { b.Write([]byte("ROW\n")) })
	m.Done()
	got := b.String()
	i := strings.Index(got, "ROW\n")
	if i < 0 || !strings.HasSuffix(got[:i], "\r\x1b[K") || !strings.HasPrefix(got[i+4:], "\rcheck: ") {
		t.Fatalf("row not printed over a cleared bar: %q", got)
	}
}

func TestNilMeter(t *testing.T) {
	var m *Meter
	m.Add(1)
	m.Set(2)
	m.Note("x")
	ran := false
	m.Above(func() { ran = true })
	m.Done()
	if !ran || m.Every() != 0 {
		t.Fatal("a nil Meter must run Above's print and do nothing else")
	}
}

func TestTerminal(t *testing.T) {
	if Terminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	t.Setenv("CI", "true")
	if Terminal(nil) {
		t.Error("CI set: never a terminal")
	}
}

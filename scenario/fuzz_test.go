package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/internal/memstat"
)

// Fuzz limits: what one input may cost. They are far above what a
// well-formed input needs and far below what the defects of issue 17 cost
// (a 16 GB CPU range, a stack overflow from nesting).
const (
	fuzzAllocBase    = 16 << 20 // bytes allocated by any input
	fuzzAllocPerByte = 512      // plus this many per input byte
	fuzzTimeLimit    = 10 * time.Second
)

// FuzzParse: no scenario text makes Parse panic, allocate more than a
// bound linear in its size or run for long, and every spec it accepts is
// within the documented limits. A longer run: go test ./scenario -run '^$'
// -fuzz FuzzParse -fuzztime 10m.
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	for _, seed := range []string{
		base + "max_insns = -5\n",
		base + "[schedule]\ntimer_rate = nan\nnmi_rate = 1.0\n",
		base + "[[task]]\nentry = \"x\"\ncpus = \"1-2000000000\"\n",
		base + "[[task]]\nentry = \"x\"\ncpus = \"1-\"\n",
		base + "x = " + strings.Repeat("{a=", 1000) + "1" + strings.Repeat("}", 1000) + "\n",
		"id = \"../../escape\"\nslice = \"t.elf\"\ncpus = 1\n",
		base + "[[inject]]\nkind = \"nmi\"\ncpu = 0\nat = \"f+0xffffffffffffffffff\"\n",
		base + "expect = [\"no-such-analyzer\"]\n[contract]\nmust_call = [{ site = \"f\", handlers = [\"h\"] }]\n",
		"description = \"\"\"\n[[[\n\"\"\"\n" + base,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var s *Spec
		var err error
		start := time.Now()
		limit := uint64(fuzzAllocBase + fuzzAllocPerByte*len(text))
		alloc, ok := memstat.Within(limit, func() { s, err = Parse("f.toml", text) })
		if d := time.Since(start); d > fuzzTimeLimit {
			t.Fatalf("Parse took %v on %d bytes", d, len(text))
		}
		if !ok {
			t.Fatalf("Parse allocated %d bytes on %d bytes of input (limit %d)", alloc, len(text), limit)
		}
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v", s, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if s.CPUs < 1 || s.CPUs > MaxCPUs || !validID.MatchString(s.ID) || len(s.Tasks) > MaxEntries || len(s.Inject) > MaxEntries {
			t.Fatalf("accepted %+v", s)
		}
		if !(s.Schedule.TimerRate >= 0 && s.Schedule.TimerRate < 1 && s.Schedule.NMIRate >= 0 && s.Schedule.NMIRate < 1) {
			t.Fatalf("accepted rates %v, %v", s.Schedule.TimerRate, s.Schedule.NMIRate)
		}
		for _, task := range s.Tasks {
			for _, c := range task.CPUs.Resolve(MaxCPUs) {
				if c < 0 || c >= MaxCPUs {
					t.Fatalf("task %+v resolves to cpu %d", task, c)
				}
			}
		}
	})
}

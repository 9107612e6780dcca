// Package scenario parses and validates patchtrace scenario files: the TOML
// document that says which slice to run, on how many CPUs, with which tasks,
// quirks, schedule and injections, what the analyzers may assume (the
// contract) and what verdict is expected. It depends on nothing else in
// patchtrace, so both the machine side (record) and the analysis side
// (analyze, reading the scenario text out of a trace) use it.
package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Spec is one scenario.
type Spec struct {
	ID          string            `toml:"id"`
	SeedMail    string            `toml:"seed_mail"`
	Mechanism   string            `toml:"mechanism"`
	Description string            `toml:"description"`
	Expect      Expect            `toml:"expect"`
	Slice       string            `toml:"slice"`
	CPUs        int               `toml:"cpus"`
	MaxInsns    uint64            `toml:"max_insns"`
	Quirks      Quirks            `toml:"quirks"`
	Schedule    Schedule          `toml:"schedule"`
	Params      map[string]uint64 `toml:"-"`
	Tasks       []Task            `toml:"task"`
	Inject      []Inject          `toml:"inject"`
	Contract    Contract          `toml:"contract"`

	// Text is the scenario file as written (recorded in traces).
	Text string `toml:"-"`
	// ELF is the slice's bytes, resolved relative to the scenario file.
	ELF []byte `toml:"-"`
}

// Quirks are the CPU behaviours a run chooses (see emu.Quirks).
type Quirks struct {
	NMIInSTIShadow bool   `toml:"nmi_in_sti_shadow"`
	Fetch          string `toml:"fetch"` // "coherent" (default) or "stale"
}

// Schedule parameterises the random scheduler.
type Schedule struct {
	Quantum   []uint32 `toml:"quantum"` // [min, max] steps per decision
	TimerRate float64  `toml:"timer_rate"`
	NMIRate   float64  `toml:"nmi_rate"`
}

// Task is one [[task]] table: a task per listed CPU.
type Task struct {
	Entry string `toml:"entry"`
	CPUs  CPUSet `toml:"cpus"`
	Arg   uint64 `toml:"arg"`
}

// CPUSet is a list of CPU numbers, or a range string: "2", "1-3", "1-"
// (1 to the last CPU) or "all". Open ranges follow --cpus overrides.
type CPUSet struct {
	List    []int
	From    int
	OpenEnd bool
}

// UnmarshalTOML accepts [0, 2] or "1-3" / "1-" / "all".
func (c *CPUSet) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case []any:
		for _, it := range x {
			n, ok := it.(int64)
			if !ok {
				return fmt.Errorf("cpus: %v is not a CPU number", it)
			}
			c.List = append(c.List, int(n))
		}
		return nil
	case int64:
		c.List = []int{int(x)}
		return nil
	case string:
		if x == "all" {
			c.OpenEnd = true
			return nil
		}
		lo, hi, rng := strings.Cut(x, "-")
		var a, b int
		if _, err := fmt.Sscanf(lo, "%d", &a); err != nil {
			return fmt.Errorf("cpus = %q: want a list, \"N\", \"N-M\", \"N-\" or \"all\"", x)
		}
		switch {
		case !rng:
			c.List = []int{a}
		case hi == "":
			c.From, c.OpenEnd = a, true
		default:
			if _, err := fmt.Sscanf(hi, "%d", &b); err != nil || b < a {
				return fmt.Errorf("cpus = %q: bad range", x)
			}
			for i := a; i <= b; i++ {
				c.List = append(c.List, i)
			}
		}
		return nil
	}
	return fmt.Errorf("cpus: want a list or a range string, got %T", v)
}

// Resolve returns the CPUs of the set on an n-CPU machine.
func (c CPUSet) Resolve(n int) []int {
	if !c.OpenEnd {
		return c.List
	}
	var out []int
	for i := c.From; i < n; i++ {
		out = append(out, i)
	}
	return out
}

// Inject is one [[inject]] table.
type Inject struct {
	Kind string `toml:"kind"` // "nmi", "timer", "ipi"
	CPU  int    `toml:"cpu"`
	At   string `toml:"at"`  // "symbol+off"
	Hit  uint64 `toml:"hit"` // Nth arrival (1-based); 0 = every time
}

// Contract is what the analyzers may assume about the slice.
type Contract struct {
	// MustCall lists call sites that must call one of their handlers on
	// every pass (the missed-call analyzer).
	MustCall []MustCall `toml:"must_call"`
	// ReturnSlots are per-CPU 8-byte variables that hold a return address or
	// an emulated-call target between the write that fills them and the
	// read that consumes them (the return-slot analyzer).
	ReturnSlots []string `toml:"return_slots"`
	// Alias says kernel text changes only through text_poke's alias (the wx
	// analyzer flags any other store to an executable page regardless).
	Alias bool `toml:"alias"`
	// Terminates, when set false, declares the scenario open-ended: its
	// CPUs are not meant to finish, so a run that ends on the instruction
	// budget is not a finding of the progress analyzer. Unset means true:
	// every CPU must reach pt_cpu_done.
	Terminates *bool `toml:"terminates"`
}

// OpenEnded reports whether the scenario declares contract.terminates =
// false.
func (s *Spec) OpenEnded() bool {
	return s.Contract.Terminates != nil && !*s.Contract.Terminates
}

// MustCall declares a site that must call one of Handlers on every pass:
// from the CPU executing (or trapping at) Site until it executes Site+5,
// some handler's entry must have run in that context. FromMarker and
// UntilMarker, when non-zero, limit the rule to passes that start after a
// pt_marker(FromMarker, ...) and before the next pt_marker(UntilMarker, ...)
// (the window in which the call is meant to be in place).
type MustCall struct {
	Site        string   `toml:"site"`
	Handlers    []string `toml:"handlers"`
	FromMarker  uint64   `toml:"from_marker"`
	UntilMarker uint64   `toml:"until_marker"`
}

// Expect is the expected verdict: clean, or the analyzer ids that must
// report findings.
type Expect struct {
	Findings []string // empty: clean
}

// Clean reports whether the scenario is expected to be clean.
func (e Expect) Clean() bool { return len(e.Findings) == 0 }

func (e Expect) String() string {
	if e.Clean() {
		return "clean"
	}
	return strings.Join(e.Findings, ",")
}

// UnmarshalTOML accepts "clean" or a list of analyzer ids.
func (e *Expect) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		if x != "clean" {
			return fmt.Errorf("expect = %q: want \"clean\" or a list of analyzer ids", x)
		}
		e.Findings = nil
	case []any:
		for _, it := range x {
			s, ok := it.(string)
			if !ok || s == "" {
				return fmt.Errorf("expect: %v is not an analyzer id", it)
			}
			e.Findings = append(e.Findings, s)
		}
		sort.Strings(e.Findings)
	default:
		return fmt.Errorf("expect: want \"clean\" or a list of analyzer ids, got %T", v)
	}
	return nil
}

// Error is a problem in a scenario file.
type Error struct {
	File string
	Msg  string
}

func (e *Error) Error() string { return e.File + ": " + e.Msg }

// Parse parses and validates scenario text. file names it in errors.
func Parse(file string, text []byte) (*Spec, error) {
	var raw struct {
		Spec
		Params map[string]int64 `toml:"params"`
	}
	md, err := toml.Decode(string(text), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Msg: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, &Error{File: file, Msg: "unknown key " + strings.Join(keys, ", ")}
	}
	s := raw.Spec
	s.Text = string(text)
	if len(raw.Params) > 0 {
		s.Params = make(map[string]uint64, len(raw.Params))
		for k, v := range raw.Params {
			s.Params[k] = uint64(v)
		}
	}
	if err := s.validate(); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return &s, nil
}

func (s *Spec) validate() error {
	switch {
	case s.ID == "":
		return errors.New("missing id")
	case s.Slice == "":
		return errors.New("missing slice (the ELF file name)")
	case s.CPUs < 1 || s.CPUs > 64:
		return fmt.Errorf("cpus = %d: must be 1..64", s.CPUs)
	}
	switch s.Quirks.Fetch {
	case "":
		s.Quirks.Fetch = "coherent"
	case "coherent", "stale":
	default:
		return fmt.Errorf("quirks.fetch = %q: want \"coherent\" or \"stale\"", s.Quirks.Fetch)
	}
	switch len(s.Schedule.Quantum) {
	case 0:
		s.Schedule.Quantum = []uint32{1, 64}
	case 2:
		if s.Schedule.Quantum[0] == 0 || s.Schedule.Quantum[1] < s.Schedule.Quantum[0] {
			return fmt.Errorf("schedule.quantum = %v: want [min, max] with 1 <= min <= max", s.Schedule.Quantum)
		}
	default:
		return fmt.Errorf("schedule.quantum = %v: want [min, max]", s.Schedule.Quantum)
	}
	for _, r := range []float64{s.Schedule.TimerRate, s.Schedule.NMIRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("schedule rates must be in [0, 1], got %v", r)
		}
	}
	for i, t := range s.Tasks {
		if t.Entry == "" {
			return fmt.Errorf("task %d: missing entry", i+1)
		}
		if len(t.CPUs.List) == 0 && !t.CPUs.OpenEnd {
			return fmt.Errorf("task %d (%s): missing cpus", i+1, t.Entry)
		}
		for _, c := range t.CPUs.Resolve(s.CPUs) {
			if c < 0 || c >= s.CPUs {
				return fmt.Errorf("task %d (%s): cpu %d: the scenario has %d CPUs", i+1, t.Entry, c, s.CPUs)
			}
		}
	}
	for i, in := range s.Inject {
		switch in.Kind {
		case "nmi", "timer", "ipi":
		default:
			return fmt.Errorf("inject %d: kind %q: want \"nmi\", \"timer\" or \"ipi\"", i+1, in.Kind)
		}
		if in.CPU < 0 || in.CPU >= s.CPUs {
			return fmt.Errorf("inject %d: cpu %d: the scenario has %d CPUs", i+1, in.CPU, s.CPUs)
		}
		if in.At == "" {
			return fmt.Errorf("inject %d: missing at (\"symbol+offset\")", i+1)
		}
	}
	for i, mc := range s.Contract.MustCall {
		if mc.Site == "" || len(mc.Handlers) == 0 {
			return fmt.Errorf("contract.must_call %d: needs site and handlers", i+1)
		}
	}
	return nil
}

// ParamNames returns the param names in sorted order.
func (s *Spec) ParamNames() []string {
	names := make([]string, 0, len(s.Params))
	for k := range s.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Load reads dir/scenario.toml from fsys and the slice it names.
func Load(fsys fs.FS, dir string) (*Spec, error) {
	file := path.Join(dir, "scenario.toml")
	text, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	s, err := Parse(file, text)
	if err != nil {
		return nil, err
	}
	elf := path.Join(dir, s.Slice)
	if s.ELF, err = fs.ReadFile(fsys, elf); err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("slice %q: %v", s.Slice, err)}
	}
	return s, nil
}

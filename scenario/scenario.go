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
	"io"
	"io/fs"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	MaxInsns    uint64            `toml:"-"` // max_insns, checked non-negative
	Quirks      Quirks            `toml:"quirks"`
	Schedule    Schedule          `toml:"schedule"`
	Params      map[string]uint64 `toml:"-"`
	Tasks       []Task            `toml:"task"`
	Inject      []Inject          `toml:"inject"`
	Contract    Contract          `toml:"contract"`
	Report      Report            `toml:"report"`

	// What the slice is built from (patchtrace build, docs/slice-abi.md).
	// Base is the directory of the base (boot, entry, traps, scheduler,
	// linker script), relative to the scenario's directory; empty: the
	// built-in base. Uses lists shared libraries linked after the base, in
	// order: a name is a built-in one (scenarios/lib/NAME), anything with a
	// '/' a directory relative to the scenario's. Replace lists base files
	// ("base/traps.c") the scenario's directory holds its own version of,
	// at the same relative path, which is built instead.
	Base    string   `toml:"base"`
	Uses    []string `toml:"uses"`
	Replace []string `toml:"replace"`

	// Text is the scenario file as written (recorded in traces).
	Text string `toml:"-"`
	// ELF is the slice's bytes, resolved relative to the scenario file.
	ELF []byte `toml:"-"`
}

// Limits on what a scenario may ask for (RATIONALE.md, resource limits).
// The loader checks them before it expands or allocates anything.
const (
	// MaxCPUs is the largest machine (equal to emu.MaxCPUs).
	MaxCPUs = 64
	// MaxTextBytes bounds a scenario file.
	MaxTextBytes = 1 << 20
	// MaxSliceBytes bounds a slice ELF file (the built-in ones are 30-50 KB).
	MaxSliceBytes = 64 << 20
	// MaxNesting bounds how deeply arrays and inline tables nest (a
	// scenario needs 3; the TOML decoder recurses once per level).
	MaxNesting = 16
	// MaxEntries bounds the [[task]], [[inject]] and contract.must_call
	// entries, and the [params] keys, each.
	MaxEntries = 256
	// MaxIDLen bounds a scenario id.
	MaxIDLen = 64
)

// validID is what a scenario id may look like: it names files and
// directories (check --out DIR/ID/, record's default ID-seedN.arrow), so no
// path separators and no leading dot.
var validID = regexp.MustCompile(IDPattern)

// IDPattern is validID's regular expression (up to MaxIDLen bytes). The
// format package, which imports nothing of ours, checks a trace's scenario
// id against the same pattern; its tests hold the two equal.
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]*$`

// Quirks are the CPU behaviours a run chooses (see emu.Quirks).
type Quirks struct {
	NMIInSTIShadow bool `toml:"nmi_in_sti_shadow"`
	// Fetch is the cross-modifying-code model: "torn" (the default:
	// stale decodes and byte-granular text_poke), "stale" or "coherent";
	// see emu.Quirks.
	Fetch string `toml:"fetch"`
	// IBT turns on supervisor indirect branch tracking (CET-IBT): an
	// indirect CALL or JMP, or a delivery, must land on ENDBR64, else #CP
	// (see emu.Quirks.IBT). Off by default.
	IBT bool `toml:"ibt"`
	// IBTNoTrack honours the NOTRACK (3E) prefix on indirect branches
	// (IA32_S_CET.NO_TRACK_EN); it needs ibt.
	IBTNoTrack bool `toml:"ibt_notrack"`
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
		if len(x) > MaxCPUs {
			return fmt.Errorf("cpus: %d entries; a machine has at most %d CPUs", len(x), MaxCPUs)
		}
		for _, it := range x {
			n, ok := it.(int64)
			if !ok || n < 0 || n >= MaxCPUs {
				return fmt.Errorf("cpus: %v is not a CPU number (0..%d)", it, MaxCPUs-1)
			}
			c.List = append(c.List, int(n))
		}
		return nil
	case int64:
		if x < 0 || x >= MaxCPUs {
			return fmt.Errorf("cpus = %d: not a CPU number (0..%d)", x, MaxCPUs-1)
		}
		c.List = []int{int(x)}
		return nil
	case string:
		if x == "all" {
			c.OpenEnd = true
			return nil
		}
		lo, hi, rng := strings.Cut(x, "-")
		// Both ends are checked against MaxCPUs before anything is
		// expanded ("1-2000000000" once allocated 16 GB).
		a, ok := cpuNumber(lo)
		if !ok {
			return fmt.Errorf("cpus = %q: want a list, \"N\", \"N-M\", \"N-\" or \"all\" with CPU numbers 0..%d", x, MaxCPUs-1)
		}
		switch {
		case !rng:
			c.List = []int{a}
		case hi == "":
			c.From, c.OpenEnd = a, true
		default:
			b, ok := cpuNumber(hi)
			if !ok || b < a {
				return fmt.Errorf("cpus = %q: bad range (want N-M with 0 <= N <= M <= %d)", x, MaxCPUs-1)
			}
			for i := a; i <= b; i++ {
				c.List = append(c.List, i)
			}
		}
		return nil
	}
	return fmt.Errorf("cpus: want a list or a range string, got %T", v)
}

// cpuNumber parses a decimal CPU number 0..MaxCPUs-1.
func cpuNumber(s string) (int, bool) {
	if s == "" || len(s) > 2 {
		return 0, false
	}
	n := 0
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, n < MaxCPUs
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
	At   string `toml:"at"`  // "file.c:LINE", "symbol" or "symbol+off"
	Hit  uint64 `toml:"hit"` // Nth arrival (1-based); 0 = every time
	// A rule that never raises its interrupt in a finished run is reported
	// (run warns; the unmatched analyzer makes check fail).
}

// Report is the [report] table: what `patchtrace run` prints after a run.
// Counters lists 8-byte per-CPU variables of the slice, printed in this
// order with their value on every CPU. Without a [report] table (or with
// no counters in it) run prints the per-CPU 8-byte variables named
// *_calls, *_count or *_ticks.
type Report struct {
	Counters []string `toml:"counters"`
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
	// ReturnHijacks declare return addresses rewritten on purpose
	// (kretprobe-style trampolines; the return-slot analyzer).
	ReturnHijacks []ReturnHijack `toml:"return_hijacks"`
	// AsmSites are code ranges the compiler treats as no call (an inline
	// asm statement with its clobber list, a static_call or alternative
	// site) and the registers it assumes they preserve (the regs
	// analyzer).
	AsmSites []AsmSite `toml:"asm_sites"`
	// Alias says kernel text changes only through text_poke's alias (the wx
	// analyzer flags any other store to an executable page regardless).
	Alias bool `toml:"alias"`
	// BootUntilMarker, when non-zero, says the run starts in early boot
	// and the first pt_marker(BootUntilMarker, ...) is the end of boot
	// (the kernel's mark_rodata_ro()). Before it the wx analyzer allows
	// what early boot does (text_poke_early() stores to text directly,
	// text and boot-time trampolines are writable and executable); at it,
	// any page still writable and executable is a finding, as
	// CONFIG_DEBUG_WX's check there reports one; after it, W^X holds in
	// full. A run that never reaches the marker is a wx finding: nothing
	// was checked.
	BootUntilMarker uint64 `toml:"boot_until_marker"`
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
// (the window in which the call is meant to be in place); a pass that has
// entered none of the handlers when the window closes is not judged (its
// call would come after the window). A rule whose
// window never opens, or whose site is never passed while it is open, in
// a finished run is a finding of the unmatched analyzer: it checked
// nothing.
//
// Forbid turns the rule around: no pass through Site in the window may
// enter any of Handlers (a callback called for a function it does not
// trace, or after it was unregistered: a trampoline updated to call one
// ops' func directly while a site of another ops still calls it).
//
// Length is the site's length in bytes (default 5, a call rel32): the pass
// ends at Site+Length. Nested, when set, lets a handler entered in a trap
// the pass's own context took at the site (a kprobe pre-handler run by the
// #BP of the int3 at the site) satisfy the pass; otherwise only handlers
// entered in the pass's own context count.
type MustCall struct {
	Site        string   `toml:"site"`
	Handlers    []string `toml:"handlers"`
	FromMarker  uint64   `toml:"from_marker"`
	UntilMarker uint64   `toml:"until_marker"`
	Length      uint64   `toml:"length"`
	Nested      bool     `toml:"nested"`
	Forbid      bool     `toml:"forbid"`
	// Preserves are the registers the compiler assumes the site keeps
	// (the regs analyzer): none unless given.
	Preserves RegSet `toml:"preserves"`
}

// AsmSite declares a code range the compiler saw as no call, and the
// registers it assumes the range preserves: an inline asm statement whose
// clobber list leaves them out (a static_call or alternative site whose
// int3 handler may emulate a call). Site is its first byte ("file.c:LINE",
// a symbol or asm label, "symbol+offset"), Length its size in bytes (the
// site ends at Site+Length, the first byte after it), Preserves the
// registers that must hold the same values there as at Site, in the
// context that passed through it. Site+Length is also where a call an
// int3 handler emulates at the site returns to (the return-slot analyzer
// accepts a RET there, as after a must_call site).
//
// Returns, when set, says the site is a return as its author wrote it (a
// RET, or the jmp to a return thunk the compiler emits for one, which
// apply_returns() may point at another thunk): the pass does not end at
// Site+Length but at the RET that pops the return address the context's
// stack held at the site, and the preserved registers must hold there
// what they held at the site. Code that relies on a RET keeping registers
// a C return need not (KVM's fastops return their result in RFLAGS) is
// broken by a thunk that changes them (commit ba5ca5e5e6a1,
// "x86/retpoline: Don't clobber RFLAGS during srso_safe_ret()"). No call
// returns to Site+Length of such a site.
type AsmSite struct {
	Site      string `toml:"site"`
	Length    uint64 `toml:"length"`
	Preserves RegSet `toml:"preserves"`
	Returns   bool   `toml:"returns"`
}

// RegSet is a preserves value: a list of register names (RegNames) or
// "all" (the sixteen general registers, RSP included; not RFLAGS, which
// an x86 asm statement always clobbers).
type RegSet struct {
	Names []string // as written; validate checks them
	All   bool
}

// RegNames are the registers a preserves list may name: the general
// registers and RFLAGS, spelled as the trace's register columns
// (format.RegNames, which analyze's tests check it equals).
var RegNames = []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rflags"}

// numGPRs is how many of RegNames "all" covers (every one but RFLAGS).
const numGPRs = 16

// Empty says the set names no register.
func (r RegSet) Empty() bool { return !r.All && len(r.Names) == 0 }

// Indexes are the set's registers as indexes into RegNames, in that
// order (a validated set).
func (r RegSet) Indexes() []int {
	var out []int
	for i, n := range RegNames {
		if (r.All && i < numGPRs) || slices.Contains(r.Names, n) {
			out = append(out, i)
		}
	}
	return out
}

// UnmarshalTOML accepts "all" or a list of register names.
func (r *RegSet) UnmarshalTOML(v any) error {
	*r = RegSet{}
	switch x := v.(type) {
	case string:
		if x != "all" {
			return fmt.Errorf("preserves = %q: want \"all\" or a list of register names", x)
		}
		r.All = true
		return nil
	case []any:
		if len(x) > len(RegNames) {
			return fmt.Errorf("preserves: %d names; there are %d registers", len(x), len(RegNames))
		}
		for _, it := range x {
			s, ok := it.(string)
			if !ok {
				return fmt.Errorf("preserves: %v is not a register name", it)
			}
			r.Names = append(r.Names, s)
		}
		return nil
	}
	return fmt.Errorf("preserves: want \"all\" or a list of register names, got %T", v)
}

// check validates the names; key names the entry in errors.
func (r RegSet) check(key string) error {
	seen := map[string]bool{}
	for _, n := range r.Names {
		if !slices.Contains(RegNames, n) {
			return fmt.Errorf("%s: preserves: unknown register %q (want \"all\" or names from %s)", key, n, strings.Join(RegNames, ", "))
		}
		if seen[n] {
			return fmt.Errorf("%s: preserves: %q listed twice", key, n)
		}
		seen[n] = true
	}
	return nil
}

// MaxAsmSiteLength bounds contract.asm_sites[].length: an asm statement
// or patch site of a few instructions.
const MaxAsmSiteLength = 4096

// ReturnHijack declares a legitimate return-address hijack: a store by
// Handler (a function: the store's RIP lies in it) of Trampoline's address
// over a return address, and the trampoline that a RET through that word
// then enters. The trampoline's own RET must return to the address the
// handler replaced for that frame (the innermost hijacked frame of the
// context): a trampoline that returns through another frame is a finding.
type ReturnHijack struct {
	Handler    string `toml:"handler"`
	Trampoline string `toml:"trampoline"`
}

// MaxSiteLength bounds contract.must_call[].length: an x86 instruction is
// at most 15 bytes (SDM Vol. 2 §2.3.11).
const MaxSiteLength = 15

// Expect is the expected verdict: "clean", or a list of expectations, each
// an analyzer id or a table naming the findings it covers (in the spirit of
// x/tools analysistest's // want):
//
//	expect = ["missed-call"]
//	expect = [
//		{ analyzer = "missed-call", symbol = "lp_fn1", count = 1 },
//		{ analyzer = "trap", cpu = 2, line = "tramp.S:81", count = "1-" },
//		{ analyzer = "wx", count = 0 },
//	]
//
// A table matches the findings of its analyzer that also have its cpu (the
// CPU a finding, or any occurrence folded into it, happened on), symbol
// (the symbol containing the rip) and line (the rip's file:line: a staged
// name, or its tail after a '/'); count is how many findings (after
// folding repeats at one place) must match: N, "N-M", "N-" (at least N),
// default "1-"; 0 says there must be none. A list with a table in it is
// strict: every finding must match an entry (a bare id matches its
// analyzer's findings). A list of ids alone keeps its old meaning: each
// analyzer must report, others may too (a corrupted return often ends in an
// oops the trap analyzer also reports). "clean" wants no finding at all.
type Expect struct {
	// Findings lists the analyzers some entry needs a finding of (count
	// at least 1), sorted, once each; empty: the run must be clean.
	Findings []string
	// Entries are the expectations as written, in order (nil for clean).
	Entries []ExpectEntry
	// Strict says every finding must match an entry (a table was written).
	Strict bool
}

// ExpectEntry is one expectation: the findings of Analyzer with the given
// CPU (-1: any), Symbol and Line ("": any), Min to Max of them (Max -1:
// no bound).
type ExpectEntry struct {
	Analyzer string
	CPU      int
	Symbol   string
	Line     string
	Min, Max int
}

// String renders the entry as written in a table, keys that are set only.
func (x ExpectEntry) String() string {
	parts := []string{"analyzer = " + strconv.Quote(x.Analyzer)}
	if x.CPU >= 0 {
		parts = append(parts, "cpu = "+strconv.Itoa(x.CPU))
	}
	if x.Symbol != "" {
		parts = append(parts, "symbol = "+strconv.Quote(x.Symbol))
	}
	if x.Line != "" {
		parts = append(parts, "line = "+strconv.Quote(x.Line))
	}
	if x.Min != 1 || x.Max != -1 {
		parts = append(parts, "count = "+x.CountString())
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

// CountString renders the count range: "2", "1-3", "1-".
func (x ExpectEntry) CountString() string {
	switch {
	case x.Max < 0:
		return strconv.Itoa(x.Min) + "-"
	case x.Min == x.Max:
		return strconv.Itoa(x.Min)
	}
	return strconv.Itoa(x.Min) + "-" + strconv.Itoa(x.Max)
}

// Clean reports whether the scenario is expected to be clean: no entry
// needs a finding and, the list being strict or empty, none may occur
// (no entry allows one: count = "0-" does).
func (e Expect) Clean() bool { return len(e.Findings) == 0 && len(e.allowed()) == 0 }

// allowed lists, sorted and once each, the analyzers whose findings an
// entry allows without needing one (count = "0-", "0-M" with M > 0).
func (e Expect) allowed() []string {
	var ids []string
	for _, en := range e.Entries {
		if en.Min == 0 && en.Max != 0 && !slices.Contains(ids, en.Analyzer) {
			ids = append(ids, en.Analyzer)
		}
	}
	sort.Strings(ids)
	return ids
}

// String is the expectation in a word for tables: "clean", or the
// analyzers some entry needs, comma-separated. A list that needs no
// finding but allows some is "clean or" those it allows (a run that
// ends on its budget passes [{ analyzer = "progress", count = "0-" }]:
// it is not expected clean).
func (e Expect) String() string {
	if e.Clean() {
		return "clean"
	}
	if len(e.Findings) == 0 {
		return "clean or " + strings.Join(e.allowed(), ",")
	}
	return strings.Join(e.Findings, ",")
}

// UnmarshalTOML accepts "clean" or a list of analyzer ids and tables.
func (e *Expect) UnmarshalTOML(v any) error {
	*e = Expect{}
	switch x := v.(type) {
	case string:
		if x != "clean" {
			return fmt.Errorf("expect = %q: want \"clean\" or a list of analyzer ids and { analyzer = ... } tables", x)
		}
		return nil
	case []any:
		if len(x) > MaxEntries {
			return fmt.Errorf("expect: %d entries; at most %d", len(x), MaxEntries)
		}
		for i, it := range x {
			switch y := it.(type) {
			case string:
				if y == "" {
					return fmt.Errorf("expect entry %d: an empty analyzer id", i+1)
				}
				e.Entries = append(e.Entries, ExpectEntry{Analyzer: y, CPU: -1, Min: 1, Max: -1})
			case map[string]any:
				en, err := expectEntry(y)
				if err != nil {
					return fmt.Errorf("expect entry %d: %w", i+1, err)
				}
				e.Entries = append(e.Entries, en)
				e.Strict = true
			default:
				return fmt.Errorf("expect entry %d: %v is neither an analyzer id nor a table", i+1, it)
			}
		}
		seen := map[string]bool{}
		for _, en := range e.Entries {
			if en.Min > 0 && !seen[en.Analyzer] {
				seen[en.Analyzer] = true
				e.Findings = append(e.Findings, en.Analyzer)
			}
		}
		sort.Strings(e.Findings)
		return nil
	}
	return fmt.Errorf("expect: want \"clean\" or a list of analyzer ids and tables, got %T", v)
}

// expectEntry reads one { analyzer = ..., cpu, symbol, line, count } table.
func expectEntry(m map[string]any) (ExpectEntry, error) {
	x := ExpectEntry{CPU: -1, Min: 1, Max: -1}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "analyzer", "symbol", "line":
			s, ok := v.(string)
			if !ok || s == "" {
				return x, fmt.Errorf("%s: want a non-empty string, got %v", k, v)
			}
			switch k {
			case "analyzer":
				x.Analyzer = s
			case "symbol":
				x.Symbol = s
			case "line":
				i := strings.LastIndexByte(s, ':')
				n, err := strconv.Atoi(s[i+1:])
				if i <= 0 || err != nil || n <= 0 || s[i+1] == '+' {
					return x, fmt.Errorf("line = %q: want file.c:LINE", s)
				}
				x.Line = s
			}
		case "cpu":
			n, ok := v.(int64)
			if !ok || n < 0 || n >= MaxCPUs {
				return x, fmt.Errorf("cpu = %v: not a CPU number (0..%d)", v, MaxCPUs-1)
			}
			x.CPU = int(n)
		case "count":
			lo, hi, err := countRange(v)
			if err != nil {
				return x, err
			}
			x.Min, x.Max = lo, hi
		default:
			return x, fmt.Errorf("unknown key %q (have analyzer, cpu, symbol, line, count)", k)
		}
	}
	if x.Analyzer == "" {
		return x, errors.New("no analyzer")
	}
	return x, nil
}

// maxCount bounds an expected count (a run has fewer findings).
const maxCount = 1 << 30

// countRange reads count = N, "N", "N-M" or "N-".
func countRange(v any) (lo, hi int, err error) {
	bad := fmt.Errorf("count = %v: want N, \"N-M\" or \"N-\" (at least N) with 0 <= N <= M", v)
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 0 && n <= maxCount && !strings.HasPrefix(s, "+")
	}
	switch x := v.(type) {
	case int64:
		if x < 0 || x > maxCount {
			return 0, 0, bad
		}
		return int(x), int(x), nil
	case string:
		a, b, rng := strings.Cut(strings.TrimSpace(x), "-")
		lo, ok := num(a)
		if !ok {
			return 0, 0, bad
		}
		switch {
		case !rng:
			return lo, lo, nil
		case b == "":
			return lo, -1, nil
		}
		hi, ok := num(b)
		if !ok || hi < lo {
			return 0, 0, bad
		}
		return lo, hi, nil
	}
	return 0, 0, bad
}

// Error is a problem in a scenario file.
type Error struct {
	File string
	Msg  string
	Err  error // the cause, when the file could not be read
}

func (e *Error) Error() string { return e.File + ": " + e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Parse parses and validates scenario text. file names it in errors.
func Parse(file string, text []byte) (*Spec, error) {
	if len(text) > MaxTextBytes {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%d bytes: a scenario file may have at most %d", len(text), MaxTextBytes)}
	}
	if line, err := checkNesting(text); err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("line %d: %v", line, err)}
	}
	var raw struct {
		Spec
		Params   map[string]int64 `toml:"params"`
		MaxInsns int64            `toml:"max_insns"`
	}
	md, err := toml.Decode(string(text), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Msg: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	var keys []string
	for _, k := range md.Undecoded() {
		// Expect.UnmarshalTOML reads the expect tables' keys itself (and
		// refuses unknown ones).
		if len(k) > 1 && k[0] == "expect" {
			continue
		}
		keys = append(keys, k.String())
	}
	if len(keys) > 0 {
		return nil, &Error{File: file, Msg: "unknown key " + strings.Join(keys, ", ")}
	}
	// No key takes a negative number: a negative max_insns, hit, arg,
	// quantum or param wrapped to a huge unsigned value.
	var tree map[string]any
	if _, err := toml.Decode(string(text), &tree); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if key, v, found := findNegative("", tree); found {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%s = %d: must not be negative", key, v)}
	}
	s := raw.Spec
	s.Text = string(text)
	s.MaxInsns = uint64(raw.MaxInsns)
	if len(raw.Params) > MaxEntries {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%d params: at most %d", len(raw.Params), MaxEntries)}
	}
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

// checkNesting rejects text whose arrays and inline tables nest deeper
// than MaxNesting (100,000 nested inline tables exhausted the decoder's
// stack), before the decoder sees it. It skips comments and strings, and
// reports the line of the first bracket too deep.
func checkNesting(text []byte) (line int, err error) {
	depth, line := 0, 1
	for i := 0; i < len(text); i++ {
		switch ch := text[i]; ch {
		case '\n':
			line++
		case '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			i-- // the newline is counted by the loop
		case '"', '\'':
			q := string([]byte{ch, ch, ch})
			if i+3 <= len(text) && string(text[i:i+3]) == q { // multi-line string
				i += 3
				for ; i < len(text) && (i+3 > len(text) || string(text[i:i+3]) != q); i++ {
					if text[i] == '\n' {
						line++
					}
					if ch == '"' && text[i] == '\\' {
						i++
						if i < len(text) && text[i] == '\n' {
							line++
						}
					}
				}
				i += 2
				continue
			}
			for i++; i < len(text) && text[i] != ch && text[i] != '\n'; i++ {
				if ch == '"' && text[i] == '\\' {
					i++
				}
			}
			if i < len(text) && text[i] == '\n' {
				line++
			}
		case '[', '{':
			if depth++; depth > MaxNesting {
				return line, fmt.Errorf("arrays and inline tables nested more than %d deep", MaxNesting)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, nil
}

// findNegative returns the first negative integer in a decoded TOML tree
// (in key order) and its dotted key.
func findNegative(prefix string, v any) (string, int64, bool) {
	switch x := v.(type) {
	case int64:
		return prefix, x, x < 0
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if p, n, ok := findNegative(key, x[k]); ok {
				return p, n, true
			}
		}
	case []map[string]any:
		for i, e := range x {
			if p, n, ok := findNegative(fmt.Sprintf("%s[%d]", prefix, i), e); ok {
				return p, n, true
			}
		}
	case []any:
		for i, e := range x {
			if p, n, ok := findNegative(fmt.Sprintf("%s[%d]", prefix, i), e); ok {
				return p, n, true
			}
		}
	}
	return "", 0, false
}

func (s *Spec) validate() error {
	switch {
	case s.ID == "":
		return errors.New("missing id")
	case len(s.ID) > MaxIDLen || !validID.MatchString(s.ID):
		return fmt.Errorf("id = %q: want at most %d letters, digits, '.', '_' and '-', not starting with '.', '_' or '-' (the id names output files)", s.ID, MaxIDLen)
	case s.Slice == "":
		return errors.New("missing slice (the ELF file name)")
	case !fs.ValidPath(s.Slice) || s.Slice == ".":
		return fmt.Errorf("slice = %q: want a file name relative to the scenario's directory, without \"..\"", s.Slice)
	case s.CPUs < 1 || s.CPUs > MaxCPUs:
		return fmt.Errorf("cpus = %d: must be 1..%d", s.CPUs, MaxCPUs)
	case len(s.Tasks) > MaxEntries || len(s.Inject) > MaxEntries || len(s.Contract.MustCall) > MaxEntries:
		return fmt.Errorf("%d tasks, %d injections, %d must_call entries: at most %d each", len(s.Tasks), len(s.Inject), len(s.Contract.MustCall), MaxEntries)
	case len(s.Contract.ReturnHijacks) > MaxEntries:
		return fmt.Errorf("%d return_hijacks entries: at most %d", len(s.Contract.ReturnHijacks), MaxEntries)
	case len(s.Uses) > MaxEntries || len(s.Replace) > MaxEntries:
		return fmt.Errorf("%d uses, %d replace entries: at most %d each", len(s.Uses), len(s.Replace), MaxEntries)
	}
	if err := s.validateBuild(); err != nil {
		return err
	}
	switch s.Quirks.Fetch {
	case "":
		// The most adversarial model: a missing sync must show without
		// the author knowing to ask for it.
		s.Quirks.Fetch = "torn"
	case "coherent", "stale", "torn":
	default:
		return fmt.Errorf("quirks.fetch = %q: want \"coherent\", \"stale\" or \"torn\"", s.Quirks.Fetch)
	}
	if s.Quirks.IBTNoTrack && !s.Quirks.IBT {
		return fmt.Errorf("quirks.ibt_notrack = true needs quirks.ibt = true (NO_TRACK_EN means nothing without ENDBR_EN)")
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
	// A rate is a chance per decision; at 1 no CPU would ever be stepped
	// (every decision an interrupt), and NaN compares false to any bound.
	for _, r := range []struct {
		key string
		v   float64
	}{{"timer_rate", s.Schedule.TimerRate}, {"nmi_rate", s.Schedule.NMIRate}} {
		if !(r.v >= 0 && r.v < 1) || math.IsNaN(r.v) {
			return fmt.Errorf("schedule.%s = %v: must be in [0, 1)", r.key, r.v)
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
			return fmt.Errorf("inject %d: missing at (\"file.c:LINE\", \"symbol\" or \"symbol+offset\")", i+1)
		}
		if err := checkAddrExpr(in.At); err != nil {
			return fmt.Errorf("inject %d: %v", i+1, err)
		}
	}
	if len(s.Report.Counters) > MaxEntries {
		return fmt.Errorf("report.counters: %d names: at most %d", len(s.Report.Counters), MaxEntries)
	}
	seenCounter := map[string]bool{}
	for _, name := range s.Report.Counters {
		if !validSymbol.MatchString(name) {
			return fmt.Errorf("report.counters: %q: not a symbol name", name)
		}
		if seenCounter[name] {
			return fmt.Errorf("report.counters: %q listed twice", name)
		}
		seenCounter[name] = true
	}
	for i, mc := range s.Contract.MustCall {
		if mc.Site == "" || len(mc.Handlers) == 0 {
			return fmt.Errorf("contract.must_call %d: needs site and handlers", i+1)
		}
		for _, e := range append([]string{mc.Site}, mc.Handlers...) {
			if err := checkAddrExpr(e); err != nil {
				return fmt.Errorf("contract.must_call %d: %v", i+1, err)
			}
		}
		if mc.Length > MaxSiteLength {
			return fmt.Errorf("contract.must_call %d: length %d: a site is one instruction, at most %d bytes", i+1, mc.Length, MaxSiteLength)
		}
		if err := mc.Preserves.check(fmt.Sprintf("contract.must_call %d", i+1)); err != nil {
			return err
		}
	}
	if len(s.Contract.AsmSites) > MaxEntries {
		return fmt.Errorf("%d asm_sites entries: at most %d", len(s.Contract.AsmSites), MaxEntries)
	}
	for i, as := range s.Contract.AsmSites {
		key := fmt.Sprintf("contract.asm_sites %d", i+1)
		if as.Site == "" {
			return fmt.Errorf("%s: needs site (\"file.c:LINE\", a symbol or asm label, or \"symbol+offset\")", key)
		}
		if err := checkAddrExpr(as.Site); err != nil {
			return fmt.Errorf("%s: %v", key, err)
		}
		if as.Length == 0 || as.Length > MaxAsmSiteLength {
			return fmt.Errorf("%s: length %d: want the site's size in bytes, 1..%d", key, as.Length, MaxAsmSiteLength)
		}
		if as.Preserves.Empty() {
			return fmt.Errorf("%s: needs preserves (\"all\" or a list of register names): a site that preserves nothing checks nothing", key)
		}
		if err := as.Preserves.check(key); err != nil {
			return err
		}
	}
	for i, h := range s.Contract.ReturnHijacks {
		if !validSymbol.MatchString(h.Handler) || !validSymbol.MatchString(h.Trampoline) {
			return fmt.Errorf("contract.return_hijacks %d: handler %q and trampoline %q must be symbol names", i+1, h.Handler, h.Trampoline)
		}
	}
	return nil
}

// validSymbol is what a C identifier (a per-CPU variable's name) looks like.
var validSymbol = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// validLib is what a built-in library name looks like.
var validLib = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// validateBuild checks the form of base, uses and replace; whether the
// directories and files exist is the builder's to check.
func (s *Spec) validateBuild() error {
	if strings.ContainsRune(s.Base, 0) {
		return fmt.Errorf("base = %q: not a path", s.Base)
	}
	seen := map[string]bool{}
	for i, u := range s.Uses {
		switch {
		case strings.Contains(u, "/"):
			if strings.ContainsRune(u, 0) || path.Clean(u) == "." || path.Clean(u) == "/" {
				return fmt.Errorf("uses[%d] = %q: not a library directory", i, u)
			}
		case !validLib.MatchString(u):
			return fmt.Errorf("uses[%d] = %q: want a built-in library name or a directory path containing '/' (e.g. \"./mylib\")", i, u)
		}
		if seen[u] {
			return fmt.Errorf("uses[%d] = %q: listed twice", i, u)
		}
		seen[u] = true
	}
	seen = map[string]bool{}
	for i, r := range s.Replace {
		name, ok := strings.CutPrefix(r, "base/")
		if !ok || name == "" || strings.Contains(name, "/") || !fs.ValidPath(r) {
			return fmt.Errorf("replace[%d] = %q: want \"base/FILE\", a file of the base", i, r)
		}
		if seen[r] {
			return fmt.Errorf("replace[%d] = %q: listed twice", i, r)
		}
		seen[r] = true
	}
	return nil
}

// checkAddrExpr checks the form of a "file.c:LINE", "symbol",
// "symbol+offset" or number address: a line must be a positive decimal
// number, an offset a number that fits 64 bits ("f+0xffff..." longer than
// that wrapped). Whether the file:line has code or the symbol exists and
// the sum fits is checked against the slice (emu.Image.Resolve).
func checkAddrExpr(expr string) error {
	if i := strings.LastIndexByte(expr, ':'); i >= 0 {
		n, err := strconv.Atoi(expr[i+1:])
		if i == 0 || err != nil || n <= 0 || expr[i+1] == '+' || strings.ContainsAny(expr[:i], " \t+") {
			return fmt.Errorf("address %q: want file.c:LINE (a positive line number), symbol or symbol+offset", expr)
		}
		return nil
	}
	name, off, plus := strings.Cut(expr, "+")
	if i := strings.LastIndex(expr, "+"); i > 0 {
		name, off, plus = expr[:i], expr[i+1:], true
	}
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("address %q: no symbol", expr)
	}
	if plus {
		off = strings.TrimSpace(off)
		if _, err := parseUint(off); err != nil {
			return fmt.Errorf("address %q: bad offset %q (want a number below 2^64)", expr, off)
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
	return LoadFile(fsys, path.Join(dir, "scenario.toml"))
}

// LoadFile reads the scenario file file from fsys and the slice it names
// (relative to file's directory). Both must be regular files within their
// size limits: a symlink to /dev/zero or a FIFO is refused before it is
// opened.
func LoadFile(fsys fs.FS, file string) (*Spec, error) {
	text, err := readRegular(fsys, file, MaxTextBytes)
	if err != nil {
		return nil, &Error{File: file, Msg: "load scenario: " + err.Error(), Err: err}
	}
	s, err := Parse(file, text)
	if err != nil {
		return nil, err
	}
	elf := path.Join(path.Dir(file), s.Slice)
	if s.ELF, err = readRegular(fsys, elf, MaxSliceBytes); err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("slice %q: %v", s.Slice, err), Err: err}
	}
	return s, nil
}

// readRegular reads name if it is a regular file of at most limit bytes.
func readRegular(fsys fs.FS, name string, limit int64) ([]byte, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file but %s", fileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", st.Size(), limit)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than the limit of %d bytes", limit)
	}
	return b, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a " + m.Type().String() + " file"
}

// parseUint parses a TOML-style unsigned integer: decimal, 0x, 0o or 0b.
func parseUint(s string) (uint64, error) {
	return strconv.ParseUint(s, 0, 64)
}

// Package record is the bridge from a running machine to a trace file: a
// Sink that turns every machine event into a trace row, the metadata that
// makes a trace self-contained (scenario text, slice ELF, symbols, quirks,
// seed, decision log), and the writer lifecycle (temporary name, rename on
// success, --force).
package record

import (
	"fmt"
	"math/bits"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/scenario"
	"golang.org/x/arch/x86/x86asm"
)

// devVersion is the version of a build that names none (go test, go run,
// a build outside a module's version control).
const devVersion = "0.1.0-dev"

// Version is the version of this patchtrace, recorded in every trace: the
// main module's version from the build information (runtime/debug), as the
// go command stamps it (a tag for go install ...@v1.2.3, a pseudo-version
// for a build in a git checkout), or 0.1.0-dev when it names none.
// Options.ToolVersion records another.
var Version = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return devVersion
})

// Appender is what a Recorder writes rows to (a *format.Writer).
type Appender interface {
	Append(r *format.Row) error
}

// Recorder implements emu.Sink. It converts each event into a format.Row in
// place (no allocation per event) and appends it. The first append error is
// kept and later events are counted as dropped.
type Recorder struct {
	w Appender
	// fw is w when it is a trace writer: insn events go to it without a
	// Row.
	fw *format.Writer
	// rows holds one Row per kind. Event assigns every field its kind
	// uses, so the fields a kind does not use stay zero without clearing
	// the whole Row for every event.
	rows       [16]format.Row
	percpuName []string   // per-CPU section offset -> variable name ("" if none)
	kinds      [16]uint64 // events seen per kind
	err        error
	errSeq     uint64
	dropped    uint64
}

var _ emu.InsnSink = (*Recorder)(nil)

// NewRecorder returns a recorder for img's events appending to w.
func NewRecorder(w Appender, img *emu.Image) *Recorder {
	r := &Recorder{w: w}
	switch fw := w.(type) {
	case *format.Writer:
		r.fw = fw
	case *format.File:
		r.fw = fw.Writer
	}
	size := img.PercpuSize()
	r.percpuName = make([]string, size)
	for _, s := range img.Symbols {
		if !s.PerCPU || s.Size == 0 {
			continue
		}
		for o := s.Addr; o < s.Addr+s.Size && o < size; o++ {
			if r.percpuName[o] == "" {
				r.percpuName[o] = s.Name
			}
		}
	}
	for k := range r.rows {
		r.rows[k].Kind = format.Kind(k)
	}
	return r
}

// Err returns the first write error and how many events were dropped after
// it.
func (r *Recorder) Err() (error, uint64, uint64) { return r.err, r.errSeq, r.dropped }

// Kinds returns how many events of each kind (indexed by kind number)
// the recorder has seen.
func (r *Recorder) Kinds() []uint64 { return r.kinds[:format.KindLoad+1] }

// Event implements emu.Sink.
func (r *Recorder) Event(e *emu.Event) {
	if r.err != nil || int(e.Kind) >= len(r.rows) {
		if r.err == nil {
			r.err, r.errSeq = fmt.Errorf("unknown event kind %d", e.Kind), e.Seq
		}
		r.dropped++
		return
	}
	r.kinds[e.Kind]++
	if e.Kind == emu.EvInsn && r.fw != nil {
		if err := r.fw.AppendInsn(e.Seq, e.CPU, e.Task, e.Depth, e.RIP, e.Len, &e.Bytes, e.Op, e.RSP, e.Flags, e.RegMask, &e.Regs); err != nil {
			r.err, r.errSeq = err, e.Seq
		}
		return
	}
	row := &r.rows[e.Kind]
	row.Seq, row.CPU, row.Task, row.Depth, row.RIP = e.Seq, e.CPU, e.Task, e.Depth, e.RIP
	// emu's and format's Regs are indexed alike (TestEnumTwins). Only
	// the registers in the mask are copied; those the row held for an
	// earlier event and this one does not set are cleared, so that the
	// row is what a reader returns.
	if e.RegMask|row.RegMask != 0 {
		for m := row.RegMask &^ e.RegMask; m != 0; m &= m - 1 {
			row.Regs[bits.TrailingZeros32(m)] = 0
		}
		for m := e.RegMask; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			row.Regs[i] = e.Regs[i]
		}
		row.RegMask = e.RegMask
	}
	switch e.Kind {
	case emu.EvInsn:
		row.Len, row.Bytes, row.Op, row.RSP, row.RFlags = e.Len, e.Bytes, e.Op, e.RSP, e.Flags
	case emu.EvWrite, emu.EvPercpuRead, emu.EvLoad:
		row.Addr, row.HasAddr, row.Size, row.Old, row.New = e.Addr, true, e.Size, e.Old, e.New
		row.Alias, row.AliasAddr = e.Alias, e.AliasAddr
		row.Percpu, row.PercpuCPU, row.PercpuOff, row.PercpuVar = false, 0, 0, ""
		if e.Percpu {
			row.Percpu, row.PercpuCPU, row.PercpuOff = true, e.PercpuCPU, e.PercpuOff
			if int(e.PercpuOff) < len(r.percpuName) {
				row.PercpuVar = r.percpuName[e.PercpuOff]
			}
		}
	case emu.EvTrap:
		row.Vector, row.HasVector, row.Handler, row.RSP, row.IST, row.RFlags = uint8(e.Vector), true, e.Handler, e.RSP, e.IST, e.Flags
		row.ErrCode, row.HasErrCode = e.ErrCode, true
		row.Addr, row.HasAddr, row.Size = e.Addr, true, e.Size
	case emu.EvIret:
		row.Handler, row.RSP, row.RFlags = e.Handler, e.RSP, e.Flags
	case emu.EvPerm:
		row.Addr, row.HasAddr, row.Size, row.PermOld, row.PermNew, row.Service = e.Addr, true, e.Size, uint8(e.PermOld), uint8(e.PermNew), format.Service(e.Service)
		row.Alias, row.AliasAddr = e.Alias, e.AliasAddr
	case emu.EvSerialize:
		row.Cause = format.Cause(e.Cause)
	case emu.EvSwitch:
		row.Old, row.New = e.Old, e.New
	case emu.EvService:
		row.Service, row.Args, row.Ret = format.Service(e.Service), e.Args, e.Ret
	case emu.EvMarker:
		row.Args, row.Msg = e.Args, e.Msg
	case emu.EvFault:
		row.Vector, row.HasVector, row.ErrCode, row.HasErrCode = uint8(e.Vector), true, e.ErrCode, true
		row.Addr, row.HasAddr, row.Msg, row.Service = e.Addr, true, e.Msg, format.Service(e.Service)
	case emu.EvInject:
		row.Vector, row.HasVector, row.Addr, row.HasAddr = uint8(e.Vector), true, e.Addr, true
	}
	if err := r.w.Append(row); err != nil {
		r.err, r.errSeq = err, e.Seq
	}
}

// Insn implements emu.InsnSink: an insn event, as Event would take it.
func (r *Recorder) Insn(seq uint64, cpu uint16, task uint32, depth uint8, rip uint64, n uint8, bytes *[15]byte, op uint16, rsp, flags uint64,
	regMask uint32, regs *[emu.NumRegs]uint64) {
	if r.err != nil || r.fw == nil {
		e := emu.Event{Seq: seq, Kind: emu.EvInsn, CPU: cpu, Task: task, Depth: depth, RIP: rip, Len: n, Bytes: *bytes, Op: op, RSP: rsp, Flags: flags, RegMask: regMask}
		for m := regMask; m != 0; m &= m - 1 {
			i := bits.TrailingZeros32(m)
			e.Regs[i] = regs[i]
		}
		r.Event(&e)
		return
	}
	r.kinds[emu.EvInsn]++
	if err := r.fw.AppendInsn(seq, cpu, task, depth, rip, n, bytes, op, rsp, flags, regMask, regs); err != nil {
		r.err, r.errSeq = err, seq
	}
}

// OpNames is the op dictionary: OpNames[x86asm.Op] is its mnemonic, so an
// insn row's op index is the x86asm.Op value itself.
func OpNames() []string {
	var names []string
	for op := 0; ; op++ {
		s := x86asm.Op(op).String()
		if op > 0 && (s == "" || s[0] == 'O' && len(s) > 3 && s[:3] == "Op(") {
			break
		}
		if op == 0 {
			s = "?"
		}
		names = append(names, s)
	}
	return names
}

// Meta builds the trace metadata for a run of spec on img. It says loads
// and register deltas are recorded, as they are by default (Run clears
// Loads and Regs for Options.NoLoads and NoRegs).
func Meta(spec *scenario.Spec, img *emu.Image, cpus int, seed uint64) format.Meta {
	md := format.Meta{
		Loads:        true,
		Regs:         true,
		Scenario:     spec.ID,
		ScenarioText: spec.Text,
		ELF:          img.Raw,
		CPUs:         cpus,
		Seed:         seed,
		ToolVersion:  Version(),
		Quirks: map[string]string{
			"nmi_in_sti_shadow": strconv.FormatBool(spec.Quirks.NMIInSTIShadow),
			"fetch":             spec.Quirks.Fetch,
		},
		OpNames: OpNames(),
	}
	if spec.Quirks.IBT {
		// Only when on, so that traces of runs without IBT keep their bytes.
		md.Quirks["ibt"] = "true"
		md.Quirks["ibt_notrack"] = strconv.FormatBool(spec.Quirks.IBTNoTrack)
	}
	seen := map[string]bool{}
	for _, s := range img.Symbols {
		sec := s.Section
		md.Symbols = append(md.Symbols, format.Symbol{Name: s.Name, Addr: s.Addr, Size: s.Size, Section: sec})
		if s.PerCPU && s.Size > 0 && !seen[s.Name] {
			seen[s.Name] = true
			md.PercpuVars = append(md.PercpuVars, s.Name)
		}
	}
	return md
}

// Outcome returns the trace outcome (format.Outcomes) of a finished run
// and its detail: the stop message, or the emulator error.
func Outcome(res emu.Result) (outcome, detail string) {
	detail = res.Msg
	if detail == "" && res.Err != nil {
		detail = res.Err.Error()
	}
	return res.Stop.String(), detail
}

// Options configure Run.
type Options struct {
	emu.Options
	Force     bool // replace an existing output file
	BatchRows int  // rows per record batch (0: the format's default)
	// Tee also receives every row (e.g. analyze.Live for in-process
	// analysis); with an empty path it is the only destination. A Tee with
	// a SetOutcome(outcome, detail string) method is told the run's outcome
	// when the run ends.
	Tee Appender
	// (Options.NoLoads and NoRegs leave loads and register deltas out of
	// the trace; its metadata says so: format.Meta.Loads, Regs.)
	// Source, when set, supplies the run's decisions instead of the seeded
	// random source (explore writes a minimised run by replaying its log
	// through an emu.LogSource).
	Source emu.DecisionSource
	// ToolVersion, when set, is recorded as the version of the tool that
	// wrote the trace instead of Version().
	ToolVersion string
}

// outcomeSetter is a Tee that wants the run's outcome (analyze.Live).
type outcomeSetter interface{ SetOutcome(outcome, detail string) }

// multi appends to several appenders.
type multi []Appender

func (m multi) Append(r *format.Row) error {
	for _, a := range m {
		if err := a.Append(r); err != nil {
			return err
		}
	}
	return nil
}

// fileLike is where a run's rows go: a *format.File, or memOnly when there
// is no file.
type fileLike interface {
	Appender
	SetFinal(format.Final)
	Events() uint64
	Close() error
	Abort() error
}

// memOnly hands rows to an appender without writing a file.
type memOnly struct {
	Appender
	n uint64
}

func (m *memOnly) Append(r *format.Row) error { m.n++; return m.Appender.Append(r) }
func (m *memOnly) SetFinal(format.Final)      {}
func (m *memOnly) Events() uint64             { return m.n }
func (m *memOnly) Close() error               { return nil }
func (m *memOnly) Abort() error               { return nil }

// Result is a recorded run.
type Result struct {
	emu.Result
	Machine *emu.Machine
	Path    string
	Events  uint64
	// Kinds counts the events of each kind (indexed by kind number) the
	// machine emitted.
	Kinds []uint64
}

// Run records spec into a trace at path: the file appears under its name
// only when the run and the write both finished (a failed or killed run
// leaves nothing under path; see format.CreateFile). With an empty path
// rows go only to opt.Tee.
func Run(spec *scenario.Spec, path string, opt Options) (*Result, error) {
	img, err := emu.LoadImage(spec.ID+"/"+spec.Slice, spec.ELF)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", spec.ID, err)
	}
	cfg, _, err := emu.ConfigFor(spec, opt.Options)
	if err != nil {
		return nil, err
	}
	var wopts []format.Option
	if opt.BatchRows > 0 {
		wopts = append(wopts, format.WithBatchRows(opt.BatchRows))
	}
	var f fileLike
	if path == "" {
		if opt.Tee == nil {
			return nil, fmt.Errorf("record %s: no output", spec.ID)
		}
		f = &memOnly{Appender: opt.Tee}
	} else {
		md := Meta(spec, img, cfg.CPUs, opt.Seed)
		md.Loads, md.Regs = !opt.NoLoads, !opt.NoRegs
		if opt.ToolVersion != "" {
			md.ToolVersion = opt.ToolVersion
		}
		b := cfg.Budget()
		md.Budget = &format.Budget{MaxInsns: b.MaxInsns, MaxDecisions: b.MaxDecisions}
		ff, err := format.CreateFile(path, md, opt.Force, wopts...)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", spec.ID, err)
		}
		f = ff
	}
	var dst Appender = f
	if opt.Tee != nil && path != "" {
		dst = multi{f, opt.Tee}
	}
	rec := NewRecorder(dst, img)
	o := opt.Options
	o.Sink = rec
	m, src, err := emu.SetupImage(spec, img, o)
	if err != nil {
		f.Abort()
		return nil, err
	}
	var ds emu.DecisionSource = src
	if opt.Source != nil {
		ds = opt.Source
	}
	res := m.Run(ds)
	if werr, seq, _ := rec.Err(); werr != nil {
		f.Abort()
		return nil, fmt.Errorf("record %s: writing event %d: %w", spec.ID, seq, werr)
	}
	outcome, detail := Outcome(res)
	f.SetFinal(format.Final{
		Decisions:       emu.EncodeDecisions(res.Decisions),
		DecisionsFormat: emu.DecisionsFormat,
		DecisionCount:   len(res.Decisions),
		Outcome:         outcome,
		OutcomeDetail:   detail,
	})
	if o, ok := opt.Tee.(outcomeSetter); ok {
		o.SetOutcome(outcome, detail)
	}
	events := f.Events()
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("record %s: %w", spec.ID, err)
	}
	if res.Err != nil {
		// The trace up to the failure is kept: it shows where the run stopped.
		return &Result{Result: res, Machine: m, Path: path, Events: events, Kinds: rec.Kinds()}, fmt.Errorf("record %s: %w (trace kept in %s)", spec.ID, res.Err, path)
	}
	return &Result{Result: res, Machine: m, Path: path, Events: events, Kinds: rec.Kinds()}, nil
}

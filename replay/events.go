package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/patchtrace/patchtrace/format"
	"golang.org/x/arch/x86/x86asm"
)

// EventText renders trace rows one per line, as `patchtrace events`
// prints them: seq, cpu, task, trap depth, kind, where (rip as
// symbol+offset), the instruction in AT&T syntax as objdump prints it
// (insn rows), and what the event read, wrote or changed.
//
// It folds register deltas as it goes (Observe, or Line and JSON, which
// observe the row), so that a register change reads "rax 0x0 -> 0x1";
// when the rows seen so far do not include the register's previous value
// (the listing started after the CPU's start row), it reads "rax = 0x1".
// Rows must be given in sequence order.
type EventText struct {
	Syms *Symbols
	// Source adds to each text line the file:line of its rip (from the
	// symbols' line table: MetaSymbols).
	Source bool
	OpName func(op uint16) string // the trace's op dictionary (Reader.OpName)
	regs   []RegFile              // per CPU, what the rows seen so far say
	// writers is the last store to each byte seen so far, by 8-byte
	// word: a load names the store it read from. It grows with the words
	// a run writes, not with its events.
	writers map[uint64]*wordWriters
	insns   map[insnKey]string // decoded instructions
	// fromStart: the rows seen so far start at the trace's first event,
	// so a byte no store wrote holds the slice image's value.
	fromStart bool
}

// wordWriters is, per byte of an 8-byte word, the seq+1 of the last
// store to it (0: none seen) and the storing CPU.
type wordWriters struct {
	seq [8]uint64
	cpu [8]uint16
}

// NewEventText makes an EventText for a trace of cpus CPUs.
func NewEventText(syms *Symbols, opName func(uint16) string, cpus int) *EventText {
	return &EventText{Syms: syms, OpName: opName, regs: make([]RegFile, cpus), writers: map[uint64]*wordWriters{}, insns: map[insnKey]string{}}
}

// FromStart says that the rows given start at the trace's first event:
// a load of bytes no store wrote then reads "(from the slice image)".
func (e *EventText) FromStart() { e.fromStart = true }

// noteWrite records r's bytes as last written by r.
func (e *EventText) noteWrite(r *format.Row) {
	for i := uint64(0); i < uint64(r.Size) && i < 8; i++ {
		a := r.Addr + i
		w := e.writers[a>>3]
		if w == nil {
			w = &wordWriters{}
			e.writers[a>>3] = w
		}
		w.seq[a&7], w.cpu[a&7] = r.Seq+1, r.CPU
	}
}

// Writer returns the last store seen to any byte of [addr, addr+size):
// its seq and CPU, and false when none was seen.
func (e *EventText) Writer(addr uint64, size uint32) (seq uint64, cpu uint16, ok bool) {
	for i := uint64(0); i < uint64(size) && i < 8; i++ {
		a := addr + i
		if w := e.writers[a>>3]; w != nil && w.seq[a&7] > seq {
			seq, cpu = w.seq[a&7], w.cpu[a&7]
		}
	}
	if seq == 0 {
		return 0, 0, false
	}
	return seq - 1, cpu, true
}

// source says where a load's value came from.
func (e *EventText) source(r *format.Row) string {
	if seq, cpu, ok := e.Writer(r.Addr, r.Size); ok {
		return fmt.Sprintf(" (stored at seq %d by cpu%d)", seq, cpu)
	}
	if e.fromStart {
		return " (from the slice image)"
	}
	return ""
}

// SetRegs sets what the formatter knows of cpu's registers (a listing that
// starts at a reconstructed point: Cursor.Regs).
func (e *EventText) SetRegs(cpu int, rf RegFile) {
	if cpu >= 0 && cpu < len(e.regs) {
		e.regs[cpu] = rf
	}
}

// Observe folds r's register deltas into the formatter's register state
// without rendering it (rows a filter leaves out).
func (e *EventText) Observe(r *format.Row) {
	if int(r.CPU) < len(e.regs) {
		e.regs[r.CPU].Apply(r)
	}
	if r.Kind == format.KindWrite {
		e.noteWrite(r)
	}
}

// Insn returns r's instruction in AT&T syntax ("" for other kinds, "(bad)"
// when the bytes do not decode).
func (e *EventText) Insn(r *format.Row) string {
	if r.Kind != format.KindInsn {
		return ""
	}
	k := insnKey{r.RIP, r.Bytes, r.Len}
	if s, ok := e.insns[k]; ok {
		return s
	}
	s := "(bad)"
	if in, err := x86asm.Decode(r.Instruction(), 64); err == nil {
		s = x86asm.GNUSyntax(in, r.RIP, e.symName)
	}
	if len(e.insns) >= maxInsnCache {
		clear(e.insns)
	}
	e.insns[k] = s
	return s
}

// insnKey is an instruction as executed: where, and its bytes.
type insnKey struct {
	rip   uint64
	bytes [15]byte
	n     uint8
}

// maxInsnCache bounds the decoded instructions kept (a run executes a few
// thousand distinct ones; patched text adds a few).
const maxInsnCache = 1 << 16

func (e *EventText) symName(addr uint64) (string, uint64) {
	if s, ok := e.Syms.At(addr); ok {
		return s.Name, s.Addr
	}
	return "", 0
}

// where describes a data address: a per-CPU variable as var+off@cpuN, a
// symbol as symbol+off, else hex.
func (e *EventText) where(r *format.Row, addr uint64) string {
	if r.Percpu || r.Kind == format.KindPercpuRead {
		name := r.PercpuVar
		off := uint64(r.PercpuOff)
		if name == "" {
			if s, ok := e.Syms.PercpuAt(off); ok {
				name = s.Name
				off -= s.Addr
			} else {
				return fmt.Sprintf("%#x@cpu%d", addr, r.PercpuCPU)
			}
		} else if s, ok := e.Syms.Lookup(name); ok && off >= s.Addr {
			off -= s.Addr
		}
		if off != 0 {
			return fmt.Sprintf("%s+%#x@cpu%d", name, off, r.PercpuCPU)
		}
		return fmt.Sprintf("%s@cpu%d", name, r.PercpuCPU)
	}
	return e.Syms.Describe(addr)
}

// serviceArgs is how many arguments each service takes (format.Services
// order); the rest of arg0..arg3 are not printed.
var serviceArgs = map[format.Service]int{
	1: 3, 2: 2, 3: 2, 4: 2, 5: 2, 6: 1, 7: 2, 8: 1, 9: 1, 10: 2, 11: 2, 12: 0,
}

func sizeNote(size uint32) string {
	if size == 8 {
		return ""
	}
	if size == 1 {
		return " (1 byte)"
	}
	return fmt.Sprintf(" (%d bytes)", size)
}

// What says what r did, without the common columns: the event, then the
// registers it changed.
func (e *EventText) What(r *format.Row) string {
	w, regs := e.what(r), e.regChanges(r)
	switch {
	case regs == "":
		return w
	case w == "":
		return regs
	}
	return w + "; " + regs
}

func (e *EventText) what(r *format.Row) string {
	d := e.Syms.Describe
	switch r.Kind {
	case format.KindInsn:
		return ""
	case format.KindWrite:
		if r.Alias {
			return fmt.Sprintf("store via alias %#x [%s] %#x -> %#x%s", r.AliasAddr, d(r.Addr), r.Old, r.New, sizeNote(r.Size))
		}
		return fmt.Sprintf("store [%s] %#x -> %#x%s", e.where(r, r.Addr), r.Old, r.New, sizeNote(r.Size))
	case format.KindPercpuRead, format.KindLoad:
		return fmt.Sprintf("load [%s] = %#x%s%s", e.where(r, r.Addr), r.New, sizeNote(r.Size), e.source(r))
	case format.KindTrap:
		s := fmt.Sprintf("%s at %s -> %s (rsp %#x, rflags %#x", format.VectorName(r.Vector), d(r.RIP), d(r.Handler), r.RSP, r.RFlags)
		if r.IST != 0 {
			s += fmt.Sprintf(", ist %d", r.IST)
		}
		// The recorder fills err_code and addr for every trap; they mean
		// something for the vectors that push an error code (SDM Vol. 3
		// Table 6-1) and for #PF (CR2) and #DB (DR6).
		switch r.Vector {
		case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
			s += fmt.Sprintf(", error code %#x", r.ErrCode)
		}
		switch r.Vector {
		case 14:
			s += fmt.Sprintf(", cr2 %#x", r.Addr)
		case 1:
			s += fmt.Sprintf(", dr6 %#x", r.Addr)
		}
		return s + ")"
	case format.KindIret:
		return fmt.Sprintf("iretq -> %s (rsp %#x, rflags %#x)", d(r.Handler), r.RSP, r.RFlags)
	case format.KindPerm:
		who := "boot"
		if r.Service != 0 {
			who = r.Service.String()
		}
		if r.Alias {
			return fmt.Sprintf("%s: alias page %#x of text page %#x %s -> %s", who, r.AliasAddr, r.Addr, format.PermString(r.PermOld), format.PermString(r.PermNew))
		}
		return fmt.Sprintf("%s: %d pages at %#x %s -> %s", who, r.Size, r.Addr, format.PermString(r.PermOld), format.PermString(r.PermNew))
	case format.KindSerialize:
		return "serializes (" + r.Cause.String() + ")"
	case format.KindSwitch:
		return fmt.Sprintf("switch task %d -> %d", r.Old, r.New)
	case format.KindService:
		n, ok := serviceArgs[r.Service]
		if !ok {
			n = 4
		}
		args := make([]string, n)
		for i := range args {
			args[i] = e.value(r.Args[i])
		}
		return fmt.Sprintf("%s(%s) = %#x", r.Service, strings.Join(args, ", "), r.Ret)
	case format.KindMarker:
		s := fmt.Sprintf("marker %d = %#x", r.Args[0], r.Args[1])
		if r.Msg != "" {
			s += " " + strconv.Quote(r.Msg)
		}
		return s
	case format.KindFault:
		s := r.Msg
		if r.HasVector {
			s += " (" + format.VectorName(r.Vector)
			if r.HasAddr {
				s += fmt.Sprintf(" at %#x", r.Addr)
			}
			s += ")"
		}
		return s
	case format.KindInject:
		return fmt.Sprintf("raise %s on cpu%d", format.VectorName(r.Vector), r.Addr)
	case format.KindHalt:
		return "halts"
	}
	return r.Kind.String()
}

// value prints an argument: symbol+off when a symbol covers it, else hex.
func (e *EventText) value(v uint64) string {
	if _, ok := e.Syms.At(v); ok && v > 0xffff {
		return e.Syms.Describe(v)
	}
	return fmt.Sprintf("%#x", v)
}

// Line renders r as one line (no newline) and folds its register deltas.
func (e *EventText) Line(r *format.Row) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%9d cpu%-2d t%-3d d%d %-11s %-28s", r.Seq, r.CPU, r.Task, r.Depth, r.Kind, e.Syms.Describe(r.RIP))
	if r.Kind == format.KindInsn {
		fmt.Fprintf(&sb, " %-34s", e.Insn(r))
	}
	if w := e.What(r); w != "" {
		sb.WriteByte(' ')
		sb.WriteString(w)
	}
	if fl := e.Syms.Line(r.RIP); e.Source && fl != "" {
		s := strings.TrimRight(sb.String(), " ")
		sb.Reset()
		sb.WriteString(s + "  @ " + fl)
	}
	e.Observe(r)
	return strings.TrimRight(sb.String(), " ")
}

// RegFileText renders cpu's registers as the rows seen so far leave them:
// "rax=0x1 rbx=0x0 ... rflags=0x246" ("?" for a register not known yet).
func (e *EventText) RegFileText(cpu uint16) string {
	if int(cpu) >= len(e.regs) {
		return ""
	}
	rf := &e.regs[cpu]
	var sb strings.Builder
	for i, name := range format.RegNames {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(name)
		sb.WriteByte('=')
		if v, ok := rf.Get(i); ok {
			sb.WriteString(hex(v))
		} else {
			sb.WriteByte('?')
		}
	}
	return sb.String()
}

// RegFileMap is RegFileText for JSON: the known registers by name.
func (e *EventText) RegFileMap(cpu uint16) map[string]string {
	if int(cpu) >= len(e.regs) {
		return nil
	}
	m := map[string]string{}
	for i, name := range format.RegNames {
		if v, ok := e.regs[cpu].Get(i); ok {
			m[name] = hex(v)
		}
	}
	return m
}

// EventJSON is one event as `patchtrace events --json` prints it. Numbers
// that are addresses or values are hex strings (they exceed 2^53).
type EventJSON struct {
	Seq   uint64 `json:"seq"`
	CPU   uint16 `json:"cpu"`
	Task  uint32 `json:"task"`
	Depth uint8  `json:"depth"`
	Kind  string `json:"kind"`
	RIP   string `json:"rip"`
	Where string `json:"where"`
	// Source is rip's file:line in the slice's sources (its line table),
	// when known.
	Source string `json:"source,omitempty"`
	Insn   string `json:"insn,omitempty"`
	Bytes  string `json:"bytes,omitempty"`
	// Addr, Size, Old, New, Value: the memory access (write, load,
	// percpu_read; New/Value is the value stored or read).
	Addr   string `json:"addr,omitempty"`
	Target string `json:"target,omitempty"` // addr as symbol+off or var@cpuN
	Size   uint32 `json:"size,omitempty"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
	Alias  string `json:"alias_addr,omitempty"`
	// WriterSeq and WriterCPU: a load's value was stored by the write at
	// that seq on that CPU (the last store to its bytes in the rows
	// listed so far; absent when none was).
	WriterSeq *uint64 `json:"writer_seq,omitempty"`
	WriterCPU *uint16 `json:"writer_cpu,omitempty"`
	// Regs: the registers the event changed, with their new values;
	// RegsOld their previous values, where known.
	Regs    map[string]string `json:"regs,omitempty"`
	RegsOld map[string]string `json:"regs_old,omitempty"`
	// What says what happened, as the text line does.
	What string `json:"what"`
	// RegsAfter is the CPU's whole register file after the event
	// (events --regs).
	RegsAfter map[string]string `json:"regs_after,omitempty"`
}

// JSON renders r as one JSON object (no newline) and folds its register
// deltas.
func (e *EventText) JSON(r *format.Row) []byte { return e.json(r, false) }

// JSONRegs is JSON with the CPU's whole register file after r
// (regs_after).
func (e *EventText) JSONRegs(r *format.Row) []byte { return e.json(r, true) }

func (e *EventText) json(r *format.Row, regsAfter bool) []byte {
	j := EventJSON{Seq: r.Seq, CPU: r.CPU, Task: r.Task, Depth: r.Depth, Kind: r.Kind.String(),
		RIP: hex(r.RIP), Where: e.Syms.Describe(r.RIP), Source: e.Syms.Line(r.RIP)}
	if r.Kind == format.KindInsn {
		j.Insn = e.Insn(r)
		j.Bytes = fmt.Sprintf("%x", r.Instruction())
	}
	if r.Kind == format.KindWrite || r.Kind == format.KindPercpuRead || isLoad(r) {
		j.Addr, j.Target, j.Size, j.New = hex(r.Addr), e.where(r, r.Addr), r.Size, hex(r.New)
		if seq, cpu, ok := e.Writer(r.Addr, r.Size); ok && r.Kind != format.KindWrite {
			j.WriterSeq, j.WriterCPU = &seq, &cpu
		}
		if r.Kind == format.KindWrite {
			j.Old = hex(r.Old)
			if r.Alias {
				j.Alias = hex(r.AliasAddr)
				j.Target = e.Syms.Describe(r.Addr)
			}
		}
	}
	j.Regs, j.RegsOld = e.regMaps(r)
	j.What = e.What(r)
	e.Observe(r)
	if regsAfter {
		j.RegsAfter = e.RegFileMap(r.CPU)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "->" as is
	enc.Encode(&j)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

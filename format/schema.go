package format

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
)

// FormatVersion is the trace format version this package writes and the
// newest it reads. It is stored under [KeyFormatVersion]. Any change to the
// column table, an enum or a metadata key bumps it (see the compatibility
// promise in docs/trace-format.md); testdata/schema.golden pins each version.
const FormatVersion = 5

// Kind says what a row records. The numbers are stable; the trace stores
// the names (column "kind"). This is the one declaration of the event
// kinds: the emulator's emu.EventKind mirrors it without importing this
// package, and record's TestEnumTwins checks every number and name (as for
// Services, Causes, Vectors, Perms and Outcomes).
type Kind uint8

const (
	KindInsn       Kind = 1  // an instruction retired
	KindWrite      Kind = 2  // a memory store
	KindPercpuRead Kind = 3  // a load from a declared per-CPU slot
	KindTrap       Kind = 4  // an exception, interrupt or NMI was delivered
	KindIret       Kind = 5  // IRETQ returned through a trap frame
	KindPerm       Kind = 6  // page permissions changed
	KindSerialize  Kind = 7  // the CPU serialized
	KindSwitch     Kind = 8  // the slice's scheduler switched tasks
	KindService    Kind = 9  // a native kernel service ran
	KindMarker     Kind = 10 // a scenario marker
	KindFault      Kind = 11 // an unhandled fault (oops), panic or BUG
	KindInject     Kind = 12 // an interrupt or NMI was raised on a CPU
	KindHalt       Kind = 13 // the CPU halted waiting for an interrupt
	KindLoad       Kind = 14 // a data read (version 4)
	numKinds            = 15
)

// KindInfo documents one event kind.
type KindInfo struct {
	Kind    Kind
	Name    string // the stable name stored in the "kind" column
	Doc     string
	Example Query // a DuckDB query over the Parquet export
}

// Query is a documented example query. SQL reads 'trace.parquet'.
type Query struct {
	Title string
	SQL   string
}

// Kinds is the kind table, in numeric order.
var Kinds = []KindInfo{
	{KindInsn, "insn", "An instruction retired. `rsp` and `rflags` are the values before it executed; IF is bit 9 of `rflags`.",
		Query{"Instructions per CPU and the hottest addresses with their mnemonic",
			`SELECT cpu, printf('%x', rip) AS rip, op, count(*) AS n
FROM read_parquet('trace.parquet')
WHERE kind = 'insn'
GROUP BY ALL ORDER BY n DESC LIMIT 10;`}},
	{KindWrite, "write", "A memory store (one row per access of at most 8 bytes), with the old and new value. Stores through the text-poke alias have `alias` true; stores into a per-CPU area name the CPU, offset and variable.",
		Query{"Every store that went through the text-poke alias",
			`SELECT seq, cpu, printf('%x', addr) AS addr, size,
       printf('%x', old) AS old, printf('%x', new) AS new,
       printf('%x', alias_addr) AS alias_addr
FROM read_parquet('trace.parquet')
WHERE kind = 'write' AND alias
ORDER BY seq;`}},
	{KindPercpuRead, "percpu_read", "A load from a declared per-CPU slot (a scenario's return slots); `new` is the value read. Version 4 records it only when loads are not recorded (`record --no-loads`): otherwise such a read is a `load` row with the per-CPU columns.",
		Query{"Per-CPU variable reads by variable and reading CPU",
			`SELECT percpu_var, cpu, percpu_cpu, count(*) AS reads
FROM read_parquet('trace.parquet')
WHERE kind = 'percpu_read'
GROUP BY ALL ORDER BY ALL;`}},
	{KindTrap, "trap", "An exception, interrupt or NMI was delivered. `rip` is the saved RIP (after the 0xCC for int3), `handler` the new RIP, `rsp` the RSP after the frame was pushed, `rflags` the saved RFLAGS.",
		Query{"Trap deliveries by vector and nesting depth",
			`SELECT vector, depth, ist, count(*) AS n
FROM read_parquet('trace.parquet')
WHERE kind = 'trap'
GROUP BY ALL ORDER BY ALL;`}},
	{KindIret, "iret", "IRETQ returned from a trap frame: `handler` is the RIP returned to, `rsp` and `rflags` the restored values.",
		Query{"Where each CPU returned to from traps",
			`SELECT cpu, depth, printf('%x', handler) AS returned_to, count(*) AS n
FROM read_parquet('trace.parquet')
WHERE kind = 'iret'
GROUP BY ALL ORDER BY n DESC;`}},
	{KindPerm, "perm", "Page permissions changed: `addr` is the first page, `size` the page count, `perm_old`/`perm_new` the r=1 w=2 x=4 bits, `service` the service that changed them. For the text-poke alias page (`alias` true), `alias_addr` is the alias page and `addr` the text page it maps.",
		Query{"Permission changes that left a page writable and executable",
			`SELECT seq, cpu, service, printf('%x', addr) AS page, size AS pages, perm_old, perm_new
FROM read_parquet('trace.parquet')
WHERE kind = 'perm' AND (perm_new & 6) = 6
ORDER BY seq;`}},
	{KindSerialize, "serialize", "The CPU serialized: from now on it fetches the current bytes. `cause` says why.",
		Query{"Serializations per CPU and cause",
			`SELECT cpu, cause, count(*) AS n
FROM read_parquet('trace.parquet')
WHERE kind = 'serialize'
GROUP BY ALL ORDER BY ALL;`}},
	{KindSwitch, "switch", "The slice's scheduler switched tasks on `cpu`: `old` is the previous task id, `new` the next (0 is the CPU's boot/idle context).",
		Query{"The context-switch timeline",
			`SELECT seq, cpu, old AS prev_task, new AS next_task
FROM read_parquet('trace.parquet')
WHERE kind = 'switch'
ORDER BY seq;`}},
	{KindService, "service", "A native kernel service ran: its arguments (`arg0`..`arg3`) and return value.",
		Query{"Native service calls with their arguments",
			`SELECT seq, cpu, service, printf('%x', arg0) AS arg0, arg1, arg2, ret
FROM read_parquet('trace.parquet')
WHERE kind = 'service'
ORDER BY seq;`}},
	{KindMarker, "marker", "A scenario marker (`pt_marker(id, value)`): `arg0` is the id, `arg1` the value, `msg` an optional name.",
		Query{"Markers in order",
			`SELECT seq, cpu, task, arg0 AS id, arg1 AS value, msg
FROM read_parquet('trace.parquet')
WHERE kind = 'marker'
ORDER BY seq;`}},
	{KindFault, "fault", "A fault no handler claimed (an oops), a panic or a BUG; the run ends. `msg` says what happened.",
		Query{"The fault that ended the run",
			`SELECT seq, cpu, task, printf('%x', rip) AS rip, vector, err_code, printf('%x', addr) AS addr, msg
FROM read_parquet('trace.parquet')
WHERE kind = 'fault';`}},
	{KindInject, "inject", "An interrupt or NMI was raised (made pending): `cpu` is the CPU that raised it (or the scheduler's), `addr` the target CPU.",
		Query{"Raised interrupts by vector and target CPU",
			`SELECT vector, addr AS target_cpu, count(*) AS n
FROM read_parquet('trace.parquet')
WHERE kind = 'inject'
GROUP BY ALL ORDER BY ALL;`}},
	{KindHalt, "halt", "The CPU executed HLT and waits for an interrupt.",
		Query{"When each CPU halted",
			`SELECT cpu, min(seq) AS first, count(*) AS halts
FROM read_parquet('trace.parquet')
WHERE kind = 'halt'
GROUP BY cpu ORDER BY cpu;`}},
	{KindLoad, "load", "A data read an instruction performed (one row per access of at most 8 bytes; a read crossing a page is one row per byte, as for `write`), in access order among its instruction's rows: memory operands, stack pops, RET, the IRETQ frame, LEAVE, string instruction reads and the read of a read-modify-write or CMPXCHG/XCHG (before its write). `new` is the value read. Reads in a per-CPU area name the CPU, offset and variable. Instruction fetches and the implicit reads of system structures (the IDT, GDT, TSS and IST stack pointers) are not recorded. Since version 4; absent when the trace was recorded with `--no-loads` (metadata `patchtrace.recorded`).",
		Query{"Who last wrote the word each load read (the store before the load, same address)",
			`SELECT l.seq, l.cpu, printf('%x', l.addr) AS addr, printf('%x', l.new) AS value,
       (SELECT max(w.seq) FROM read_parquet('trace.parquet') w
        WHERE w.kind = 'write' AND w.addr = l.addr AND w.seq < l.seq) AS writer_seq
FROM read_parquet('trace.parquet') l
WHERE l.kind = 'load' AND l.cpu = 1
ORDER BY l.seq LIMIT 10;`}},
}

// String returns the kind's stable name.
func (k Kind) String() string {
	if k >= 1 && k < numKinds {
		return Kinds[k-1].Name
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is a kind of this format version.
func (k Kind) Valid() bool { return k >= 1 && k < numKinds }

// Service names a native kernel service; numbers equal emu.ServiceID.
type Service uint8

// Cause says why a CPU serialized; numbers equal emu.SerializeCause.
type Cause uint8

// EnumValue is one named value of an enum.
type EnumValue struct {
	Value uint8
	Name  string
	Doc   string
}

// Services is the service enum (column "service"), in numeric order from 1.
var Services = []EnumValue{
	{1, "text_poke", "text_poke(addr, src, len): write kernel text through a writable alias"},
	{2, "set_memory_ro", "set_memory_ro(addr, npages)"},
	{3, "set_memory_rw", "set_memory_rw(addr, npages)"},
	{4, "set_memory_x", "set_memory_x(addr, npages)"},
	{5, "set_memory_nx", "set_memory_nx(addr, npages)"},
	{6, "module_alloc", "module_alloc(size): returns rw- pages"},
	{7, "pt_send_ipi", "pt_send_ipi(cpu, vector): cpu -1 is all but self, -2 all"},
	{8, "panic", "panic(msg)"},
	{9, "pt_bug", "pt_bug(id): BUG()"},
	{10, "pt_marker", "pt_marker(id, value)"},
	{11, "pt_switch", "pt_switch(prev, next): the scheduler notes a context switch"},
	{12, "pt_cpu_done", "pt_cpu_done(): this CPU has finished its work"},
	{13, "vfree", "vfree(addr) (version 5): unmaps the pages of the module_alloc allocation at addr (later accesses fault)"},
	{14, "module_memfree", "module_memfree(addr) (version 5): as vfree, as the module loader frees its allocations"},
}

// Causes is the serialization-cause enum (column "cause"), numbered from 1.
var Causes = []EnumValue{
	{1, "iretq", "IRETQ"},
	{2, "cpuid", "CPUID"},
	{3, "start", "the CPU started"},
}

// Vectors names the vectors the machine uses (column "vector" stores the
// number). Numbers as in SDM Vol. 3 Table 6-1 and Linux irq_vectors.h.
var Vectors = []EnumValue{
	{0, "#DE", "divide error"},
	{1, "#DB", "debug (addr is DR6)"},
	{2, "NMI", "non-maskable interrupt"},
	{3, "#BP", "breakpoint (int3); the saved RIP is after the 0xCC"},
	{4, "#OF", "overflow"},
	{5, "#BR", "bound range"},
	{6, "#UD", "invalid opcode"},
	{7, "#NM", "device not available"},
	{8, "#DF", "double fault (error code)"},
	{10, "#TS", "invalid TSS (error code)"},
	{11, "#NP", "segment not present (error code)"},
	{12, "#SS", "stack fault (error code)"},
	{13, "#GP", "general protection (error code)"},
	{14, "#PF", "page fault (error code; addr is CR2)"},
	{16, "#MF", "x87 error"},
	{17, "#AC", "alignment check (error code)"},
	{18, "#MC", "machine check"},
	{0xec, "timer", "LOCAL_TIMER_VECTOR"},
	{0xfb, "ipi-call-function", "CALL_FUNCTION_VECTOR (sync_core IPIs)"},
	{0xfd, "ipi-reschedule", "RESCHEDULE_VECTOR"},
}

// Perms documents the permission bits of columns perm_old and perm_new.
var Perms = []EnumValue{
	{1, "r", "readable"},
	{2, "w", "writable"},
	{4, "x", "executable"},
}

func (s Service) String() string {
	if s >= 1 && int(s) <= len(Services) {
		return Services[s-1].Name
	}
	return "service(" + strconv.Itoa(int(s)) + ")"
}

func (c Cause) String() string {
	if c >= 1 && int(c) <= len(Causes) {
		return Causes[c-1].Name
	}
	return "cause(" + strconv.Itoa(int(c)) + ")"
}

// VectorName returns the vector's name ("#BP", "NMI", "timer") or "vec 0x..".
func VectorName(v uint8) string {
	for _, e := range Vectors {
		if e.Value == v {
			return e.Name
		}
	}
	return fmt.Sprintf("vec %#02x", v)
}

// PermString prints permission bits as "r-x".
func PermString(p uint8) string {
	b := []byte("---")
	if p&1 != 0 {
		b[0] = 'r'
	}
	if p&2 != 0 {
		b[1] = 'w'
	}
	if p&4 != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// Use says that a kind fills a column. When Cond is empty the column is
// never null for that kind; otherwise it is non-null exactly when Cond
// (a condition on the Row) holds.
type Use struct {
	Kind Kind
	Cond string
}

// Column is one column of the event table.
type Column struct {
	Name string
	Type arrow.DataType
	Doc  string
	// Common columns are never null, for every kind. Otherwise Uses lists
	// the kinds that fill the column; it is null for every other kind.
	Common bool
	Uses   []Use
	// Enum names the enum a column's values come from ("" if none).
	Enum string
	// Hex: the values are addresses or register and memory contents, read
	// in hex ([Row.Field] prints them so); other integers print in decimal.
	Hex bool
}

var (
	dictKind    = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	dictOp      = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	dictPercpu  = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	dictCause   = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	dictService = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	u8          = arrow.PrimitiveTypes.Uint8
	u16         = arrow.PrimitiveTypes.Uint16
	u32         = arrow.PrimitiveTypes.Uint32
	u64         = arrow.PrimitiveTypes.Uint64
)

func uses(kinds ...Kind) []Use {
	u := make([]Use, len(kinds))
	for i, k := range kinds {
		u[i] = Use{Kind: k}
	}
	return u
}

// Columns is the event table, in column order. It is the one declaration of
// the schema: [Schema], the Col* index constants (columns_gen.go),
// docs/trace-format.md and testdata/schema.golden are generated from it.
var Columns = append([]Column{
	{Name: "seq", Type: u64, Common: true,
		Doc: "Global sequence number: the event order across all CPUs. Strictly increasing through the file; each batch covers a contiguous range."},
	{Name: "kind", Type: dictKind, Common: true, Enum: "kind",
		Doc: "Event kind name (dictionary-encoded string; the dictionary index is the kind number minus 1)."},
	{Name: "cpu", Type: u16, Common: true, Doc: "The CPU the event happened on."},
	{Name: "task", Type: u32, Common: true, Doc: "The task the CPU was running (0 = the CPU's boot/idle context)."},
	{Name: "depth", Type: u8, Common: true, Doc: "Trap nesting depth on this CPU: 0 = task context, 1 = in a handler, 2 = a handler interrupted a handler, ..."},
	{Name: "rip", Hex: true, Type: u64, Common: true, Doc: "The CPU's RIP: the instruction's address for insn, the saved RIP for trap, the IRETQ's address for iret, the service or fault address otherwise."},

	{Name: "len", Type: u8, Uses: uses(KindInsn), Doc: "Instruction length in bytes (1-15)."},
	{Name: "bytes", Type: &arrow.FixedSizeBinaryType{ByteWidth: 15}, Uses: uses(KindInsn), Doc: "The instruction's encoding as executed: the first `len` bytes, zero-padded to 15 (fixed width compresses far better than variable-length binary; the Parquet export stores the `len` bytes only). It differs from memory when the CPU ran a stale decode."},
	{Name: "op", Type: dictOp, Uses: uses(KindInsn), Enum: "op", Doc: "Mnemonic (dictionary-encoded string, x86asm names such as `MOV`, `CALL`, `INT`: x86asm names int3 (0xCC) `INT` with operand 3)."},
	{Name: "rsp", Hex: true, Type: u64, Uses: uses(KindInsn, KindTrap, KindIret), Doc: "insn: RSP before the instruction; trap: RSP after the frame was pushed (on the IST stack when `ist` > 0); iret: the restored RSP."},
	{Name: "rflags", Hex: true, Type: u32, Uses: uses(KindInsn, KindTrap, KindIret), Doc: "insn: RFLAGS before the instruction (IF is bit 9, 0x200); trap: the saved RFLAGS; iret: the restored RFLAGS. 32 bits: the upper half of RFLAGS is reserved (zero). Version 1 stored it as `uint64`."},

	{Name: "addr", Hex: true, Type: u64, Uses: []Use{{KindWrite, ""}, {KindPercpuRead, ""}, {KindTrap, "HasAddr"}, {KindPerm, ""}, {KindFault, "HasAddr"}, {KindInject, ""}, {KindLoad, ""}},
		Doc: "write/percpu_read/load: the virtual address accessed; trap: CR2 of a page fault, DR6 of a #DB; perm: the first page; fault: the faulting address; inject: the target CPU."},
	{Name: "size", Type: u32, Uses: uses(KindWrite, KindPercpuRead, KindTrap, KindPerm, KindLoad), Doc: "write/percpu_read/load: access size in bytes (1, 2, 4 or 8); trap: stack bytes used by the delivery (the frame, error code and alignment); perm: number of 4 KiB pages."},
	{Name: "old", Hex: true, Type: u64, Uses: uses(KindWrite, KindSwitch), Doc: "write: the value before the store (little-endian, `size` bytes); switch: the previous task."},
	{Name: "new", Hex: true, Type: u64, Uses: uses(KindWrite, KindPercpuRead, KindSwitch, KindLoad), Doc: "write: the value stored; percpu_read/load: the value read; switch: the next task."},
	{Name: "alias", Type: arrow.FixedWidthTypes.Boolean, Uses: uses(KindWrite, KindPerm), Doc: "write: the store went through the text-poke alias mapping (the only legal way to change kernel text); perm: the change maps or unmaps the text-poke alias page."},
	{Name: "alias_addr", Hex: true, Type: u64, Uses: []Use{{KindWrite, "Alias"}, {KindPerm, "Alias"}}, Doc: "The alias virtual address (written, or whose page changed); `addr` is the text address it maps to."},
	{Name: "percpu_cpu", Type: u16, Uses: []Use{{KindWrite, "Percpu"}, {KindPercpuRead, ""}, {KindLoad, "Percpu"}}, Doc: "Whose per-CPU area the address is in."},
	{Name: "percpu_off", Hex: true, Type: u32, Uses: []Use{{KindWrite, "Percpu"}, {KindPercpuRead, ""}, {KindLoad, "Percpu"}}, Doc: "Offset within the per-CPU section (the per-CPU symbol's value plus the offset into it)."},
	{Name: "percpu_var", Type: dictPercpu, Uses: []Use{{KindWrite, "Percpu && PercpuVar != \"\""}, {KindPercpuRead, "PercpuVar != \"\""}, {KindLoad, "Percpu && PercpuVar != \"\""}}, Enum: "percpu_var",
		Doc: "The per-CPU variable's symbol name (dictionary-encoded string; the dictionary is the trace's per-CPU variable list)."},

	{Name: "vector", Type: u8, Uses: []Use{{KindTrap, ""}, {KindFault, "HasVector"}, {KindInject, ""}}, Enum: "vector", Doc: "Interrupt/exception vector number (see the vector table)."},
	{Name: "handler", Hex: true, Type: u64, Uses: uses(KindTrap, KindIret), Doc: "trap: the handler's address (the new RIP); iret: the RIP returned to."},
	{Name: "ist", Type: u8, Uses: uses(KindTrap), Doc: "IST index of the stack used (0 = the current stack)."},
	{Name: "err_code", Hex: true, Type: u64, Uses: []Use{{KindTrap, "HasErrCode"}, {KindFault, "HasErrCode"}}, Doc: "The error code pushed (only for vectors that push one)."},
	{Name: "perm_old", Type: u8, Uses: uses(KindPerm), Enum: "perm", Doc: "Page permissions before: r=1 w=2 x=4 (0 = unmapped)."},
	{Name: "perm_new", Type: u8, Uses: uses(KindPerm), Enum: "perm", Doc: "Page permissions after: r=1 w=2 x=4 (0 = unmapped)."},
	{Name: "cause", Type: dictCause, Uses: uses(KindSerialize), Enum: "cause", Doc: "Why the CPU serialized (dictionary-encoded string)."},
	{Name: "service", Type: dictService, Uses: []Use{{KindPerm, "Service != 0"}, {KindService, ""}, {KindFault, "Service != 0"}}, Enum: "service", Doc: "The native service (dictionary-encoded string); perm: the service that changed the permissions, null for the mappings the machine makes before the first instruction (per-CPU areas, boot stacks); fault: the service that raised it (panic, pt_bug), null for an oops."},
	{Name: "arg0", Hex: true, Type: u64, Uses: uses(KindService, KindMarker), Doc: "service: first argument (RDI); marker: the marker id."},
	{Name: "arg1", Hex: true, Type: u64, Uses: uses(KindService, KindMarker), Doc: "service: second argument (RSI); marker: the value."},
	{Name: "arg2", Hex: true, Type: u64, Uses: uses(KindService), Doc: "service: third argument (RDX)."},
	{Name: "arg3", Hex: true, Type: u64, Uses: uses(KindService), Doc: "service: fourth argument (RCX)."},
	{Name: "ret", Hex: true, Type: u64, Uses: uses(KindService), Doc: "service: the return value (RAX)."},
	{Name: "msg", Type: arrow.BinaryTypes.String, Uses: []Use{{KindMarker, "Msg != \"\""}, {KindFault, ""}}, Doc: "marker: an optional name; fault: what happened, as a person would say it."},
}, regColumns()...)

// RegNames are the registers of the register-delta columns, in column
// order: column "reg_" + RegNames[i] is [Row].Regs[i], stored when bit i
// of [Row].RegMask is set. emu.RegNames is its twin (record's TestEnumTwins
// checks they agree).
var RegNames = [NumRegs]string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rflags"}

// NumRegs is the number of register-delta columns.
const NumRegs = 17

// regKinds are the kinds whose rows carry register deltas.
var regKinds = []Kind{KindInsn, KindWrite, KindTrap, KindIret, KindSerialize, KindService}

// regCond is the condition of register i's column.
func regCond(i int) string { return "RegMask has " + RegNames[i] }

// regColumns declares the register-delta columns.
func regColumns() []Column {
	var cols []Column
	for i, r := range RegNames {
		u := make([]Use, len(regKinds))
		for j, k := range regKinds {
			u[j] = Use{Kind: k, Cond: regCond(i)}
		}
		doc := "The value of " + strings.ToUpper(r) + " after the event, null when the event did not change it (version 4; null in older files and with `record --no-regs`)."
		if i == 0 {
			doc = "Register deltas (this and the 16 columns after it): the value of RAX after the event, null when the event did not change it. " +
				"The value of a register on CPU c at seq n is the last non-null `reg_` value among the rows with `cpu` = c and `seq` <= n: the `serialize` row with cause `start` of each CPU carries every register (its initial state). " +
				"insn: what the instruction changed (compared after it executed; the row comes before the instruction's loads and writes but holds the values after all of them); trap: `reg_rsp` and `reg_rflags` after the delivery; iret: the restored RSP and RFLAGS; service: RAX (the return value) and RSP (the return) of a native service; write: the last store of a byte-granular text_poke, which returns from it. " +
				"RIP is not a column: it is the next row's `rip` of the same CPU (an insn row's `rip` is the instruction's). Since version 4; null in older files and with `record --no-regs` (metadata `patchtrace.recorded`)."
		}
		cols = append(cols, Column{Name: "reg_" + r, Type: u64, Hex: true, Uses: u, Doc: doc})
	}
	return cols
}

// MetaKey documents one schema-level metadata key.
type MetaKey struct {
	Key  string
	Doc  string
	Late bool // final value known only at the end: the header holds a placeholder, the footer the value
	// Since is the first format version with the key (0: every version).
	// Files of an older version are read without it.
	Since int
}

// Schema-level metadata keys.
const (
	KeyFormatVersion   = "patchtrace.format_version"
	KeyScenario        = "patchtrace.scenario"
	KeyScenarioText    = "patchtrace.scenario_text"
	KeyELF             = "patchtrace.elf"
	KeyCPUs            = "patchtrace.cpus"
	KeyQuirks          = "patchtrace.quirks"
	KeySeed            = "patchtrace.seed"
	KeySymbols         = "patchtrace.symbols"
	KeyToolVersion     = "patchtrace.tool_version"
	KeyStatus          = "patchtrace.status"
	KeyEvents          = "patchtrace.events"
	KeyDropped         = "patchtrace.dropped"
	KeyDecisions       = "patchtrace.decisions"
	KeyDecisionsFormat = "patchtrace.decisions_format"
	KeyDecisionCount   = "patchtrace.decision_count"
	KeyBatchIndex      = "patchtrace.batch_index"
	KeyOutcome         = "patchtrace.outcome"
	KeyOutcomeDetail   = "patchtrace.outcome_detail"
	KeyBudget          = "patchtrace.budget"
	KeyRecorded        = "patchtrace.recorded"
	KeyChecksums       = "patchtrace.checksums"
	KeyMetaChecksum    = "patchtrace.metadata_checksum"
)

// Outcomes are the values of [KeyOutcome]: why the run ended. Names and
// numbers equal the emulator's stop reasons (emu.StopReason); the trace
// stores the name.
var Outcomes = []EnumValue{
	{1, "done", "every CPU finished its work (`pt_cpu_done`) and is idle"},
	{2, "budget", "the instruction or decision budget ran out with CPUs not finished"},
	{3, "oops", "an exception no handler claimed, or a triple fault"},
	{4, "panic", "the slice called `panic()`"},
	{5, "hung", "no CPU could make progress and not all had finished"},
	{6, "decisions-exhausted", "a replayed decision log ended (a run replayed as a prefix, e.g. a minimised failing run)"},
	{7, "error", "the emulator could not go on (an internal limit or an inconsistent decision)"},
	{8, "bug", "the slice called `BUG()` (`pt_bug`)"},
	{9, "unsupported", "a valid instruction the emulator does not implement; the detail names its bytes and address"},
}

// Outcome values of [KeyOutcome] the readers of traces judge by name.
const (
	OutcomeDone        = "done"
	OutcomeBudget      = "budget"
	OutcomeOops        = "oops"
	OutcomePanic       = "panic"
	OutcomeHung        = "hung"
	OutcomeDecisions   = "decisions-exhausted"
	OutcomeError       = "error"
	OutcomeBug         = "bug"
	OutcomeUnsupported = "unsupported"
)

// ValidOutcome reports whether s is one of [Outcomes].
func ValidOutcome(s string) bool {
	for _, o := range Outcomes {
		if o.Name == s {
			return true
		}
	}
	return false
}

// Status values of [KeyStatus].
const (
	StatusWriting  = "writing"  // header placeholder: the writer had not finished
	StatusComplete = "complete" // the writer finished; see KeyDropped for losses
)

// MetaKeys is the metadata table, in the order the keys are written.
var MetaKeys = []MetaKey{
	{KeyFormatVersion, "Format version, decimal (`5`). Readers refuse a newer version.", false, 0},
	{KeyScenario, "Scenario id: a letter or digit, then letters, digits, `.`, `_` or `-`, at most 64 bytes, or empty (a reader refuses any other value).", false, 0},
	{KeyScenarioText, "The scenario file's full text.", false, 0},
	{KeyELF, "The kernel slice ELF, standard base64, with its symbols and DWARF line table (file:line of every instruction): the trace is self-contained.", false, 0},
	{KeyCPUs, "Number of CPUs, decimal.", false, 0},
	{KeyQuirks, "CPU quirks of the run: a JSON object of string to string, keys sorted.", false, 0},
	{KeySeed, "Scheduler seed, decimal u64.", false, 0},
	{KeySymbols, "Symbol table: a JSON array of `{\"name\",\"addr\",\"size\",\"section\"}` (addr and size are JSON integers, addr up to 2^64-1), sorted by addr then name.", false, 0},
	{KeyToolVersion, "Version of the patchtrace that wrote the file.", false, 0},
	{KeyStatus, "`writing` in the header, `complete` in the footer of a finished file. A file without a footer was cut short (see Crash tolerance).", true, 0},
	{KeyEvents, "Number of rows, decimal (empty in the header).", true, 0},
	{KeyDropped, "Events lost: a JSON array of `{\"after_seq\",\"count\"}`, `[]` when none (empty in the header).", true, 0},
	{KeyDecisions, "The run's decision log, standard base64 of bytes in the encoding named by `patchtrace.decisions_format` (empty in the header).", true, 0},
	{KeyDecisionsFormat, "Name of the decision-log encoding, defined by the recorder (empty in the header).", true, 0},
	{KeyDecisionCount, "Number of decisions in the log, decimal (empty in the header).", true, 0},
	{KeyBatchIndex, "Seek index: a JSON array with one `[first_seq, last_seq, rows]` per record batch, in file order (empty in the header).", true, 0},
	{KeyOutcome, "Why the run ended: one of the outcome values below (`done`, `budget`, `oops`, ...); empty in the header. Files of versions 1 and 2 do not have it: their outcome is not recorded.", true, 3},
	{KeyOutcomeDetail, "What ended the run, as a person would say it: the stop message (the fault and where, the unsupported instruction's bytes and symbol+offset, the emulator error); empty in the header. Since version 3.", true, 3},
	{KeyBudget, "The run's effective budget: a JSON object `{\"max_insns\",\"max_decisions\"}` (decimal integers; 0 is unbounded, as with `--no-budget`), so a replay stops where the recording did; empty when not recorded.", false, 3},
	{KeyRecorded, "What optional content the trace records: a comma-separated list of `loads` (a `load` row for every data read) and `regs` (the `reg_` register-delta columns), in that order; empty when it records neither (`record --no-loads --no-regs`). Files before version 4 have neither: analyzers that need them say what they could not check. `analyze` and `inspect` check the rows against it: a completed `RET` with no `load` row of its return address when `loads` is claimed (no `reg_rsp` delta when `regs` is), or `load` rows or register deltas it denies, mark the trace incomplete (its metadata was rewritten).", false, 4},
	{KeyChecksums, "CRC-32C (Castagnoli) checksums as a JSON array of integers: first of the file's header (bytes 0 to the end of the last dictionary message), then of each record batch message (from its continuation marker to the end of its padded body), in file order (empty in the header).", true, 3},
	{KeyMetaChecksum, "CRC-32C (Castagnoli) of the footer metadata, decimal: over every other key and value in file order, each as its length (u32 little-endian) and bytes (empty in the header).", true, 3},
}

// Schema returns the event table's Arrow schema with no metadata.
func Schema() *arrow.Schema { return baseSchema }

var baseSchema = func() *arrow.Schema {
	fs := make([]arrow.Field, len(Columns))
	for i, c := range Columns {
		fs[i] = arrow.Field{Name: c.Name, Type: c.Type, Nullable: !c.Common}
	}
	return arrow.NewSchema(fs, nil)
}()

// kindMask[k] has bit i set when column i can be non-null for kind k.
var kindMask = func() (m [numKinds]uint64) {
	for i, c := range Columns {
		for k := Kind(1); k < numKinds; k++ {
			if c.Common {
				m[k] |= 1 << i
			}
		}
		for _, u := range c.Uses {
			m[u.Kind] |= 1 << i
		}
	}
	return m
}()

package gdbserver

import (
	"encoding/binary"
	"strings"

	"github.com/patchtrace/patchtrace/replay"
)

// register is one register of the target description, in 'g' packet
// order.
type register struct {
	name  string
	bits  int
	typ   string
	group string
	// fold is the index into replay.RegFile (format.RegNames order), or
	// -1 for a register the trace does not carry.
	fold int
}

// Special registers (fold < -1) computed from the position.
const (
	regRIP    = -2
	regCS     = -3
	regGSBase = -4
)

// registers is the target description: gdb's x86-64 core feature (which
// its amd64 architecture requires whole: the general registers, rip,
// eflags, the segment selectors and the x87 state) and the segment
// bases. What the trace carries comes from its register deltas (format
// version 4): rax..r15 and eflags (RFLAGS); rip is the CPU's pc at the
// position; cs is the machine's one code selector (__KERNEL_CS, 0x10:
// emu runs at CPL 0 in 64-bit mode and never changes it); gs_base is the
// CPU's per-CPU area (the slice ABI: fixed for the run). Everything else
// (ss, ds, es, fs, gs, fs_base, the x87 registers) the machine does not
// record, and gdb shows it as <unavailable>.
var registers = func() []register {
	var rs []register
	gp := []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	for i, n := range gp {
		typ := "int64"
		if n == "rbp" || n == "rsp" {
			typ = "data_ptr"
		}
		rs = append(rs, register{name: n, bits: 64, typ: typ, fold: i})
	}
	rs = append(rs, register{name: "rip", bits: 64, typ: "code_ptr", fold: regRIP},
		register{name: "eflags", bits: 32, typ: "i386_eflags", fold: 16},
		register{name: "cs", bits: 32, typ: "int32", fold: regCS})
	for _, n := range []string{"ss", "ds", "es", "fs", "gs"} {
		rs = append(rs, register{name: n, bits: 32, typ: "int32", fold: -1})
	}
	for i := 0; i < 8; i++ {
		rs = append(rs, register{name: "st" + string(rune('0'+i)), bits: 80, typ: "i387_ext", fold: -1})
	}
	for _, n := range []string{"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"} {
		rs = append(rs, register{name: n, bits: 32, typ: "int", group: "float", fold: -1})
	}
	rs = append(rs, register{name: "fs_base", bits: 64, typ: "data_ptr", fold: -1},
		register{name: "gs_base", bits: 64, typ: "data_ptr", fold: regGSBase})
	return rs
}()

// nCore is the number of registers in the core feature.
const nCore = 40

// targetXML is the target description gdb reads (qXfer:features:read).
var targetXML = func() string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<feature name="org.gnu.gdb.i386.core">
<flags id="i386_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/>
<field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/>
<field name="OF" start="11" end="11"/><field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
<field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/><field name="VIF" start="19" end="19"/>
<field name="VIP" start="20" end="20"/><field name="ID" start="21" end="21"/>
</flags>
`)
	for i, r := range registers {
		if i == nCore {
			b.WriteString("</feature>\n<feature name=\"org.gnu.gdb.i386.segments\">\n")
		}
		b.WriteString(`<reg name="` + r.name + `" bitsize="` + itoa(r.bits) + `" type="` + r.typ + `"`)
		if r.group != "" {
			b.WriteString(` group="` + r.group + `"`)
		}
		b.WriteString("/>\n")
	}
	b.WriteString("</feature>\n</target>\n")
	return b.String()
}()

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// kernelCS is the code selector emu runs with (emu/gdt.go selKernelCS).
const kernelCS = 0x10

// regValue returns register i of cpu at the position, little-endian in
// its size, or false when the trace does not say.
func (t *target) regValue(cpu, i int) ([]byte, bool) {
	r := registers[i]
	var v uint64
	switch r.fold {
	case regRIP:
		pc, ok := t.pc(cpu)
		if !ok {
			return nil, false
		}
		v = pc
	case regCS:
		v = kernelCS
	case regGSBase:
		if t.gsBase[cpu] == 0 {
			return nil, false
		}
		v = t.gsBase[cpu]
	case -1:
		return nil, false
	default:
		var rf replay.RegFile = t.cur.Regs(cpu)
		val, ok := rf.Get(r.fold)
		if !ok {
			return nil, false
		}
		v = val
	}
	b := make([]byte, r.bits/8)
	var full [8]byte
	binary.LittleEndian.PutUint64(full[:], v)
	copy(b, full[:])
	return b, true
}

// appendReg appends register i of cpu as the 'g' and 'p' packets carry
// it: hex bytes, or 'x's for a value the trace does not have.
func (t *target) appendReg(dst []byte, cpu, i int) []byte {
	if b, ok := t.regValue(cpu, i); ok {
		return appendHex(dst, b)
	}
	for j := 0; j < registers[i].bits/4; j++ {
		dst = append(dst, 'x')
	}
	return dst
}

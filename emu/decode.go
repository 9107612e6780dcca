package emu

import (
	"bytes"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// This file turns x86asm's decode of one instruction into the interpreter's
// pre-decoded form (semantics), once per address and bytes: the instruction's
// entry in isa (isa.go) names the op, and its form's decoder below reads
// the operands. Everything that
// can be settled from the bytes alone is settled here: which of our ops runs,
// operand size, register numbers (including AH/CH/DH/BH), the memory
// operand's parts, immediates sign-extended as the SDM says for the form,
// and absolute branch targets. exec (exec_*.go) then only switches on a
// small integer and reads fields.

// semOp is the interpreter's operation: one x86 instruction family in one
// operand form. exec switches on it; dense values give a jump table.
//
// Naming: R = register operand, M = memory operand, I = immediate. The
// first letter is the destination. opAluRM is "reg op= [mem]".
type semOp uint8

const (
	opUD semOp = iota // raises #UD: UD0/UD1/UD2, a LOCK prefix where it is not allowed, bytes that are no instruction
	opGP              // raises #GP(0): an instruction longer than 15 bytes (SDM Vol. 2 §2.3.11)

	// Hot forms, inlined in exec.
	opNop
	opMovRR
	opMovRM
	opMovMR
	opMovRI
	opMovMI
	opLea
	opAluRR // sub = aluKind; dst r, src rm
	opAluRM // dst r, src memory
	opAluMR // dst memory, src r
	opAluRI // dst r, src imm
	opAluMI // dst memory, src imm
	opJcc   // sub = condition code
	opJmp
	opCall
	opRet
	opPushR
	opPopR

	// Data movement (exec_move.go).
	opMovzx // r := zero-extend(rm of ssize)
	opMovsx // r := sign-extend(rm of ssize); also MOVSXD
	opXchg  // r <-> rm
	opXadd  // rm, r
	opCmpxchg
	opCmov  // sub = condition code
	opSetcc // sub = condition code; rm is the 8-bit destination
	opBswap
	opCbw // CBW/CWDE/CDQE by size
	opCwd // CWD/CDQ/CQO by size

	// Arithmetic (exec_arith.go).
	opUnary  // sub = unaryKind: INC DEC NEG NOT on rm
	opMulDiv // sub = mulKind: MUL IMUL DIV IDIV with the rm source
	opImul   // r := rm * (imm or r), 2- and 3-operand IMUL

	// Shifts and rotates (exec_shift.go).
	opShift // sub = shiftKind; count imm or CL (mCL)
	opShxd  // sub = 0 SHLD, 1 SHRD; rm, r, count imm or CL

	// Bit operations (exec_bit.go).
	opBt    // sub = btKind; rm, r or imm (mImm)
	opBscan // sub = scanKind: BSF BSR TZCNT LZCNT POPCNT; r := f(rm)

	// Control transfer (exec_branch.go).
	opJmpR
	opJmpM
	opCallR
	opCallM
	opJrcxz

	// Stack (exec_stack.go).
	opPushI
	opPushM
	opPopM
	opPushf
	opPopf
	opLeave

	// String operations (exec_string.go); sub = rep mode.
	opMovs
	opStos
	opLods
	opCmps
	opScas
	opIns  // INS: no device, all ones stored at [RDI]
	opOuts // OUTS: [RSI] read, then lost

	// System and flag instructions (exec_system.go).
	opInt3
	opIretq
	opSti
	opCli
	opHlt
	opCpuid
	opRdmsr // RDMSR: only IA32_S_CET, with Quirks.IBT (ibt.go)
	opWrmsr // WRMSR: only IA32_S_CET, with Quirks.IBT (ibt.go)
	opClc
	opStc
	opCmc
	opCld
	opStd
	opSahf
	opLahf
	opMovToSS   // MOV SS, r/m16 (decode_system.go)
	opMovFromSS // MOV r/m, SS
	opMovToDR   // MOV DRn, r64: sub = n, rm = the register
	opMovFromDR // MOV r64, DRn: sub = n, rm = the register
	opInt1      // INT1 (ICEBP, 0xF1)

	// Added for what a CPU running stray bytes reaches (see
	// measure_test.go): exec_branch.go, exec_move.go, exec_stack.go.
	opLoop      // sub = 0 LOOP, 1 LOOPE, 2 LOOPNE; mAddr32: ECX
	opXlat      // AL := [RBX + AL]
	opEnter     // imm = size, ssize = nesting level
	opCmpxchg8b // sub = 0 CMPXCHG8B, 1 CMPXCHG16B
	opPush16    // sub = push16Reg, push16Mem, push16Imm, push16Flags
	opPop16     // sub = push16Reg, push16Mem, push16Flags
	opIn        // AL/AX/EAX := the port's value (no device: all ones)
	opOut       // no device: nothing happens
	opSoftInt   // INT n, INT1: imm = vector, delivered as a trap
	opLret      // far RET: size = slot width, imm = bytes to release

	numSemOps
)

// ALU kinds, in the order of the /digit of opcodes 80-83 (SDM Vol. 2 Table
// A-6, group 1), with TEST after them. Kinds at or after aluCmp do not
// write their destination.
const (
	aluAdd uint8 = iota
	aluOr
	aluAdc
	aluSbb
	aluAnd
	aluSub
	aluXor
	aluCmp
	aluTest
)

// Unary kinds (group 3/4/5 members).
const (
	unInc uint8 = iota
	unDec
	unNeg
	unNot
)

// MUL/IMUL/DIV/IDIV (group 3, one operand).
const (
	mdMul uint8 = iota
	mdImul
	mdDiv
	mdIdiv
)

// Shift kinds, in the order of the /digit of opcodes C0/C1/D0-D3 (group 2).
const (
	shRol uint8 = iota
	shRor
	shRcl
	shRcr
	shShl
	shShr
	shSal // encoded /6; SAL is SHL
	shSar
)

// Bit test kinds.
const (
	btBt uint8 = iota
	btBts
	btBtr
	btBtc
)

// Bit scan kinds.
const (
	scBsf uint8 = iota
	scBsr
	scTzcnt
	scLzcnt
	scPopcnt
)

// Operand kinds of the 16-bit PUSH/POP forms.
const (
	push16Reg uint8 = iota
	push16Mem
	push16Imm
	push16Flags
)

// Repeat modes for string instructions.
const (
	repNone uint8 = iota
	repE          // REP / REPE (F3)
	repNE         // REPNE (F2)
)

// memFlags describes the instruction's operands beyond register numbers.
type memFlags uint8

const (
	mMem    memFlags = 1 << iota // the r/m operand is memory (else the register rm)
	mBase                        // base register present
	mIndex                       // index register present
	mRIP                         // RIP-relative: add next-RIP
	mGS                          // GS segment override: add GSBase
	mAddr32                      // 0x67 address-size prefix: truncate the address to 32 bits
	mCL                          // count (shifts) comes from CL
	mImm                         // source is imm (BT, IMUL 3-operand), not the register r
)

// noReg marks an absent register in semantics.
const noReg = 0xff

// semantics is the interpreter's pre-decoded form of one instruction.
//
// The register operand named by ModRM.reg (or the instruction's only
// register) is r; a register r/m operand is rm. For 8-bit operands, rsh/rmsh
// is 8 when the register is AH, CH, DH or BH (SDM Vol. 2 §3.7.2.1: without
// REX, 8-bit register numbers 4-7 name the high bytes of 0-3).
type semantics struct {
	op    semOp
	sub   uint8    // family member: aluKind, condition code, shiftKind, ...
	size  uint8    // operand size in bytes: 1, 2, 4 or 8
	ssize uint8    // source size for MOVZX/MOVSX/MOVSXD
	top   uint8    // size*8-1: the index of the sign bit
	mf    memFlags // memory-operand parts and operand-form bits
	r     uint8
	rsh   uint8
	rm    uint8
	rmsh  uint8
	base  uint8 // memory base register (mBase)
	index uint8 // memory index register (mIndex)
	scale uint8 // log2 of the index scale
	fc    flagClass
	// lazy is lazyFlags.kind for this instruction's flags (an ALU form's
	// aluOp and sign bit), made once here rather than per execution.
	lazy uint16
	disp int64  // memory displacement (RIP-relative: from the next instruction)
	imm  uint64 // immediate, sign-extended to 64 bits where the SDM says so
	mask uint64 // 1<<(8*size) - 1
	// target is the absolute branch target of a direct JMP/Jcc/CALL/JRCXZ
	// (the next instruction's address plus the displacement).
	target uint64
}

// UnsupportedError reports bytes the interpreter cannot execute: a valid
// instruction it does not implement, or bytes it cannot decode and does not
// know to be invalid (Undecoded). Bytes that are no instruction are not an
// error: they decode to an instruction that raises #UD. The machine wraps
// it with the CPU and symbol+offset and stops the run with StopUnsupported.
type UnsupportedError struct {
	Addr   uint64
	Bytes  []byte
	Reason string
	// Undecoded is set when x86asm could not decode the bytes and the
	// opcode maps do not say they are invalid: they may be a valid
	// instruction x86asm does not know (or one cut short by the end of the
	// bytes given).
	Undecoded bool
}

func (e *UnsupportedError) Error() string {
	mn := "bad"
	if x, err := x86asm.Decode(e.Bytes, 64); err == nil && x.Op != 0 {
		mn = x86asm.GNUSyntax(x, e.Addr, nil)
	}
	return fmt.Sprintf("unsupported instruction \"% x\" (%s) at %#x: %s", e.Bytes, mn, e.Addr, e.Reason)
}

// regIndex maps an x86asm general-purpose register to its hardware number
// (SDM Vol. 2 Table 2-2), the shift of its byte within the 64-bit register
// (8 for AH/CH/DH/BH) and its size in bytes. ok is false for non-GPRs.
func regIndex(r x86asm.Reg) (idx, sh, size uint8, ok bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return uint8(r - x86asm.AL), 0, 1, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return uint8(r - x86asm.AH), 8, 1, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return uint8(r-x86asm.SPB) + 4, 0, 1, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return uint8(r - x86asm.AX), 0, 2, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return uint8(r - x86asm.EAX), 0, 4, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return uint8(r - x86asm.RAX), 0, 8, true
	}
	return 0, 0, 0, false
}

// endbr64 and endbr32 (SDM Vol. 2 ENDBR64): x86asm does not know them, and
// with CET off they are NOPs.
var (
	endbr64 = [4]byte{0xf3, 0x0f, 0x1e, 0xfa}
	endbr32 = [4]byte{0xf3, 0x0f, 0x1e, 0xfb}
)

// decodeInst decodes the instruction at the start of code, which was
// fetched from addr. An instruction outside the supported set, or bytes
// x86asm rejects, give a *UnsupportedError.
func decodeInst(code []byte, addr uint64) (*inst, error) {
	in := &inst{addr: addr}
	if len(code) >= 4 && ([4]byte(code[:4]) == endbr64 || [4]byte(code[:4]) == endbr32) {
		in.len = 4
		copy(in.raw[:], code[:4])
		in.op = x86asm.NOP
		in.sem = semantics{op: opNop, fc: fcNone}
		return in, nil
	}
	x, err := x86asm.Decode(code, 64)
	if k, n := classifyUndecoded(code); k == undUD {
		// No instruction, whatever x86asm made of it (it decodes some
		// opcodes 64-bit mode does not have, e.g. 0F 24 MOV from TR0).
		in := udInst(code, addr, n, &semantics{op: opUD})
		if err == nil && x.Len == n {
			in.op = x.Op
		}
		return in, nil
	}
	if err != nil || x.Op == 0 || x.Len <= 0 || x.Len > 15 {
		// x86asm reports a truncated instruction, and some prefix-only or
		// unknown encodings, as Op 0 without an error.
		if alt, k, ok := rewriteAlias(code); ok {
			if in, err := decodeInst(alt, addr+uint64(k)); err == nil {
				if int(in.len)+k > 15 {
					return udInst(code, addr, 15, &semantics{op: opGP}), nil
				}
				in.addr = addr
				in.len += uint8(k)
				copy(in.raw[:], code[:in.len])
				return in, nil
			}
		}
		return decodeUndecoded(code, addr, err)
	}
	in.len = uint8(x.Len)
	copy(in.raw[:], code[:x.Len])
	in.op = x.Op
	d := decoder{x: &x, in: in, s: &in.sem}
	if reason := d.decode(); reason != "" {
		return nil, &UnsupportedError{Addr: addr, Bytes: append([]byte(nil), code[:x.Len]...), Reason: reason}
	}
	s := &in.sem
	if s.size == 0 {
		s.size = 8
	}
	s.top = s.size*8 - 1
	s.mask = ^uint64(0) >> (64 - 8*uint(s.size))
	s.lazy = lazyOn | uint16(s.sub)<<8 | uint16(s.top)
	return in, nil
}

// decodeUndecoded handles bytes x86asm did not decode: #UD where the opcode
// maps say they are no instruction, a hint NOP x86asm does not know, #GP(0)
// for an instruction longer than 15 bytes (SDM Vol. 2 §2.3.11: the limit
// is checked when the instruction is decoded, so code holds at least 15
// bytes for it to apply), else an *UnsupportedError.
func decodeUndecoded(code []byte, addr uint64, err error) (*inst, error) {
	if k, n := classifyUndecoded(code); k == undNop {
		in := udInst(code, addr, n, &semantics{op: opNop})
		in.op = x86asm.NOP
		return in, nil
	}
	if len(code) >= 15 && tooLong(code[:15]) {
		return udInst(code, addr, 15, &semantics{op: opGP}), nil
	}
	n := min(len(code), 15)
	reason := "x86asm: unrecognized instruction"
	if err != nil {
		reason = "x86asm: " + err.Error()
	}
	return nil, &UnsupportedError{Addr: addr, Bytes: append([]byte(nil), code[:n]...), Reason: reason, Undecoded: true}
}

// rewriteAlias rewrites encodings x86asm rejects into the ones hardware
// treats them as: a REX prefix that does not immediately precede the
// opcode is ignored (SDM Vol. 2 §2.2.1) and is dropped (k counts the
// dropped bytes); group 2 /6 is SHL /4 and F6/F7 /1 is TEST /0 (aliases
// the SDM leaves out of Table A-6 and every Intel and AMD CPU executes;
// testdata/insn/alu.txt and shift.txt check them on the host). ok is false
// when nothing applies.
func rewriteAlias(code []byte) (alt []byte, k int, ok bool) {
	p := 0
	for p < len(code) && p < 15 && (isLegacyPrefix(code[p]) || code[p]&0xf0 == 0x40) {
		p++
	}
	for i := 0; i < p; i++ {
		if code[i]&0xf0 == 0x40 && i != p-1 {
			k++
			continue
		}
		alt = append(alt, code[i])
	}
	op := len(alt)
	alt = append(alt, code[p:]...)
	if op+1 < len(alt) {
		reg := alt[op+1] >> 3 & 7
		switch c := alt[op]; {
		case (c == 0xc0 || c == 0xc1 || c >= 0xd0 && c <= 0xd3) && reg == 6:
			alt[op+1] = alt[op+1]&^0x38 | 4<<3
			ok = true
		case (c == 0xf6 || c == 0xf7) && reg == 1:
			alt[op+1] &^= 0x38
			ok = true
		}
	}
	return alt, k, ok || k > 0
}

// udInst builds the instruction of the first n bytes of code whose whole
// effect is s.op (a fault or a NOP): no operands.
func udInst(code []byte, addr uint64, n int, s *semantics) *inst {
	in := &inst{addr: addr, len: uint8(n)}
	copy(in.raw[:], code[:n])
	in.sem = semantics{op: s.op, fc: fcNone, size: 8, top: 63, mask: ^uint64(0), base: noReg, index: noReg}
	return in
}

// tooLong reports whether the instruction starting with the 15 bytes b is
// longer than 15 bytes. x86asm stops at 15 bytes, so the prefixes that
// cannot change the length are dropped (segment overrides and LOCK, all but
// the last of each other legacy prefix byte, and a REX not directly before
// the opcode, which hardware ignores) and the rest decoded with zeros
// after it: the length does not depend on the value of a byte past the
// fifteenth (an immediate or displacement, or a ModRM/opcode byte that
// alone makes it longer than 15).
func tooLong(b []byte) bool {
	p := 0
	for p < len(b) && (isLegacyPrefix(b[p]) || b[p]&0xf0 == 0x40) {
		p++
	}
	if p == len(b) {
		return true // fifteen prefixes and no opcode yet
	}
	var short []byte
	for i := 0; i < p; i++ {
		c := b[i]
		if c&0xf0 == 0x40 {
			if i == p-1 {
				short = append(short, c)
			}
			continue
		}
		switch c {
		case 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0xf0:
			continue
		}
		if bytes.IndexByte(b[i+1:p], c) < 0 {
			short = append(short, c)
		}
	}
	dropped := p - len(short)
	if dropped == 0 {
		return false
	}
	short = append(short, b[p:]...)
	short = append(short, make([]byte, 15)...)
	x, err := x86asm.Decode(short, 64)
	return err == nil && x.Op != 0 && x.Len+dropped > 15
}

type decoder struct {
	x  *x86asm.Inst
	in *inst
	s  *semantics
}

// prefix reports whether the instruction carries prefix byte p that x86asm
// did not mark ignored.
func (d *decoder) prefix(p x86asm.Prefix) bool {
	for _, q := range d.x.Prefix {
		if q == 0 {
			break
		}
		if q&0xff == p&0xff && q&(x86asm.PrefixIgnored|x86asm.PrefixImplicit) == 0 {
			return true
		}
	}
	return false
}

// data16 reports a 16-bit operand size from 0x66 (x86asm marks the prefix
// implicit on some forms, e.g. 66 C9 LEAVEW, but still says DataSize 16).
func (d *decoder) data16() bool {
	return d.prefix(x86asm.PrefixDataSize) || d.x.DataSize == 16
}

func (d *decoder) badLock() bool {
	for _, q := range d.x.Prefix {
		if q == 0 {
			break
		}
		if q&x86asm.PrefixInvalid != 0 {
			return true
		}
	}
	return false
}

// reg sets r from a register argument.
func (d *decoder) reg(a x86asm.Arg) (size uint8, ok bool) {
	r, isReg := a.(x86asm.Reg)
	if !isReg {
		return 0, false
	}
	idx, sh, sz, ok := regIndex(r)
	if !ok {
		return 0, false
	}
	d.s.r, d.s.rsh = idx, sh
	return sz, true
}

// rmArg sets the r/m operand from a register or memory argument and returns
// its size (MemBytes for memory).
func (d *decoder) rmArg(a x86asm.Arg) (size uint8, ok bool) {
	switch a := a.(type) {
	case x86asm.Reg:
		idx, sh, sz, ok := regIndex(a)
		if !ok {
			return 0, false
		}
		d.s.rm, d.s.rmsh = idx, sh
		return sz, true
	case x86asm.Mem:
		if !d.mem(a) {
			return 0, false
		}
		return uint8(d.x.MemBytes), true
	}
	return 0, false
}

// mem fills the memory operand (SDM Vol. 2 §2.2.1: base + index*scale +
// disp, RIP-relative from the next instruction, §3.3.7 segment bases).
func (d *decoder) mem(m x86asm.Mem) bool {
	s := d.s
	s.mf |= mMem
	s.base, s.index = noReg, noReg
	switch m.Segment {
	case 0, x86asm.ES, x86asm.CS, x86asm.SS, x86asm.DS, x86asm.FS:
		// Base 0 in 64-bit mode; this machine's FS base is 0 too.
	case x86asm.GS:
		s.mf |= mGS
	default:
		return false
	}
	switch d.x.AddrSize {
	case 64:
	case 32:
		s.mf |= mAddr32
	default:
		return false
	}
	switch {
	case m.Base == 0:
	case m.Base == x86asm.RIP || m.Base == x86asm.EIP:
		s.mf |= mRIP
	default:
		idx, _, sz, ok := regIndex(m.Base)
		if !ok || sz < 4 {
			return false
		}
		s.base = idx
		s.mf |= mBase
	}
	if m.Index != 0 {
		idx, _, sz, ok := regIndex(m.Index)
		if !ok || sz < 4 {
			return false
		}
		s.index = idx
		s.mf |= mIndex
		switch m.Scale {
		case 1:
			s.scale = 0
		case 2:
			s.scale = 1
		case 4:
			s.scale = 2
		case 8:
			s.scale = 3
		default:
			return false
		}
	}
	s.disp = m.Disp
	if !d.moffs() {
		// x86asm zero-extends a ModRM disp32; the SDM sign-extends it
		// (§2.2.1.3). Only MOV's moffs (A0-A3) carries a full 64-bit
		// address.
		s.disp = int64(int32(m.Disp))
	}
	return true
}

// moffs reports whether the instruction is MOV AL/AX/EAX/RAX to or from a
// moffs operand (opcodes A0-A3), whose address is an 8-byte immediate.
func (d *decoder) moffs() bool {
	for _, b := range d.in.raw[:d.in.len] {
		switch {
		case b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 ||
			b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65:
			continue
		case b&0xf0 == 0x40:
			continue
		}
		return b >= 0xa0 && b <= 0xa3
	}
	return false
}

func (d *decoder) imm(a x86asm.Arg) bool {
	v, ok := a.(x86asm.Imm)
	if ok {
		d.s.imm = uint64(int64(v))
	}
	return ok
}

func isMemArg(a x86asm.Arg) bool { _, ok := a.(x86asm.Mem); return ok }
func isRegArg(a x86asm.Arg) bool { _, ok := a.(x86asm.Reg); return ok }
func isImmArg(a x86asm.Arg) bool { _, ok := a.(x86asm.Imm); return ok }

func isCL(a x86asm.Arg) bool { r, ok := a.(x86asm.Reg); return ok && r == x86asm.CL }

// decode fills d.s for d.x from its isa entry and returns "" or why the
// form is unsupported.
func (d *decoder) decode() string {
	x, s := d.x, d.s
	s.base, s.index = noReg, noReg
	if d.badLock() {
		// SDM Vol. 2 LOCK: #UD if the instruction is not lockable or its
		// destination is not memory.
		s.op, s.fc = opUD, fcNone
		return ""
	}
	e := isaOf(x.Op)
	if e.form == formAbsent {
		return "not implemented"
	}
	s.op, s.sub, s.size, s.fc = e.op, e.sub, e.size, e.fc
	return d.decodeForm(e.form)
}

// decodeForm reads the operands of form f; decode has set op, sub, size
// and fc from the entry. It returns "" or why the operands are
// unsupported. (A switch, not a table of method values: an indirect call
// would make the decoder, and x86asm's Inst, escape to the heap.)
func (d *decoder) decodeForm(f isaForm) string {
	switch f {
	case formFixed:
		return ""
	case formTwoOp:
		return d.twoOpForm()
	case formMov:
		return d.movForm()
	case formMovx:
		return d.movx()
	case formLea:
		return d.lea()
	case formXchg:
		return d.xchg()
	case formRegRM:
		return d.regRMForm()
	case formRMReg:
		return d.rmRegForm()
	case formSetcc:
		return d.setcc()
	case formBswap:
		return d.bswap()
	case formAcc:
		return d.acc()
	case formUnary:
		return d.unary()
	case formMulDiv:
		return d.mulDiv()
	case formShift:
		return d.shift()
	case formShxd:
		return d.shxd()
	case formBt:
		return d.bt()
	case formRel:
		return d.relForm()
	case formRelCount:
		return d.relCountForm()
	case formNear:
		return d.near()
	case formRet:
		return d.ret()
	case formLret:
		return d.lret()
	case formPushPop:
		return d.pushPop()
	case formLeave:
		return d.leave()
	case formEnter:
		return d.enter()
	case formXlat:
		return d.xlat()
	case formCmpxchg8b:
		return d.cmpxchg8b()
	case formInOut:
		return d.inOut()
	case formString:
		return d.str()
	case formInt:
		return d.intForm()
	}
	return "not implemented"
}

// twoOpForm: the ALU instructions (SDM Vol. 2 ADD ... TEST).
func (d *decoder) twoOpForm() string {
	return d.twoOp(opAluRR, opAluRM, opAluMR, opAluRI, opAluMI)
}

// movForm: MOV (SDM Vol. 2 MOV).
func (d *decoder) movForm() string {
	if sys, reason := d.movSys(); sys {
		return reason
	}
	if d.x.Args[0] == x86asm.CS {
		// SDM Vol. 2 MOV: "#UD if an attempt is made to load the CS
		// register" (8E /1).
		d.s.op = opUD
		return ""
	}
	return d.twoOp(opMovRR, opMovRM, opMovMR, opMovRI, opMovMI)
}

// movx: MOVZX, MOVSX, MOVSXD.
func (d *decoder) movx() string {
	sz, ok := d.reg(d.x.Args[0])
	if !ok {
		return "operands"
	}
	ss, ok := d.rmArg(d.x.Args[1])
	if !ok {
		return "operands"
	}
	d.s.size, d.s.ssize = sz, ss
	return ""
}

func (d *decoder) lea() string {
	s := d.s
	sz, ok := d.reg(d.x.Args[0])
	m, isMem := d.x.Args[1].(x86asm.Mem)
	if !ok || !isMem || !d.mem(m) {
		return "operands"
	}
	s.mf &^= mGS // LEA computes the offset only (SDM Vol. 2 LEA)
	s.size = sz
	return ""
}

func (d *decoder) xchg() string {
	a0, a1 := d.x.Args[0], d.x.Args[1]
	if isMemArg(a0) {
		a0, a1 = a1, a0
	}
	return d.regRM(a0, a1)
}

func (d *decoder) regRMForm() string { return d.regRM(d.x.Args[0], d.x.Args[1]) }
func (d *decoder) rmRegForm() string { return d.regRM(d.x.Args[1], d.x.Args[0]) }

func (d *decoder) setcc() string {
	sz, ok := d.rmArg(d.x.Args[0])
	if !ok || sz != 1 {
		return "operands"
	}
	return ""
}

func (d *decoder) bswap() string {
	sz, ok := d.reg(d.x.Args[0])
	if !ok || sz < 4 {
		return "BSWAP of a 16-bit register is undefined"
	}
	d.s.size = sz
	return ""
}

// acc: CBW/CWDE/CDQE and CWD/CDQ/CQO, sized by the operand-size attribute.
func (d *decoder) acc() string {
	d.s.size = uint8(d.x.DataSize / 8)
	return ""
}

func (d *decoder) unary() string {
	sz, ok := d.rmArg(d.x.Args[0])
	if !ok || d.x.Args[1] != nil {
		return "operands"
	}
	d.s.size = sz
	return ""
}

// mulDiv: MUL, DIV, IDIV and one-operand IMUL on RDX:RAX; the 2- and
// 3-operand IMUL are opImul.
func (d *decoder) mulDiv() string {
	x, s := d.x, d.s
	if x.Op == x86asm.IMUL && x.Args[1] != nil {
		s.op, s.sub = opImul, 0
		if msg := d.regRM(x.Args[0], x.Args[1]); msg != "" {
			return msg
		}
		if x.Args[2] != nil {
			if !d.imm(x.Args[2]) {
				return "operands"
			}
			s.mf |= mImm
		}
		return ""
	}
	sz, ok := d.rmArg(x.Args[0])
	if !ok {
		return "operands"
	}
	s.size = sz
	return ""
}

func (d *decoder) shift() string {
	sz, ok := d.rmArg(d.x.Args[0])
	if !ok {
		return "operands"
	}
	d.s.size = sz
	return d.count(d.x.Args[1])
}

// count reads a shift count: CL or an immediate.
func (d *decoder) count(a x86asm.Arg) string {
	switch {
	case isCL(a):
		d.s.mf |= mCL
	case d.imm(a):
	default:
		return "shift count"
	}
	return ""
}

func (d *decoder) shxd() string {
	if msg := d.regRM(d.x.Args[1], d.x.Args[0]); msg != "" {
		return msg
	}
	return d.count(d.x.Args[2])
}

func (d *decoder) bt() string {
	a0, a1 := d.x.Args[0], d.x.Args[1]
	if d.imm(a1) {
		sz, ok := d.rmArg(a0)
		if !ok {
			return "operands"
		}
		d.s.size = sz
		d.s.mf |= mImm
		return ""
	}
	return d.regRM(a1, a0)
}

func (d *decoder) relForm() string      { return d.rel(d.x.Args[0]) }
func (d *decoder) relCountForm() string { return d.relCount(d.x.Args[0]) }

// near: JMP and CALL, direct, register-indirect or memory-indirect.
func (d *decoder) near() string {
	x, s := d.x, d.s
	if d.data16() {
		return "16-bit operand size on a near branch"
	}
	call := s.op == opCall
	switch a := x.Args[0].(type) {
	case x86asm.Rel:
		return d.rel(a)
	case x86asm.Reg:
		s.op = opJmpR
		if call {
			s.op = opCallR
		}
		idx, _, sz, ok := regIndex(a)
		if !ok || sz != 8 {
			return "operands"
		}
		s.rm = idx
	case x86asm.Mem:
		s.op = opJmpM
		if call {
			s.op = opCallM
		}
		if x.MemBytes != 8 || !d.mem(a) {
			return "far or 16-bit indirect branch"
		}
	default:
		return "operands"
	}
	s.size = 8
	return ""
}

func (d *decoder) ret() string {
	if d.data16() {
		return "16-bit operand size on RET"
	}
	if a0 := d.x.Args[0]; a0 != nil && !d.imm(a0) {
		return "operands"
	}
	d.s.imm &= 0xffff
	return ""
}

// lret: far RET (SDM Vol. 2 RET): pops RIP (4 bytes by default in 64-bit
// mode, 8 with REX.W) and CS, then releases imm16 bytes.
func (d *decoder) lret() string {
	x, s := d.x, d.s
	if x.DataSize != 32 && x.DataSize != 64 {
		return "16-bit far RET"
	}
	s.size = uint8(x.DataSize / 8)
	if a0 := x.Args[0]; a0 != nil && !d.imm(a0) {
		return "operands"
	}
	s.imm &= 0xffff
	return ""
}

func (d *decoder) pushPop() string {
	x, s := d.x, d.s
	if d.data16() {
		return d.pushPop16()
	}
	push := s.op == opPushR
	s.size = 8
	switch a := x.Args[0].(type) {
	case x86asm.Reg:
		sz, ok := d.reg(a)
		if !ok || sz != 8 {
			return "segment register or 16-bit operand"
		}
	case x86asm.Mem:
		s.op = opPopM
		if push {
			s.op = opPushM
		}
		if x.MemBytes != 8 || !d.mem(a) {
			return "operands"
		}
	case x86asm.Imm:
		if !push {
			return "operands"
		}
		s.op = opPushI
		d.imm(a)
	default:
		return "operands"
	}
	return ""
}

func (d *decoder) leave() string {
	if d.data16() {
		return "16-bit LEAVE"
	}
	return ""
}

func (d *decoder) enter() string {
	if d.data16() {
		return "16-bit ENTER"
	}
	sz, ok1 := d.x.Args[0].(x86asm.Imm)
	lv, ok2 := d.x.Args[1].(x86asm.Imm)
	if !ok1 || !ok2 {
		return "operands"
	}
	// SDM Vol. 2 ENTER: NestingLevel := imm8 MOD 32.
	d.s.imm, d.s.ssize = uint64(sz)&0xffff, uint8(lv)&31
	return ""
}

// xlat: SDM Vol. 2 XLAT: AL := [RBX + ZeroExtend(AL)], DS (or the segment
// override) based; 0x67 uses EBX and truncates.
func (d *decoder) xlat() string {
	m, ok := d.x.Args[0].(x86asm.Mem)
	if !ok || !d.mem(m) {
		return "operands"
	}
	return ""
}

func (d *decoder) cmpxchg8b() string {
	m, ok := d.x.Args[0].(x86asm.Mem)
	if !ok || !d.mem(m) {
		return "operands"
	}
	return ""
}

// inOut: SDM Vol. 2 IN/OUT: at CPL 0 always permitted. This machine has no
// I/O devices: a read of any port returns all ones (what a PC bus returns
// for a port no device claims) and a write is lost.
func (d *decoder) inOut() string {
	x, s := d.x, d.s
	r, port := x.Args[0], x.Args[1]
	if s.op == opOut {
		r, port = x.Args[1], x.Args[0]
	}
	sz, ok := d.reg(r)
	if !ok || s.r != RAX || s.rsh != 0 {
		return "operands"
	}
	s.size = sz
	switch p := port.(type) {
	case x86asm.Imm:
		s.imm, s.mf = uint64(p)&0xff, s.mf|mImm
	case x86asm.Reg:
		if p != x86asm.DX {
			return "operands"
		}
	default:
		return "operands"
	}
	return ""
}

// intForm: INT3 (CC) and INT n (CD ib; SDM Vol. 2 INT n: a software
// interrupt through the vector table, at CPL 0 whatever the gate's DPL, no
// error code even for vectors that have one, the saved RIP after it).
func (d *decoder) intForm() string {
	a0 := d.x.Args[0]
	if d.in.raw[d.x.Len-1] == 0xcc && a0 == x86asm.Imm(3) {
		d.s.op = opInt3
		return ""
	}
	v, ok := a0.(x86asm.Imm)
	if !ok {
		return "operands"
	}
	d.s.imm = uint64(v) & 0xff
	return ""
}

// twoOp decodes a MOV/ALU-style destination, source pair into one of five
// forms.
func (d *decoder) twoOp(rr, rmem, memr, ri, mi semOp) string {
	x, s := d.x, d.s
	a0, a1 := x.Args[0], x.Args[1]
	if a1 == nil || x.Args[2] != nil {
		return "operands"
	}
	switch {
	case isRegArg(a0) && isRegArg(a1):
		sz, ok := d.reg(a0)
		if !ok {
			return "operands"
		}
		sz2, ok := d.rmArg(a1)
		if !ok || sz2 != sz {
			return "operands"
		}
		s.op, s.size = rr, sz
	case isRegArg(a0) && isMemArg(a1):
		sz, ok := d.reg(a0)
		if !ok || !d.mem(a1.(x86asm.Mem)) {
			return "operands"
		}
		s.op, s.size = rmem, sz
	case isMemArg(a0) && isRegArg(a1):
		sz, ok := d.reg(a1)
		if !ok || !d.mem(a0.(x86asm.Mem)) {
			return "operands"
		}
		s.op, s.size = memr, sz
	case isRegArg(a0) && isImmArg(a1):
		sz, ok := d.reg(a0)
		if !ok {
			return "operands"
		}
		d.imm(a1)
		s.op, s.size = ri, sz
	case isMemArg(a0) && isImmArg(a1):
		if !d.mem(a0.(x86asm.Mem)) {
			return "operands"
		}
		d.imm(a1)
		s.op, s.size = mi, uint8(x.MemBytes)
	default:
		return "operands"
	}
	if s.size != 1 && s.size != 2 && s.size != 4 && s.size != 8 {
		return "operand size"
	}
	return ""
}

// regRM decodes a (register, r/m) operand pair; the register's size is
// the operation's.
func (d *decoder) regRM(r, rm x86asm.Arg) string {
	sz, ok := d.reg(r)
	if !ok {
		return "operands"
	}
	if _, ok := d.rmArg(rm); !ok {
		return "operands"
	}
	d.s.size = sz
	return ""
}

// pushPop16 decodes PUSH/POP with a 16-bit operand (the 0x66 prefix; SDM
// Vol. 2 PUSH/POP: RSP moves by 2). Segment registers are not supported.
func (d *decoder) pushPop16() string {
	x, s := d.x, d.s
	s.size = 2
	s.op = opPop16
	if x.Op == x86asm.PUSH {
		s.op = opPush16
	}
	switch a := x.Args[0].(type) {
	case x86asm.Reg:
		sz, ok := d.reg(a)
		if !ok || sz != 2 {
			return "segment register"
		}
		s.sub = push16Reg
	case x86asm.Mem:
		if x.MemBytes != 2 || !d.mem(a) {
			return "operands"
		}
		s.sub = push16Mem
	case x86asm.Imm:
		if s.op != opPush16 {
			return "operands"
		}
		d.imm(a)
		s.sub = push16Imm
	default:
		return "operands"
	}
	return ""
}

// relCount is rel for the branches on RCX (JRCXZ, LOOP*), where 0x67
// selects ECX as the count (SDM Vol. 2 LOOP/LOOPcc, JrCXZ).
func (d *decoder) relCount(a x86asm.Arg) string {
	if d.x.AddrSize == 32 {
		d.s.mf |= mAddr32
	}
	return d.rel(a)
}

// rel sets the absolute target of a relative branch.
func (d *decoder) rel(a x86asm.Arg) string {
	r, ok := a.(x86asm.Rel)
	if !ok {
		return "operands"
	}
	// 0x67 changes nothing for a relative JMP/Jcc/CALL: the target is
	// computed in 64 bits (checked on the host in loop.txt); it selects
	// ECX for the count of JrCXZ/LOOP (relCount).
	if d.data16() {
		return "16-bit operand size on a near branch (Intel ignores 0x66 there, AMD truncates RIP)"
	}
	d.s.target = d.in.addr + uint64(d.x.Len) + uint64(int64(r))
	d.s.size = 8
	return ""
}

// str decodes MOVS/STOS/LODS/CMPS/SCAS/INS/OUTS (SDM Vol. 2 §3.2
// "REP/REPE/REPNE"); the op and the operand size are the entry's.
func (d *decoder) str() string {
	x, s := d.x, d.s
	if x.AddrSize != 64 {
		return "string instruction with 32-bit addressing"
	}
	switch {
	case d.prefix(x86asm.PrefixREP):
		s.sub = repE
	case d.prefix(x86asm.PrefixREPN):
		s.sub = repNE
		if s.op != opCmps && s.op != opScas {
			s.sub = repE // F2 on MOVS/STOS/LODS repeats like F3
		}
	}
	// The source (DS:RSI) may take a segment override; the destination
	// (ES:RDI) may not.
	for _, a := range x.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Segment == x86asm.GS && (m.Base == x86asm.RSI) {
			s.mf |= mGS
		}
	}
	return ""
}

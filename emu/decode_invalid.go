package emu

// Bytes x86asm cannot decode are not all invalid: x86asm does not know
// every valid instruction (the hint NOPs 0F 19-0F 1F, most VEX/EVEX forms,
// some system instructions), and it reports a truncated instruction as a
// prefix-only one. So the interpreter decides #UD itself, from the SDM's
// opcode maps, and only where the map leaves no doubt; everything else it
// cannot decode is an unsupported instruction (the run stops, honestly),
// never a guess. The corpus in testdata/insn/ud/invalid.txt checks every rule
// here against the host CPU (TestHostInvalidCorpus).

// undecodedKind classifies bytes x86asm did not decode.
type undecodedKind uint8

const (
	undUnknown undecodedKind = iota // maybe valid: unsupported
	undUD                           // #UD: not an instruction in 64-bit mode
	undNop                          // a hint NOP (0F 19, 0F 1C-0F 1F) x86asm does not know
)

// isLegacyPrefix reports whether b is a legacy prefix (SDM Vol. 2 §2.1.1:
// groups 1-4).
func isLegacyPrefix(b byte) bool {
	switch b {
	case 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67:
		return true
	}
	return false
}

// invalidOneByte marks the one-byte opcodes that are invalid in 64-bit mode
// (SDM Vol. 2 Appendix A, Table A-2, the entries marked i64): PUSH/POP ES,
// CS, SS, DS; DAA, DAS, AAA, AAS; PUSHA, POPA; the group-1 alias 82; far
// CALL; INTO; AAM, AAD; SALC (D6, undocumented, Intel and AMD alike); far
// JMP. 62 (BOUND), C4 (LES) and C5 (LDS) are the EVEX and VEX escapes in
// 64-bit mode and handled apart.
var invalidOneByte = [256]bool{
	0x06: true, 0x07: true, 0x0e: true, 0x16: true, 0x17: true, 0x1e: true, 0x1f: true,
	0x27: true, 0x2f: true, 0x37: true, 0x3f: true, 0x60: true, 0x61: true, 0x82: true,
	0x9a: true, 0xce: true, 0xd4: true, 0xd5: true, 0xd6: true, 0xea: true,
}

// invalidTwoByte marks the 0F xx opcodes that raise #UD whatever follows
// (SDM Vol. 2 Appendix A, Table A-3, blank cells, and UD0 0F FF / UD2
// 0F 0B): 0F 04, 0A, 0C, 0E, 0F (AMD's FEMMS and 3DNow!, which Intel
// leaves undefined and AMD removed after family 15h), 24-27 (MOV to/from
// test registers, 386 only), 36, 39, 3B-3F, 7A, 7B, A6, A7.
var invalidTwoByte = [256]bool{
	0x04: true, 0x0a: true, 0x0b: true, 0x0c: true, 0x0e: true, 0x0f: true,
	0x24: true, 0x25: true, 0x26: true, 0x27: true, 0x36: true, 0x39: true,
	0x3b: true, 0x3c: true, 0x3d: true, 0x3e: true, 0x3f: true,
	0x7a: true, 0x7b: true, 0xa6: true, 0xa7: true, 0xff: true,
}

// classifyUndecoded decides what bytes are when the opcode maps settle it:
// undUD for no instruction, undNop for a hint NOP x86asm does not know,
// else undUnknown. For undUD and undNop, n is the number of bytes the
// verdict rests on (for undNop the instruction's length): changing a later
// byte cannot change it.
func classifyUndecoded(code []byte) (k undecodedKind, n int) {
	p := 0
	lock := false
	var mand byte          // the last of 66, F2, F3 (mandatory-prefix position)
	sawVEXBlocker := false // 66, F2, F3, F0 or REX before a VEX/EVEX escape: #UD (SDM Vol. 2 §2.3.2)
prefixes:
	for ; p < len(code) && p < 15; p++ {
		switch b := code[p]; {
		case b == 0xf0:
			lock, sawVEXBlocker = true, true
		case b == 0x66 || b == 0xf2 || b == 0xf3:
			mand, sawVEXBlocker = b, true
		case b&0xf0 == 0x40:
			sawVEXBlocker = true
		case isLegacyPrefix(b):
		default:
			break prefixes
		}
	}
	if p >= len(code) || p >= 15 {
		// No opcode: the bytes ran out, or fifteen bytes of prefixes (the
		// length limit's #GP(0), which decodeInst finds by padding).
		return undUnknown, 0
	}
	op := code[p]
	p++
	if invalidOneByte[op] {
		return undUD, p
	}
	haveModRM := p < len(code)
	var mod, reg, rm byte
	if haveModRM {
		mod, reg, rm = code[p]>>6, code[p]>>3&7, code[p]&7
	}
	switch op {
	case 0xc4, 0xc5, 0x62:
		// VEX (C4, C5) and EVEX (62) escapes: whether the instruction is
		// valid depends on the CPU's vector extensions, so only the rules
		// that hold on every CPU are applied (SDM Vol. 2 §2.3.2, §2.3.5,
		// §2.7.1).
		if sawVEXBlocker {
			return undUD, p
		}
		switch {
		case !haveModRM:
		case op == 0xc4 && code[p]&0x1f != 1 && code[p]&0x1f != 2 && code[p]&0x1f != 3:
			return undUD, p + 1 // VEX.mmmmm: only the 0F, 0F 38 and 0F 3A maps
		case op == 0xc5 && p+1 < len(code) && !vexMap1[code[p+1]]:
			return undUD, p + 2 // no VEX form of this 0F opcode
		case op == 0xc4 && code[p]&0x1f == 1 && p+2 < len(code) && !vexMap1[code[p+2]]:
			return undUD, p + 3
		case op == 0x62 && code[p]&7 == 0:
			return undUD, p + 1 // EVEX.mmm = 0 is reserved
		case op == 0x62 && p+1 < len(code) && code[p+1]&4 == 0:
			return undUD, p + 2 // EVEX P1 bit 2 must be 1
		}
		return undUnknown, 0
	}
	if lock {
		if ud, n := lockInvalid(code, p-1); ud {
			return undUD, n
		}
	}
	if !haveModRM && op != 0x0f {
		return undUnknown, 0
	}
	if op >= 0xd8 && op <= 0xdf && x87Reserved(op, code[p]) {
		return undUD, p + 1
	}
	switch op {
	case 0x8c: // MOV r/m, Sreg: Sreg 6 and 7 do not exist (SDM Vol. 2 MOV)
		if reg > 5 {
			return undUD, p + 1
		}
	case 0x8e: // MOV Sreg, r/m: not CS, and Sreg 6 and 7 do not exist
		if reg == 1 || reg > 5 {
			return undUD, p + 1
		}
	case 0x8d: // LEA with a register source (SDM Vol. 2 LEA: #UD)
		if mod == 3 {
			return undUD, p + 1
		}
	case 0xfe: // group 4: only /0 INC and /1 DEC (Table A-6)
		if reg >= 2 {
			return undUD, p + 1
		}
	case 0xff: // group 5: /7 reserved; far CALL/JMP (/3, /5) need memory
		if reg == 7 || mod == 3 && (reg == 3 || reg == 5) {
			return undUD, p + 1
		}
	case 0xc6, 0xc7: // group 11: /0 MOV; /7 is XABORT/XBEGIN (C6 F8, C7 F8)
		if reg >= 1 && reg <= 6 || reg == 7 && (mod != 3 || rm != 0) {
			return undUD, p + 1
		}
	case 0x8f: // group 1A: only /0 POP (Intel; AMD's XOP escape is gone since family 17h)
		if reg != 0 {
			return undUD, p + 1
		}
	case 0x0f:
		return classifyTwoByte(code, p, mand)
	}
	return undUnknown, 0
}

// classifyTwoByte is classifyUndecoded for the 0F map; code[p] is the
// second opcode byte and mand the mandatory-prefix byte (0, 66, F2, F3).
func classifyTwoByte(code []byte, p int, mand byte) (undecodedKind, int) {
	if p >= len(code) {
		return undUnknown, 0
	}
	op := code[p]
	p++
	if invalidTwoByte[op] {
		return undUD, p
	}
	switch op {
	case 0x37: // GETSEC: #UD if CR4.SMXE = 0 (SDM Vol. 2 GETSEC), as here
		return undUD, p
	case 0xaa: // RSM: #UD outside SMM (SDM Vol. 2 RSM)
		return undUD, p
	case 0xb8: // JMPE (reserved, Table A-3) unless F3 makes it POPCNT
		if mand != 0xf3 {
			return undUD, p
		}
		return undUnknown, 0
	case 0x78, 0x79: // VMREAD/VMWRITE: #UD outside VMX operation (SDM Vol. 3 ch. 31)
		if mand == 0 {
			return undUD, p
		}
		return undUnknown, 0
	}
	if p >= len(code) {
		return undUnknown, 0
	}
	mod, reg := code[p]>>6, code[p]>>3&7
	switch op {
	case 0x00: // group 6: /6 and /7 reserved
		if reg >= 6 {
			return undUD, p + 1
		}
	case 0x20, 0x22: // MOV from/to CR1, CR5, CR6, CR7 (SDM Vol. 2 MOV CR: #UD)
		if reg == 1 || reg >= 5 {
			return undUD, p + 1
		}
	case 0xba: // group 8: /0-/3 reserved
		if reg < 4 {
			return undUD, p + 1
		}
	case 0xb2, 0xb4, 0xb5, 0xc3: // LSS, LFS, LGS, MOVNTI: memory only
		if mod == 3 {
			return undUD, p + 1
		}
	case 0xc7: // group 9 (Table A-6): with a register only /6 RDRAND and
		// /7 RDSEED/RDPID; with memory, /0 and /2 are reserved
		if mod == 3 && reg < 6 || mod != 3 && (reg == 0 || reg == 2) {
			return undUD, p + 1
		}
	case 0x19, 0x1c, 0x1d, 0x1e, 0x1f:
		// NOP Ev (SDM Vol. 2 NOP, Table A-3 note: "0F 19-0F 1F are
		// reserved NOPs"): the operand is never accessed. With CET and
		// CLDEMOTE off, 0F 1E and 0F 1C are NOPs as well.
		if m := modrmLen(code[p:]); m > 0 {
			return undNop, p + m
		}
	}
	return undUnknown, 0
}

// lockInvalid reports whether LOCK makes the instruction whose opcode is
// at code[q] #UD (SDM Vol. 2 LOCK: only ADD ADC AND BTC BTR BTS CMPXCHG
// CMPXCHG8B CMPXCHG16B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG, and only
// with a memory destination), and on how many bytes that rests. It is
// false when the bytes run out before it is settled.
func lockInvalid(code []byte, q int) (bool, int) {
	op := code[q]
	m := q + 1 // ModRM position
	if op == 0x0f {
		if m >= len(code) {
			return false, 0
		}
		op2 := code[m]
		m++
		switch op2 {
		case 0xab, 0xb3, 0xbb, 0xb0, 0xb1, 0xc0, 0xc1, 0xba, 0xc7:
		default:
			return true, m
		}
		if m >= len(code) {
			return false, 0
		}
		reg := code[m] >> 3 & 7
		switch {
		case code[m]>>6 == 3,
			op2 == 0xba && reg < 5, // BT and the reserved /0-/3
			op2 == 0xc7 && reg != 1:
			return true, m + 1
		}
		return false, 0
	}
	switch {
	case op < 0x40 && op&7 <= 1 && op&0x38 != 0x38: // ALU Eb,Gb and Ev,Gv, not CMP
	case op == 0x80 || op == 0x81 || op == 0x83:
	case op == 0x86 || op == 0x87:
	case op == 0xf6 || op == 0xf7:
	case op == 0xfe || op == 0xff:
	default:
		return true, m
	}
	if m >= len(code) {
		return false, 0
	}
	mod, reg := code[m]>>6, code[m]>>3&7
	switch {
	case mod == 3,
		(op == 0x80 || op == 0x81 || op == 0x83) && reg == 7, // CMP
		(op == 0xf6 || op == 0xf7) && reg != 2 && reg != 3,   // only NOT, NEG
		(op == 0xfe || op == 0xff) && reg > 1:                // only INC, DEC
		return true, m + 1
	}
	return false, 0
}

// modrmLen returns the length of the ModRM byte at b[0] with its SIB and
// displacement (SDM Vol. 2 §2.1.5, Tables 2-2 and 2-3; in 64-bit mode the
// 32-bit address size uses the same forms), or 0 if b is too short.
func modrmLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	mod, rm := b[0]>>6, b[0]&7
	n := 1
	if mod == 3 {
		return n
	}
	if rm == 4 {
		if len(b) < 2 {
			return 0
		}
		n++
		if mod == 0 && b[1]&7 == 5 {
			n += 4
		}
	} else if mod == 0 && rm == 5 {
		n += 4
	}
	switch mod {
	case 1:
		n++
	case 2:
		n += 4
	}
	if len(b) < n {
		return 0
	}
	return n
}

// vexMap1 marks the 0F-map opcodes that have a VEX form (SDM Vol. 2 Table
// A-3, the cells marked "v", and the VEX-encoded opmask instructions of
// Vol. 2 ch. 3-5): 10-17, 28-2F, 41-4B, 50-77, 7C-7F, 90-93, 98-99, AE,
// C2, C4-C6, D0-FF. Any other opcode under a VEX prefix is #UD on every
// CPU.
var vexMap1 = func() (t [256]bool) {
	for _, r := range [][2]int{{0x10, 0x17}, {0x28, 0x2f}, {0x41, 0x4b}, {0x50, 0x77}, {0x7c, 0x7f},
		{0x90, 0x93}, {0x98, 0x99}, {0xae, 0xae}, {0xc2, 0xc2}, {0xc4, 0xc6}, {0xd0, 0xff}} {
		for i := r[0]; i <= r[1]; i++ {
			t[i] = true
		}
	}
	return t
}()

// x87Reserved reports the x87 escape (D8-DF) encodings that are blank in
// the SDM's x87 opcode maps (Vol. 2 Tables) and #UD on Intel
// and AMD alike (checked on the host by testdata/insn/ud/invalid.txt):
// the memory forms D9 /1, DB /4, DB /6, DD /5, and the register forms
// DA E0-E8 and EA-FF, DB F8-FF, DD F0-FF, DE D8 and DA-DF, DF F8-FF.
func x87Reserved(op, modrm byte) bool {
	reg := modrm >> 3 & 7
	if modrm < 0xc0 {
		return op == 0xd9 && reg == 1 || op == 0xdb && (reg == 4 || reg == 6) || op == 0xdd && reg == 5
	}
	switch op {
	case 0xda:
		return modrm >= 0xe0 && modrm != 0xe9
	case 0xdb, 0xdf:
		return modrm >= 0xf8
	case 0xdd:
		return modrm >= 0xf0
	case 0xde:
		return modrm >= 0xd8 && modrm <= 0xdf && modrm != 0xd9
	}
	return false
}

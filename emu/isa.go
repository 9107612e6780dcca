package emu

import "golang.org/x/arch/x86/x86asm"

// The instruction set, declared once as data: isa says, for every x86asm.Op
// the interpreter implements, which of its ops runs (semOp and sub), how the
// operands are read (isaForm), how the flags are written (flagClass) and the
// SDM Vol. 2 instruction-reference page that defines it. An op absent from
// isa is "not implemented" (the run stops with StopUnsupported). decode.go
// looks the entry up once per decoded instruction; docs/isa.md is generated
// from this table (go test ./emu -run TestGenerated -update).
//
// What x86asm does not decode is not here: ENDBR64/ENDBR32 (decode.go),
// the hint NOPs and the #UD opcode maps (decode_invalid.go).

// isaForm says how an instruction's x86asm operands become semantics: each
// form is one decoder method (decoder.decodeForm).
type isaForm uint8

const (
	formAbsent    isaForm = iota // not implemented
	formFixed                    // no operand is read: the entry is the whole instruction
	formTwoOp                    // destination, source in five forms; op is the r,r member
	formMov                      // MOV: formTwoOp, or SS or a debug register (decode_system.go)
	formMovx                     // r, r/m of a smaller size
	formLea                      // r, m
	formXchg                     // r, r/m or r/m, r
	formRegRM                    // r, r/m
	formRMReg                    // r/m, r
	formSetcc                    // r/m8
	formBswap                    // r32 or r64
	formAcc                      // the accumulator, sized by the operand-size attribute
	formUnary                    // r/m
	formMulDiv                   // r/m (RDX:RAX implicit); IMUL also r, r/m [, imm]
	formShift                    // r/m, 1 or CL or imm8
	formShxd                     // r/m, r, CL or imm8
	formBt                       // r/m, r or r/m, imm8
	formRel                      // rel8 or rel32
	formRelCount                 // rel8, counting in RCX (ECX with 0x67)
	formNear                     // rel32, r64 or m64; op is the rel32 member
	formRet                      // [imm16]
	formLret                     // [imm16], 4- or 8-byte slots
	formPushPop                  // r, m or imm, 8 or 2 bytes; op is the 8-byte r member
	formLeave                    // none, 64-bit only
	formEnter                    // imm16, imm8
	formXlat                     // [RBX + AL]
	formCmpxchg8b                // m64 or m128
	formInOut                    // the accumulator and imm8 or DX
	formString                   // implicit [RSI] and [RDI], REP prefixes
	formInt                      // imm8 (CC is INT3)
	numForms
)

// formOperands describes, per form, the operand forms its decoder
// (decoder.decodeForm) accepts, for docs/isa.md.
var formOperands = [numForms]string{
	formFixed:     "none (operands ignored)",
	formTwoOp:     "r, r · r, m · m, r · r, imm · m, imm",
	formMov:       "r, r · r, m · m, r · r, imm · m, imm · SS, r/m · r/m, SS · DRn, r64 · r64, DRn",
	formMovx:      "r, r/m8 · r, r/m16 · r64, r/m32",
	formLea:       "r, m",
	formXchg:      "r, r/m · r/m, r",
	formRegRM:     "r, r/m",
	formRMReg:     "r/m, r",
	formSetcc:     "r/m8",
	formBswap:     "r32 · r64",
	formAcc:       "implicit accumulator",
	formUnary:     "r/m",
	formMulDiv:    "r/m · (IMUL) r, r/m · r, r/m, imm",
	formShift:     "r/m, 1 · r/m, CL · r/m, imm8",
	formShxd:      "r/m, r, CL · r/m, r, imm8",
	formBt:        "r/m, r · r/m, imm8",
	formRel:       "rel8 · rel32",
	formRelCount:  "rel8 (RCX, or ECX with 0x67)",
	formNear:      "rel32 · r64 · m64",
	formRet:       "none · imm16",
	formLret:      "none · imm16",
	formPushPop:   "r64 · m64 · imm (PUSH) · r16 · m16 · imm16 (PUSH)",
	formLeave:     "none",
	formEnter:     "imm16, imm8",
	formXlat:      "m8 ([RBX + AL])",
	formCmpxchg8b: "m64 · m128",
	formInOut:     "AL/AX/EAX and imm8 · AL/AX/EAX and DX",
	formString:    "implicit [RSI], [RDI]; REP/REPE/REPNE",
	formInt:       "imm8",
}

// isaEntry is one implemented instruction.
type isaEntry struct {
	form isaForm
	op   semOp     // the op that runs (for multi-op forms, see the form)
	sub  uint8     // family member: aluKind, condition code, shiftKind, ...
	size uint8     // operand size the mnemonic fixes (MOVSB, IRETD, ...), else 0
	fc   flagClass // how the flags are written (flags.go)
	sdm  string    // the SDM Vol. 2 instruction-reference page
}

// isaOf returns op's entry (form formAbsent if op is not implemented).
func isaOf(op x86asm.Op) *isaEntry {
	if int(op) < len(isa) {
		return &isa[op]
	}
	return &isa[0]
}

// isa is the instruction set, indexed by x86asm.Op. Condition codes are
// the low nibble of the Jcc/SETcc/CMOVcc opcodes (SDM Vol. 1 Appendix B,
// Table B-1); ALU and shift kinds the /digit of their group (Table A-6).
var isa = [...]isaEntry{
	// No-ops, hints and fences. NOP Ev never accesses its operand;
	// PREFETCHh is a hint that never faults. The fences order memory but
	// do not serialize (SDM Vol. 3 §10.3, "LFENCE ... does not
	// serialize"); the emulated CPU executes in order with no store buffer,
	// so they are NOPs. WAIT/FWAIT checks for pending x87 exceptions (none:
	// no x87 instruction runs here) and raises #NM only if CR0.MP and
	// CR0.TS are both set (they are not).
	x86asm.NOP:         {formFixed, opNop, 0, 0, fcNone, "NOP"},
	x86asm.PAUSE:       {formFixed, opNop, 0, 0, fcNone, "PAUSE"},
	x86asm.PREFETCHNTA: {formFixed, opNop, 0, 0, fcNone, "PREFETCHh"},
	x86asm.PREFETCHT0:  {formFixed, opNop, 0, 0, fcNone, "PREFETCHh"},
	x86asm.PREFETCHT1:  {formFixed, opNop, 0, 0, fcNone, "PREFETCHh"},
	x86asm.PREFETCHT2:  {formFixed, opNop, 0, 0, fcNone, "PREFETCHh"},
	x86asm.PREFETCHW:   {formFixed, opNop, 0, 0, fcNone, "PREFETCHW"},
	x86asm.LFENCE:      {formFixed, opNop, 0, 0, fcNone, "LFENCE"},
	x86asm.MFENCE:      {formFixed, opNop, 0, 0, fcNone, "MFENCE"},
	x86asm.SFENCE:      {formFixed, opNop, 0, 0, fcNone, "SFENCE"},
	x86asm.FWAIT:       {formFixed, opNop, 0, 0, fcNone, "WAIT/FWAIT"},

	// #UD. XBEGIN/XABORT: #UD if CPUID.(EAX=7,ECX=0):EBX.RTM[bit 11] = 0,
	// as this machine's CPUID says. UD0 (0F FF) has no row: 0F FF is #UD
	// whatever follows (decode_invalid.go, invalidTwoByte), decided before
	// x86asm's op is consulted, because Intel reads a ModRM after it and
	// AMD does not (SDM Vol. 2 UD; AMD APM Vol. 3 UD0).
	x86asm.UD1:    {formFixed, opUD, 0, 0, fcNone, "UD"},
	x86asm.UD2:    {formFixed, opUD, 0, 0, fcNone, "UD"},
	x86asm.XBEGIN: {formFixed, opUD, 0, 0, fcNone, "XBEGIN"},
	x86asm.XABORT: {formFixed, opUD, 0, 0, fcNone, "XABORT"},

	// Data movement (exec_dispatch.go, exec_move.go).
	x86asm.MOV:        {formMov, opMovRR, 0, 0, fcNone, "MOV"},
	x86asm.MOVZX:      {formMovx, opMovzx, 0, 0, fcNone, "MOVZX"},
	x86asm.MOVSX:      {formMovx, opMovsx, 0, 0, fcNone, "MOVSX/MOVSXD"},
	x86asm.MOVSXD:     {formMovx, opMovsx, 0, 0, fcNone, "MOVSX/MOVSXD"},
	x86asm.LEA:        {formLea, opLea, 0, 0, fcNone, "LEA"},
	x86asm.XCHG:       {formXchg, opXchg, 0, 0, fcNone, "XCHG"},
	x86asm.XADD:       {formRMReg, opXadd, 0, 0, fcArith, "XADD"},
	x86asm.CMPXCHG:    {formRMReg, opCmpxchg, 0, 0, fcArith, "CMPXCHG"},
	x86asm.BSWAP:      {formBswap, opBswap, 0, 0, fcNone, "BSWAP"},
	x86asm.CBW:        {formAcc, opCbw, 0, 0, fcNone, "CBW/CWDE/CDQE"},
	x86asm.CWDE:       {formAcc, opCbw, 0, 0, fcNone, "CBW/CWDE/CDQE"},
	x86asm.CDQE:       {formAcc, opCbw, 0, 0, fcNone, "CBW/CWDE/CDQE"},
	x86asm.CWD:        {formAcc, opCwd, 0, 0, fcNone, "CWD/CDQ/CQO"},
	x86asm.CDQ:        {formAcc, opCwd, 0, 0, fcNone, "CWD/CDQ/CQO"},
	x86asm.CQO:        {formAcc, opCwd, 0, 0, fcNone, "CWD/CDQ/CQO"},
	x86asm.XLATB:      {formXlat, opXlat, 0, 1, fcNone, "XLAT/XLATB"},
	x86asm.CMPXCHG8B:  {formCmpxchg8b, opCmpxchg8b, 0, 8, fcZF, "CMPXCHG8B/CMPXCHG16B"},
	x86asm.CMPXCHG16B: {formCmpxchg8b, opCmpxchg8b, 1, 8, fcZF, "CMPXCHG8B/CMPXCHG16B"},
	x86asm.IN:         {formInOut, opIn, 0, 0, fcNone, "IN"},
	x86asm.OUT:        {formInOut, opOut, 0, 0, fcNone, "OUT"},

	x86asm.CMOVO:  {formRegRM, opCmov, 0, 0, fcNone, "CMOVcc"},
	x86asm.CMOVNO: {formRegRM, opCmov, 1, 0, fcNone, "CMOVcc"},
	x86asm.CMOVB:  {formRegRM, opCmov, 2, 0, fcNone, "CMOVcc"},
	x86asm.CMOVAE: {formRegRM, opCmov, 3, 0, fcNone, "CMOVcc"},
	x86asm.CMOVE:  {formRegRM, opCmov, 4, 0, fcNone, "CMOVcc"},
	x86asm.CMOVNE: {formRegRM, opCmov, 5, 0, fcNone, "CMOVcc"},
	x86asm.CMOVBE: {formRegRM, opCmov, 6, 0, fcNone, "CMOVcc"},
	x86asm.CMOVA:  {formRegRM, opCmov, 7, 0, fcNone, "CMOVcc"},
	x86asm.CMOVS:  {formRegRM, opCmov, 8, 0, fcNone, "CMOVcc"},
	x86asm.CMOVNS: {formRegRM, opCmov, 9, 0, fcNone, "CMOVcc"},
	x86asm.CMOVP:  {formRegRM, opCmov, 10, 0, fcNone, "CMOVcc"},
	x86asm.CMOVNP: {formRegRM, opCmov, 11, 0, fcNone, "CMOVcc"},
	x86asm.CMOVL:  {formRegRM, opCmov, 12, 0, fcNone, "CMOVcc"},
	x86asm.CMOVGE: {formRegRM, opCmov, 13, 0, fcNone, "CMOVcc"},
	x86asm.CMOVLE: {formRegRM, opCmov, 14, 0, fcNone, "CMOVcc"},
	x86asm.CMOVG:  {formRegRM, opCmov, 15, 0, fcNone, "CMOVcc"},

	x86asm.SETO:  {formSetcc, opSetcc, 0, 1, fcNone, "SETcc"},
	x86asm.SETNO: {formSetcc, opSetcc, 1, 1, fcNone, "SETcc"},
	x86asm.SETB:  {formSetcc, opSetcc, 2, 1, fcNone, "SETcc"},
	x86asm.SETAE: {formSetcc, opSetcc, 3, 1, fcNone, "SETcc"},
	x86asm.SETE:  {formSetcc, opSetcc, 4, 1, fcNone, "SETcc"},
	x86asm.SETNE: {formSetcc, opSetcc, 5, 1, fcNone, "SETcc"},
	x86asm.SETBE: {formSetcc, opSetcc, 6, 1, fcNone, "SETcc"},
	x86asm.SETA:  {formSetcc, opSetcc, 7, 1, fcNone, "SETcc"},
	x86asm.SETS:  {formSetcc, opSetcc, 8, 1, fcNone, "SETcc"},
	x86asm.SETNS: {formSetcc, opSetcc, 9, 1, fcNone, "SETcc"},
	x86asm.SETP:  {formSetcc, opSetcc, 10, 1, fcNone, "SETcc"},
	x86asm.SETNP: {formSetcc, opSetcc, 11, 1, fcNone, "SETcc"},
	x86asm.SETL:  {formSetcc, opSetcc, 12, 1, fcNone, "SETcc"},
	x86asm.SETGE: {formSetcc, opSetcc, 13, 1, fcNone, "SETcc"},
	x86asm.SETLE: {formSetcc, opSetcc, 14, 1, fcNone, "SETcc"},
	x86asm.SETG:  {formSetcc, opSetcc, 15, 1, fcNone, "SETcc"},

	// Arithmetic and logic (exec_dispatch.go, exec_arith.go).
	x86asm.ADD:  {formTwoOp, opAluRR, aluAdd, 0, fcArith, "ADD"},
	x86asm.OR:   {formTwoOp, opAluRR, aluOr, 0, fcLogic, "OR"},
	x86asm.ADC:  {formTwoOp, opAluRR, aluAdc, 0, fcArith, "ADC"},
	x86asm.SBB:  {formTwoOp, opAluRR, aluSbb, 0, fcArith, "SBB"},
	x86asm.AND:  {formTwoOp, opAluRR, aluAnd, 0, fcLogic, "AND"},
	x86asm.SUB:  {formTwoOp, opAluRR, aluSub, 0, fcArith, "SUB"},
	x86asm.XOR:  {formTwoOp, opAluRR, aluXor, 0, fcLogic, "XOR"},
	x86asm.CMP:  {formTwoOp, opAluRR, aluCmp, 0, fcArith, "CMP"},
	x86asm.TEST: {formTwoOp, opAluRR, aluTest, 0, fcLogic, "TEST"},
	x86asm.INC:  {formUnary, opUnary, unInc, 0, fcIncDec, "INC"},
	x86asm.DEC:  {formUnary, opUnary, unDec, 0, fcIncDec, "DEC"},
	x86asm.NEG:  {formUnary, opUnary, unNeg, 0, fcArith, "NEG"},
	x86asm.NOT:  {formUnary, opUnary, unNot, 0, fcNone, "NOT"},
	x86asm.MUL:  {formMulDiv, opMulDiv, mdMul, 0, fcMul, "MUL"},
	x86asm.IMUL: {formMulDiv, opMulDiv, mdImul, 0, fcMul, "IMUL"},
	x86asm.DIV:  {formMulDiv, opMulDiv, mdDiv, 0, fcDiv, "DIV"},
	x86asm.IDIV: {formMulDiv, opMulDiv, mdIdiv, 0, fcDiv, "IDIV"},

	// Shifts and rotates (exec_shift.go). Group 2 /6 (SAL) is rewritten
	// to SHL before decoding (rewriteAlias).
	x86asm.ROL:  {formShift, opShift, shRol, 0, fcRotate, "RCL/RCR/ROL/ROR"},
	x86asm.ROR:  {formShift, opShift, shRor, 0, fcRotate, "RCL/RCR/ROL/ROR"},
	x86asm.RCL:  {formShift, opShift, shRcl, 0, fcRotate, "RCL/RCR/ROL/ROR"},
	x86asm.RCR:  {formShift, opShift, shRcr, 0, fcRotate, "RCL/RCR/ROL/ROR"},
	x86asm.SHL:  {formShift, opShift, shShl, 0, fcShift, "SAL/SAR/SHL/SHR"},
	x86asm.SHR:  {formShift, opShift, shShr, 0, fcShift, "SAL/SAR/SHL/SHR"},
	x86asm.SAR:  {formShift, opShift, shSar, 0, fcShift, "SAL/SAR/SHL/SHR"},
	x86asm.SHLD: {formShxd, opShxd, 0, 0, fcShxd, "SHLD"},
	x86asm.SHRD: {formShxd, opShxd, 1, 0, fcShxd, "SHRD"},

	// Bit operations (exec_bit.go).
	x86asm.BT:     {formBt, opBt, btBt, 0, fcBt, "BT"},
	x86asm.BTS:    {formBt, opBt, btBts, 0, fcBt, "BTS"},
	x86asm.BTR:    {formBt, opBt, btBtr, 0, fcBt, "BTR"},
	x86asm.BTC:    {formBt, opBt, btBtc, 0, fcBt, "BTC"},
	x86asm.BSF:    {formRegRM, opBscan, scBsf, 0, fcBscan, "BSF"},
	x86asm.BSR:    {formRegRM, opBscan, scBsr, 0, fcBscan, "BSR"},
	x86asm.TZCNT:  {formRegRM, opBscan, scTzcnt, 0, fcTzcnt, "TZCNT"},
	x86asm.LZCNT:  {formRegRM, opBscan, scLzcnt, 0, fcTzcnt, "LZCNT"},
	x86asm.POPCNT: {formRegRM, opBscan, scPopcnt, 0, fcPopcnt, "POPCNT"},

	// Control transfer (exec_dispatch.go, exec_branch.go).
	x86asm.JO:     {formRel, opJcc, 0, 0, fcNone, "Jcc"},
	x86asm.JNO:    {formRel, opJcc, 1, 0, fcNone, "Jcc"},
	x86asm.JB:     {formRel, opJcc, 2, 0, fcNone, "Jcc"},
	x86asm.JAE:    {formRel, opJcc, 3, 0, fcNone, "Jcc"},
	x86asm.JE:     {formRel, opJcc, 4, 0, fcNone, "Jcc"},
	x86asm.JNE:    {formRel, opJcc, 5, 0, fcNone, "Jcc"},
	x86asm.JBE:    {formRel, opJcc, 6, 0, fcNone, "Jcc"},
	x86asm.JA:     {formRel, opJcc, 7, 0, fcNone, "Jcc"},
	x86asm.JS:     {formRel, opJcc, 8, 0, fcNone, "Jcc"},
	x86asm.JNS:    {formRel, opJcc, 9, 0, fcNone, "Jcc"},
	x86asm.JP:     {formRel, opJcc, 10, 0, fcNone, "Jcc"},
	x86asm.JNP:    {formRel, opJcc, 11, 0, fcNone, "Jcc"},
	x86asm.JL:     {formRel, opJcc, 12, 0, fcNone, "Jcc"},
	x86asm.JGE:    {formRel, opJcc, 13, 0, fcNone, "Jcc"},
	x86asm.JLE:    {formRel, opJcc, 14, 0, fcNone, "Jcc"},
	x86asm.JG:     {formRel, opJcc, 15, 0, fcNone, "Jcc"},
	x86asm.JRCXZ:  {formRelCount, opJrcxz, 0, 0, fcNone, "Jcc"},
	x86asm.JECXZ:  {formRelCount, opJrcxz, 0, 0, fcNone, "Jcc"},
	x86asm.LOOP:   {formRelCount, opLoop, 0, 0, fcNone, "LOOP/LOOPcc"},
	x86asm.LOOPE:  {formRelCount, opLoop, 1, 0, fcNone, "LOOP/LOOPcc"},
	x86asm.LOOPNE: {formRelCount, opLoop, 2, 0, fcNone, "LOOP/LOOPcc"},
	x86asm.JMP:    {formNear, opJmp, 0, 0, fcNone, "JMP"},
	x86asm.CALL:   {formNear, opCall, 0, 0, fcNone, "CALL"},
	x86asm.RET:    {formRet, opRet, 0, 0, fcNone, "RET"},
	x86asm.LRET:   {formLret, opLret, 0, 0, fcNone, "RET"},

	// Stack (exec_dispatch.go, exec_stack.go). PUSHF/POPF are the 66 9C
	// and 66 9D forms: the low 16 bits of RFLAGS.
	x86asm.PUSH:   {formPushPop, opPushR, 0, 0, fcNone, "PUSH"},
	x86asm.POP:    {formPushPop, opPopR, 0, 0, fcNone, "POP"},
	x86asm.PUSHFQ: {formFixed, opPushf, 0, 0, fcNone, "PUSHF/PUSHFD/PUSHFQ"},
	x86asm.POPFQ:  {formFixed, opPopf, 0, 0, fcAll, "POPF/POPFD/POPFQ"},
	x86asm.PUSHF:  {formFixed, opPush16, push16Flags, 2, fcNone, "PUSHF/PUSHFD/PUSHFQ"},
	x86asm.POPF:   {formFixed, opPop16, push16Flags, 2, fcAll, "POPF/POPFD/POPFQ"},
	x86asm.LEAVE:  {formLeave, opLeave, 0, 0, fcNone, "LEAVE"},
	x86asm.ENTER:  {formEnter, opEnter, 0, 8, fcNone, "ENTER"},

	// String operations (exec_string.go).
	x86asm.MOVSB: {formString, opMovs, 0, 1, fcNone, "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"},
	x86asm.MOVSW: {formString, opMovs, 0, 2, fcNone, "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"},
	x86asm.MOVSD: {formString, opMovs, 0, 4, fcNone, "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"},
	x86asm.MOVSQ: {formString, opMovs, 0, 8, fcNone, "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ"},
	x86asm.STOSB: {formString, opStos, 0, 1, fcNone, "STOS/STOSB/STOSW/STOSD/STOSQ"},
	x86asm.STOSW: {formString, opStos, 0, 2, fcNone, "STOS/STOSB/STOSW/STOSD/STOSQ"},
	x86asm.STOSD: {formString, opStos, 0, 4, fcNone, "STOS/STOSB/STOSW/STOSD/STOSQ"},
	x86asm.STOSQ: {formString, opStos, 0, 8, fcNone, "STOS/STOSB/STOSW/STOSD/STOSQ"},
	x86asm.LODSB: {formString, opLods, 0, 1, fcNone, "LODS/LODSB/LODSW/LODSD/LODSQ"},
	x86asm.LODSW: {formString, opLods, 0, 2, fcNone, "LODS/LODSB/LODSW/LODSD/LODSQ"},
	x86asm.LODSD: {formString, opLods, 0, 4, fcNone, "LODS/LODSB/LODSW/LODSD/LODSQ"},
	x86asm.LODSQ: {formString, opLods, 0, 8, fcNone, "LODS/LODSB/LODSW/LODSD/LODSQ"},
	x86asm.CMPSB: {formString, opCmps, 0, 1, fcArith, "CMPS/CMPSB/CMPSW/CMPSD/CMPSQ"},
	x86asm.CMPSW: {formString, opCmps, 0, 2, fcArith, "CMPS/CMPSB/CMPSW/CMPSD/CMPSQ"},
	x86asm.CMPSD: {formString, opCmps, 0, 4, fcArith, "CMPS/CMPSB/CMPSW/CMPSD/CMPSQ"},
	x86asm.CMPSQ: {formString, opCmps, 0, 8, fcArith, "CMPS/CMPSB/CMPSW/CMPSD/CMPSQ"},
	x86asm.SCASB: {formString, opScas, 0, 1, fcArith, "SCAS/SCASB/SCASW/SCASD/SCASQ"},
	x86asm.SCASW: {formString, opScas, 0, 2, fcArith, "SCAS/SCASB/SCASW/SCASD/SCASQ"},
	x86asm.SCASD: {formString, opScas, 0, 4, fcArith, "SCAS/SCASB/SCASW/SCASD/SCASQ"},
	x86asm.SCASQ: {formString, opScas, 0, 8, fcArith, "SCAS/SCASB/SCASW/SCASD/SCASQ"},
	x86asm.INSB:  {formString, opIns, 0, 1, fcNone, "INS/INSB/INSW/INSD"},
	x86asm.INSW:  {formString, opIns, 0, 2, fcNone, "INS/INSB/INSW/INSD"},
	x86asm.INSD:  {formString, opIns, 0, 4, fcNone, "INS/INSB/INSW/INSD"},
	x86asm.OUTSB: {formString, opOuts, 0, 1, fcNone, "OUTS/OUTSB/OUTSW/OUTSD"},
	x86asm.OUTSW: {formString, opOuts, 0, 2, fcNone, "OUTS/OUTSB/OUTSW/OUTSD"},
	x86asm.OUTSD: {formString, opOuts, 0, 4, fcNone, "OUTS/OUTSB/OUTSW/OUTSD"},

	// System and flag instructions (exec_system.go). IRETD (CF without
	// REX.W) pops the same five slots 4 bytes wide (SDM Vol. 2 IRET,
	// IA-32e mode: SS:RSP are always popped).
	x86asm.INT:   {formInt, opSoftInt, 0, 0, fcNone, "INT n/INTO/INT3/INT1"},
	x86asm.ICEBP: {formFixed, opInt1, 0, 0, fcNone, "INT n/INTO/INT3/INT1"},
	x86asm.IRETQ: {formFixed, opIretq, 0, 8, fcAll, "IRET/IRETD/IRETQ"},
	x86asm.IRETD: {formFixed, opIretq, 0, 4, fcAll, "IRET/IRETD/IRETQ"},
	x86asm.STI:   {formFixed, opSti, 0, 0, fcNone, "STI"},
	x86asm.CLI:   {formFixed, opCli, 0, 0, fcNone, "CLI"},
	x86asm.HLT:   {formFixed, opHlt, 0, 0, fcNone, "HLT"},
	x86asm.CPUID: {formFixed, opCpuid, 0, 0, fcNone, "CPUID"},
	x86asm.RDMSR: {formFixed, opRdmsr, 0, 0, fcNone, "RDMSR"},
	x86asm.WRMSR: {formFixed, opWrmsr, 0, 0, fcNone, "WRMSR"},
	x86asm.CLC:   {formFixed, opClc, 0, 0, fcCF, "CLC"},
	x86asm.STC:   {formFixed, opStc, 0, 0, fcCF, "STC"},
	x86asm.CMC:   {formFixed, opCmc, 0, 0, fcCF, "CMC"},
	x86asm.CLD:   {formFixed, opCld, 0, 0, fcNone, "CLD"},
	x86asm.STD:   {formFixed, opStd, 0, 0, fcNone, "STD"},
	x86asm.SAHF:  {formFixed, opSahf, 0, 0, fcSahf, "SAHF"},
	x86asm.LAHF:  {formFixed, opLahf, 0, 0, fcNone, "LAHF"},
}

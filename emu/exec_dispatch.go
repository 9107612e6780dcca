package emu

// exec executes one decoded instruction on c.
//
// Contract: on success RIP is the next instruction or the branch
// target. An instruction that faults (a #PF from c.read/c.write/c.push/
// c.pop, #UD, #DE) returns with c.exit = exitFault and no architectural
// effect: RIP still addresses it, and no register, flag or memory byte has
// changed. Every implementation therefore does its fallible memory accesses
// first (at most one store, last) and commits registers and flags after.
// The one exception is a REP string instruction, which, like hardware,
// keeps the iterations completed before the faulting one (SDM Vol. 2 REP:
// the instruction is restartable).
func (c *CPU) exec(in *inst) { c.run(nil, in, 1) }

// run executes in and, when dp is not nil, the decodes that follow it on
// dp: up to k instructions in all, stopping after one that exits or sets
// c.brk, when RIP leaves dp's page, or before a missing or special decode
// (the step loop's fastSteps decides what comes next). It returns how
// many it executed and the last of them. Each executes as exec says.
//
// The hot forms are handled here without calls; the rest in execCold. run
// allocates nothing and does no map lookups or interface dispatch. The
// arithmetic flags of ADD, OR, ADC, SBB, AND, SUB, XOR, CMP and TEST are
// lazy within it (c.lf: computed when read, by Jcc or an instruction
// execCold runs, or when exec returns; fastSteps keeps them lazy from one
// run to the next and materializes them before anything else sees them):
// outside exec and fastSteps RFLAGS is always whole.
func (c *CPU) run(dp *decodePage, in *inst, k int) (done int, last *inst) {
	for {
		s := &in.sem
		next := c.RIP + uint64(in.len)
		switch s.op {
		case opNop:
		case opMovRR: // SDM Vol. 2 MOV
			c.setReg(s.r, s.rsh, s, c.R[s.rm&15]>>s.rmsh)
		case opMovRM:
			v, ok := c.read(c.ea(in), int(s.size))
			if !ok {
				goto step
			}
			c.setReg(s.r, s.rsh, s, v)
		case opMovMR:
			if !c.write(c.ea(in), int(s.size), c.R[s.r&15]>>s.rsh) {
				goto step
			}
		case opMovRI:
			c.setReg(s.r, s.rsh, s, s.imm)
		case opMovMI:
			if !c.write(c.ea(in), int(s.size), s.imm) {
				goto step
			}
		case opLea: // SDM Vol. 2 LEA: the offset, truncated to the operand size
			c.setReg(s.r, 0, s, c.ea(in))
		case opAluRR, opAluRI: // SDM Vol. 2 ADD OR ADC SBB AND SUB XOR CMP TEST
			a, b := c.R[s.r&15]>>s.rsh, s.imm
			if s.op == opAluRR {
				b = c.R[s.rm&15] >> s.rmsh
			}
			var r uint64
			switch s.sub { // aluResult, inline
			case aluAdd:
				r = a + b
			case aluSub, aluCmp:
				r = a - b
			case aluAnd, aluTest:
				r = a & b
			case aluXor:
				r = a ^ b
			default:
				r = c.aluRare(s, a, b)
			}
			r &= s.mask
			if s.sub < aluCmp {
				c.setReg(s.r, s.rsh, s, r)
			}
			c.setLazy(s, a, b, r)
		case opAluRM:
			b, ok := c.read(c.ea(in), int(s.size))
			if !ok {
				goto step
			}
			a := c.R[s.r&15] >> s.rsh
			r := c.aluResult(s, a, b)
			if s.sub < aluCmp {
				c.setReg(s.r, s.rsh, s, r)
			}
			c.setLazy(s, a, b, r)
		case opAluMR:
			a := c.ea(in)
			v, ok := c.read(a, int(s.size))
			if !ok {
				goto step
			}
			b := c.R[s.r&15] >> s.rsh
			r := c.aluResult(s, v, b)
			if s.sub < aluCmp && !c.write(a, int(s.size), r) {
				goto step
			}
			c.setLazy(s, v, b, r)
		case opAluMI:
			a := c.ea(in)
			v, ok := c.read(a, int(s.size))
			if !ok {
				goto step
			}
			r := c.aluResult(s, v, s.imm)
			if s.sub < aluCmp && !c.write(a, int(s.size), r) {
				goto step
			}
			c.setLazy(s, v, s.imm, r)
		case opJcc: // SDM Vol. 2 Jcc
			// c.cond, inline: E and NE from lazy flags.
			var taken bool
			if s.sub&^1 == 4 && c.lf.kind != 0 {
				taken = (c.lf.r == 0) == (s.sub == 4)
			} else {
				taken = c.condSlow(s.sub)
			}
			if taken {
				c.RIP = s.target
				goto step
			}
		case opJmp: // SDM Vol. 2 JMP
			c.RIP = s.target
			goto step
		case opCall: // SDM Vol. 2 CALL
			if !c.push(next) {
				goto step
			}
			c.RIP = s.target
			goto step
		case opRet: // SDM Vol. 2 RET: pop RIP, then release imm16 bytes
			v, ok := c.pop()
			if !ok {
				goto step
			}
			if !canonical(v) {
				// SDM Vol. 2 RET, 64-Bit Mode Exceptions: #GP(0) if the
				// return address is non-canonical; a fault, so RSP is as
				// before the RET.
				c.R[RSP] -= 8
				c.setFault(VecGP, 0, true)
				goto step
			}
			c.R[RSP] += s.imm
			c.RIP = v
			goto step
		case opPushR: // SDM Vol. 2 PUSH: PUSH RSP pushes the old value
			if !c.push(c.R[s.r&15]) {
				goto step
			}
		case opPopR: // SDM Vol. 2 POP: POP RSP loads RSP with the popped value
			v, ok := c.pop()
			if !ok {
				goto step
			}
			c.R[s.r&15] = v
		default:
			if c.lf.kind != 0 && !coldPlain[s.op] {
				c.materialize() // execCold may read or write RFLAGS
			}
			c.execCold(in, next)
			goto step
		}
		c.RIP = next
	step:
		done++
		// An exit sets c.brk too (CPU.brk). exec's k is 1 (its dp is nil).
		if done == k || c.brk {
			break
		}
		off := c.RIP - dp.vpn<<pageShift
		if off >= pageSize {
			break // RIP left the page
		}
		nx := dp.insts[off]
		if nx == nil || nx.special {
			break
		}
		in = nx
	}
	if dp == nil && c.lf.kind != 0 {
		c.materialize() // exec's caller sees RFLAGS whole; fastSteps materializes itself
	}
	return done, in
}

// coldPlain marks the forms execCold runs that neither read nor write
// RFLAGS and change nothing else the step loop watches (CPU.brk): moves,
// exchanges, sign extensions, indirect jumps and calls, pushes and pops
// of values, LEAVE, MOVS, STOS and LODS. Lazy flags stay lazy across them
// and a run of common steps goes on after them.
var coldPlain = func() (t [256]bool) {
	for _, op := range []semOp{opMovzx, opMovsx, opXchg, opBswap, opCbw, opCwd,
		opJmpR, opJmpM, opCallR, opCallM, opPushI, opPushM, opPopM, opLeave,
		opMovs, opStos, opLods} {
		t[op] = true
	}
	return t
}()

// coldGoesOn marks the forms execCold runs after which a run of common
// steps goes on: the plain ones (coldPlain) and the ones whose only other
// effect is on the arithmetic flags of RFLAGS (and DF), computed eagerly
// after materializing the lazy ones: XADD CMPXCHG CMOVcc SETcc, INC DEC
// NEG NOT, MUL IMUL DIV IDIV, the shifts and rotates, SHLD SHRD, BT*,
// BSF BSR TZCNT LZCNT POPCNT. None of them changes TF, IF or anything else
// the step loop looks at between instructions, and none exits but by a
// fault (setFault, pageFault: brk); their loads and stores go through read
// and write, which set brk as for any other instruction (CPU.brk). What
// ends a run is unchanged; only where it ends moved: traced_fn's
// shifts, multiplies and per-CPU INC no longer return to fastRuns after
// each one.
var coldGoesOn = func() (t [256]bool) {
	t = coldPlain
	for _, op := range []semOp{opXadd, opCmpxchg, opCmov, opSetcc, opUnary,
		opMulDiv, opImul, opShift, opShxd, opBt, opBscan} {
		t[op] = true
	}
	return t
}()

// execCold executes the less frequent forms. Each family function returns
// true when the instruction completed and RIP should move to next; false
// when it faulted or set RIP itself.
func (c *CPU) execCold(in *inst, next uint64) {
	s := &in.sem
	var ok bool
	if !coldGoesOn[s.op] {
		c.brk = true // see CPU.brk
	}
	switch s.op {
	case opUD: // SDM Vol. 3 §6.15 "Interrupt 6—Invalid Opcode Exception (#UD)": a fault, no error code
		c.setFault(VecUD, 0, false)
	case opGP: // SDM Vol. 2 §2.3.11: longer than 15 bytes is #GP(0)
		c.setFault(VecGP, 0, true)
	case opMovzx, opMovsx:
		ok = c.execMovx(in)
	case opXchg:
		ok = c.execXchg(in)
	case opXadd:
		ok = c.execXadd(in)
	case opCmpxchg:
		ok = c.execCmpxchg(in)
	case opCmov:
		ok = c.execCmov(in)
	case opSetcc:
		ok = c.execSetcc(in)
	case opBswap:
		ok = c.execBswap(in)
	case opCbw, opCwd:
		ok = c.execCbw(in)
	case opUnary:
		ok = c.execUnary(in)
	case opMulDiv:
		ok = c.execMulDiv(in)
	case opImul:
		ok = c.execImul(in)
	case opShift:
		ok = c.execShift(in)
	case opShxd:
		ok = c.execShxd(in)
	case opBt:
		ok = c.execBt(in)
	case opBscan:
		ok = c.execBscan(in)
	case opJmpR, opJmpM, opCallR, opCallM, opJrcxz, opLoop:
		ok = c.execBranch(in, next)
	case opLret:
		ok = c.execLret(in)
	case opXlat, opCmpxchg8b, opIn, opOut:
		ok = c.execMoveRare(in)
	case opEnter, opPush16, opPop16:
		ok = c.execStack16(in)
	case opSoftInt:
		// SDM Vol. 2 INT n/INT1: a trap; the frame's RIP is the next
		// instruction's. Delivered like a fault (no error code).
		c.RIP = next
		c.setFault(Vector(s.imm), 0, false)
	case opPushI, opPushM, opPopM, opPushf, opPopf, opLeave:
		ok = c.execStack(in)
	case opMovs, opStos, opLods, opCmps, opScas, opIns, opOuts:
		ok = c.execString(in)
	case opInt3, opIretq, opSti, opCli, opHlt, opCpuid, opRdmsr, opWrmsr,
		opClc, opStc, opCmc, opCld, opStd, opSahf, opLahf,
		opMovToSS, opMovFromSS, opMovToDR, opMovFromDR, opInt1:
		ok = c.execSystem(in, next)
	default:
		// A semantics value exec does not know: only a decoder bug gets here.
		c.setFault(VecUD, 0, false)
	}
	if ok {
		c.RIP = next
	}
}

// ea computes the memory operand's address (SDM Vol. 1 §3.7.5: base +
// index*scale + displacement; RIP-relative from the next instruction; with
// the GS base added for a %gs: operand, §3.4.4).
func (c *CPU) ea(in *inst) uint64 {
	s := &in.sem
	a := uint64(s.disp)
	if s.mf&mBase != 0 {
		a += c.R[s.base&15]
	}
	if s.mf&mIndex != 0 {
		a += c.R[s.index&15] << (s.scale & 3)
	}
	if s.mf&(mRIP|mGS|mAddr32) != 0 {
		a = c.eaRare(in, a)
	}
	return a
}

func (c *CPU) eaRare(in *inst, a uint64) uint64 {
	s := &in.sem
	if s.mf&mRIP != 0 {
		a += c.RIP + uint64(in.len)
	}
	if s.mf&mAddr32 != 0 {
		a = uint64(uint32(a))
	}
	if s.mf&mGS != 0 {
		a += c.GSBase
	}
	return a
}

// setReg writes v to register idx at the operand size of s (SDM Vol. 1
// §3.4.1.1: a 32-bit result is zero-extended to 64 bits; 8- and 16-bit
// results leave the other bits unchanged). sh is 8 for AH/CH/DH/BH.
func (c *CPU) setReg(idx, sh uint8, s *semantics, v uint64) {
	i := idx & 15
	if s.size >= 4 {
		c.R[i] = v & s.mask
		return
	}
	m := s.mask << (sh & 63)
	c.R[i] = c.R[i]&^m | v<<(sh&63)&m
}

// loadRM reads the r/m operand at size bytes; addr is its address when it
// is memory.
func (c *CPU) loadRM(in *inst, size uint8) (v, addr uint64, ok bool) {
	s := &in.sem
	if s.mf&mMem != 0 {
		addr = c.ea(in)
		v, ok = c.read(addr, int(size))
		return v, addr, ok
	}
	return c.R[s.rm&15] >> (s.rmsh & 63) & sizeMask(size), 0, true
}

// storeRM writes the r/m operand at the instruction's operand size; addr
// comes from loadRM. For memory it may fault (and then changes nothing).
func (c *CPU) storeRM(in *inst, addr, v uint64) bool {
	s := &in.sem
	if s.mf&mMem != 0 {
		return c.write(addr, int(s.size), v)
	}
	c.setReg(s.rm, s.rmsh, s, v)
	return true
}

// sizeMask returns the mask of an operand of size bytes (1, 2, 4, 8).
func sizeMask(size uint8) uint64 { return ^uint64(0) >> (64 - 8*uint(size&15)) }

// signExtend sign-extends the low size bytes of v to 64 bits.
func signExtend(v uint64, size uint8) uint64 {
	sh := 64 - 8*uint(size&15)
	return uint64(int64(v<<sh) >> sh)
}

package emu

import "strings"

// Indirect and conditional-on-RCX control transfers. Direct JMP/CALL/Jcc
// and RET are inlined in exec.

// execBranch: SDM Vol. 2 JMP and CALL through a register or memory (the
// target is read before anything is pushed, so a fault on either leaves
// no trace), JrCXZ and LOOP/LOOPcc.
func (c *CPU) execBranch(in *inst, next uint64) bool {
	s := &in.sem
	var t uint64
	switch s.op {
	case opJmpR, opCallR:
		t = c.R[s.rm&15]
	case opJmpM, opCallM:
		v, ok := c.read(c.ea(in), 8)
		if !ok {
			return false
		}
		t = v
	case opJrcxz:
		// SDM Vol. 2 JrCXZ: JRCXZ tests RCX, JECXZ (0x67) ECX.
		if cx := c.R[RCX]; cx != 0 && (s.mf&mAddr32 == 0 || uint32(cx) != 0) {
			return true
		}
		t = s.target
	case opLoop:
		// SDM Vol. 2 LOOP/LOOPcc: the count (RCX, or ECX with 0x67) is
		// decremented without touching the flags, then LOOP branches while
		// it is not zero, LOOPE also needs ZF=1, LOOPNE ZF=0. Writing ECX
		// zero-extends into RCX like any 32-bit register write.
		cx := c.R[RCX] - 1
		if s.mf&mAddr32 != 0 {
			cx = uint64(uint32(cx))
		}
		taken := cx != 0
		switch s.sub {
		case 1:
			taken = taken && c.RFLAGS&FlagZF != 0
		case 2:
			taken = taken && c.RFLAGS&FlagZF == 0
		}
		c.R[RCX] = cx
		if !taken {
			return true
		}
		t = s.target
	}
	if !canonical(t) {
		// SDM Vol. 2 JMP and CALL, 64-Bit Mode Exceptions: #GP(0) if the
		// target offset is non-canonical, raised by the branch itself
		// (RIP at it, nothing pushed). Direct branches need no check: a
		// rel32 from canonical code reaches no non-canonical address
		// unless the code sits within 2 GiB of the hole, where no slice
		// is loaded.
		c.setFault(VecGP, 0, true)
		return false
	}
	if (s.op == opCallR || s.op == opCallM) && !c.push(next) {
		return false
	}
	c.RIP = t
	if c.ibt != 0 && s.op != opJrcxz && s.op != opLoop {
		c.ibtBranch(in)
	}
	return false
}

// execLret: SDM Vol. 2 RET (far), at CPL 0 in 64-bit mode: pop the return
// RIP and CS (slots of s.size bytes, zero-extended), check CS as IRET does
// (checkIretCS: null -> #GP(0), not a present code segment of DPL = RPL ->
// #GP/#NP(selector); RPL > 0 or a segment without L would leave CPL 0 or
// 64-bit mode, which the machine does not model), then a non-canonical
// RIP -> #GP(0); RSP then moves past the slots and imm16 bytes. All reads
// and checks come first, so a fault changes nothing.
func (c *CPU) execLret(in *inst) bool {
	s := &in.sem
	w := uint64(s.size)
	sp := c.R[RSP]
	rip, ok := c.read(sp, int(w))
	if !ok {
		c.stackFault()
		return false
	}
	cs, ok := c.read(sp+w, int(w))
	if !ok {
		c.stackFault()
		return false
	}
	f := checkIretCS(uint16(cs))
	if f == nil && !canonical(rip) {
		f = &selFault{vector: VecGP}
	}
	if f != nil {
		if f.unsupported != "" {
			c.exit, c.unsup = exitUnsupported, strings.Replace(f.unsupported, "IRETQ", "far RET", 1)
			return false
		}
		c.setFault(f.vector, f.errCode, true)
		return false
	}
	c.R[RSP] = sp + 2*w + s.imm
	c.RIP = rip
	return false
}

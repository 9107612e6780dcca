package emu

// Indirect and conditional-on-RCX control transfers. Direct JMP/CALL/Jcc
// and RET are inlined in exec.

// execBranch: SDM Vol. 2 JMP and CALL through a register or memory (the
// target is read before anything is pushed, so a fault on either leaves
// no trace), and JRCXZ.
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
		if c.R[RCX] != 0 {
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
	return false
}

package emu

// Stack instructions other than PUSH/POP of a register (inlined in exec).

// execStack: SDM Vol. 2 PUSH (imm: sign-extended to 64 bits; memory: the
// address is computed before RSP is decremented), POP to memory, PUSHFQ,
// POPFQ and LEAVE.
func (c *CPU) execStack(in *inst) bool {
	s := &in.sem
	switch s.op {
	case opPushI:
		return c.push(s.imm)
	case opPushM:
		v, ok := c.read(c.ea(in), 8)
		return ok && c.push(v)
	case opPopM:
		// SDM Vol. 2 POP: "If the ESP register is used as a base register
		// for addressing a destination operand in memory, the POP
		// instruction computes the effective address of the operand after
		// it increments the ESP register."
		sp := c.R[RSP]
		v, ok := c.read(sp, 8)
		if !ok {
			return false
		}
		c.R[RSP] = sp + 8
		a := c.ea(in)
		c.R[RSP] = sp
		if !c.write(a, 8, v) {
			return false
		}
		c.R[RSP] = sp + 8
	case opPushf:
		// PUSHFQ stores RFLAGS with VM and RF cleared; this machine has
		// neither.
		return c.push(c.RFLAGS)
	case opPopf:
		// At CPL 0 POPFQ may change every flag this machine models,
		// including IF, DF and TF (SDM Vol. 2 POPF, Table 4-15). Setting IF
		// this way opens no interrupt shadow (unlike STI).
		v, ok := c.pop()
		if !ok {
			return false
		}
		c.RFLAGS = c.RFLAGS&^flagsWritable | v&flagsWritable | flagRes1
	case opLeave:
		// SDM Vol. 2 LEAVE: RSP := RBP; RBP := pop.
		v, ok := c.read(c.R[RBP], 8)
		if !ok {
			return false
		}
		c.R[RSP] = c.R[RBP] + 8
		c.R[RBP] = v
	}
	return true
}

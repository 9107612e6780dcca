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
			c.stackFault()
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
			c.stackFault()
			return false
		}
		c.R[RSP] = c.R[RBP] + 8
		c.R[RBP] = v
	}
	return true
}

// execStack16 executes ENTER and the 16-bit PUSH/POP forms (0x66).
func (c *CPU) execStack16(in *inst) bool {
	s := &in.sem
	switch s.op {
	case opEnter:
		return c.execEnter(in)
	case opPush16:
		// SDM Vol. 2 PUSH/PUSHF with a 16-bit operand: RSP moves by 2.
		var v uint64
		switch s.sub {
		case push16Reg:
			v = c.R[s.r&15]
		case push16Mem:
			m, ok := c.read(c.ea(in), 2)
			if !ok {
				return false
			}
			v = m
		case push16Imm:
			v = s.imm
		case push16Flags:
			v = c.RFLAGS // FLAGS: the low 16 bits
		}
		sp := c.R[RSP] - 2
		if !c.write(sp, 2, v) {
			c.stackFault()
			return false
		}
		c.R[RSP] = sp
	case opPop16:
		sp := c.R[RSP]
		v, ok := c.read(sp, 2)
		if !ok {
			c.stackFault()
			return false
		}
		switch s.sub {
		case push16Reg:
			c.setReg(s.r, 0, s, v)
		case push16Mem:
			// As POP m64: the address is computed with RSP incremented.
			c.R[RSP] = sp + 2
			a := c.ea(in)
			c.R[RSP] = sp
			if !c.write(a, 2, v) {
				return false
			}
		case push16Flags:
			// SDM Vol. 2 POPF (16-bit): the low 16 bits of RFLAGS, the
			// writable ones at CPL 0 (Table 4-15).
			const m = flagsWritable & 0xffff
			c.RFLAGS = c.RFLAGS&^m | v&m | flagRes1
		}
		c.R[RSP] = sp + 2
	}
	return true
}

// execEnter: SDM Vol. 2 ENTER in 64-bit mode (operand size 64):
//
//	Push(RBP); FrameTemp := RSP
//	FOR i := 1 TO NestingLevel-1: RBP := RBP - 8; Push([RBP])
//	IF NestingLevel > 0: Push(FrameTemp)
//	RBP := FrameTemp; RSP := RSP - Size
//
// The enclosing frame pointers are read first, and every stack slot (and
// the final RSP, which the SDM says is probed with a write) is checked
// before the first store, so a fault leaves no trace.
func (c *CPU) execEnter(in *inst) bool {
	s := &in.sem
	level := int(s.ssize)
	rbp, rsp := c.R[RBP], c.R[RSP]
	frame := rsp - 8
	var buf [33]uint64
	vals := append(buf[:0], rbp)
	if level > 0 {
		for i := 1; i < level; i++ {
			v, ok := c.read(rbp-8*uint64(i), 8)
			if !ok {
				c.stackFault()
				return false
			}
			vals = append(vals, v)
		}
		vals = append(vals, frame)
	}
	low := rsp - 8*uint64(len(vals))
	final := low - s.imm
	if !c.probeWrite(low, 8*len(vals)) || !c.probeWrite(final, 1) {
		c.stackFault()
		return false
	}
	for i, v := range vals {
		c.write(rsp-8*uint64(i+1), 8, v)
	}
	c.R[RBP] = frame
	c.R[RSP] = final
	return true
}

// probeWrite reports whether n bytes (n <= one page) at addr can be
// stored; if not it raises the fault a store would, storing nothing.
func (c *CPU) probeWrite(addr uint64, n int) bool {
	for _, a := range [2]uint64{addr, addr + uint64(n) - 1} {
		p := c.lookup(a >> pageShift)
		if !canonical(a) || p == nil || p.perm&PermW == 0 {
			c.pageFault(a, AccessWrite, canonical(a) && p != nil)
			return false
		}
	}
	return true
}

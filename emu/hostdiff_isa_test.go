package emu

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/patchtrace/patchtrace/emu/internal/hostexec"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// Differential tests: every supported ALU, shift, rotate, SETcc, CMOVcc,
// Jcc, multiply, divide, bit and exchange form is run, at every operand
// size, with REX and high-byte register variants and register or memory
// operands, from random register and flag states, on the emulator and on
// the host CPU (emu/internal/hostexec). All sixteen registers but RSP (which
// the harness preserves), the scratch page, and RFLAGS (CF PF AF ZF SF OF
// DF, less what the SDM leaves undefined for the instruction and count) must
// agree. Encodings are built by diffEnc below, not by an assembler.
//
// Tiers: -short runs a few cases per form; the default a few hundred;
// -long thousands. TEST_SEED fixes the random source; the seed is logged.

var longTests = flag.Bool("long", false, "run the long tier of randomized tests")

// diffEnc encodes one instruction (SDM Vol. 2 §2.1: legacy prefixes, REX,
// opcode, ModRM, SIB, displacement, immediate).
//
//	ModRM  7 6 | 5 4 3 | 2 1 0      SIB  7 6  | 5 4 3 | 2 1 0
//	       mod |  reg  |  r/m            scale| index | base
//	REX    0100 W R X B: W = 64-bit operand, R/X/B extend reg/index/base(rm)
type diffEnc struct {
	lock  bool
	p66   bool
	pfx   []byte // mandatory prefixes (F3 for TZCNT...), before REX
	rexW  bool
	rex   bool // emit a REX byte even if W=R=X=B=0
	op    []byte
	opreg int // -1, or a register encoded in the low 3 bits of the last opcode byte
	modrm bool
	reg   int // ModRM.reg: a register number or a /digit
	rm    diffRM
	imm   []byte
}

type diffRM struct {
	mem   bool
	reg   int // register operand (when !mem)
	base  int
	index int // -1: none
	scale int // log2
	disp  int32
	dsize int // displacement bytes: 0, 1, 4
}

func (e *diffEnc) bytes() []byte {
	var b []byte
	if e.lock {
		b = append(b, 0xf0)
	}
	if e.p66 {
		b = append(b, 0x66)
	}
	b = append(b, e.pfx...)
	rex := byte(0x40)
	if e.rexW {
		rex |= 8
	}
	if e.modrm {
		if e.reg&8 != 0 {
			rex |= 4
		}
		if e.rm.mem {
			if e.rm.index >= 0 && e.rm.index&8 != 0 {
				rex |= 2
			}
			if e.rm.base&8 != 0 {
				rex |= 1
			}
		} else if e.rm.reg&8 != 0 {
			rex |= 1
		}
	}
	op := append([]byte(nil), e.op...)
	if e.opreg >= 0 {
		op[len(op)-1] |= byte(e.opreg & 7)
		if e.opreg&8 != 0 {
			rex |= 1
		}
	}
	if rex != 0x40 || e.rex {
		b = append(b, rex)
	}
	b = append(b, op...)
	if e.modrm {
		reg := byte(e.reg&7) << 3
		if !e.rm.mem {
			b = append(b, 0xc0|reg|byte(e.rm.reg&7))
		} else {
			var mod byte
			switch e.rm.dsize {
			case 1:
				mod = 1
			case 4:
				mod = 2
			}
			if e.rm.index >= 0 || e.rm.base&7 == 4 {
				idx := byte(4)
				if e.rm.index >= 0 {
					idx = byte(e.rm.index & 7)
				}
				b = append(b, mod<<6|reg|4, byte(e.rm.scale)<<6|idx<<3|byte(e.rm.base&7))
			} else {
				b = append(b, mod<<6|reg|byte(e.rm.base&7))
			}
			switch e.rm.dsize {
			case 1:
				b = append(b, byte(e.rm.disp))
			case 4:
				b = appendLE(b, 4, uint64(uint32(e.rm.disp)))
			}
		}
	}
	return append(b, e.imm...)
}

func appendLE(b []byte, n int, v uint64) []byte {
	for i := 0; i < n; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// diffSpec describes an instruction form for the generator.
type diffSpec struct {
	name             string
	sizes            []int  // operand sizes (bytes) to test
	pfx              []byte // mandatory prefix
	op8              []byte // opcode for 8-bit operands
	opv              []byte // opcode for 16/32/64-bit operands
	digit            int    // ModRM.reg /digit, or -1 for a register operand
	rmSize           int    // size of the r/m operand if fixed (MOVZX/MOVSX source, SETcc)
	noRM             bool   // no ModRM (accumulator forms, opcode+reg forms)
	opreg            bool   // register in the opcode's low bits
	regOnly, memOnly bool
	imm              int  // immediate bytes: 0, 1, or -1 for 2 (16-bit) / 4 bytes
	lock             bool // may take LOCK with a memory destination
	count            int  // shifts: 0 none, 1 the constant 1, 2 CL, 3 imm8
	implicit         []int
	// encSetup adjusts the encoding; setup adjusts the input state (e.g.
	// bounds a bit offset).
	encSetup func(g *diffGen, c *diffCase)
	setup    func(g *diffGen, c *diffCase)
}

// diffCase is one generated instruction and input state.
type diffCase struct {
	spec   *diffSpec
	size   int
	enc    diffEnc
	code   []byte
	in     ArchState
	mem    []byte
	count  uint64 // shift count operand (CL or imm8)
	legacy bool   // no REX: 8-bit registers 4-7 are AH..BH
}

type diffGen struct {
	r           *rand.Rand
	scratchAddr uint64
	legacy8     bool // 8-bit registers 4-7 are AH..BH (no REX)
}

// edge returns a value whose low size bytes are an edge case or random and
// whose upper bytes are random garbage (which 8/16-bit operations must keep
// and 32-bit writes must clear).
func (g *diffGen) edge(size int) uint64 {
	m := sizeMask(uint8(size))
	sign := uint64(1) << (8*size - 1)
	var low uint64
	switch g.r.IntN(12) {
	case 0:
		low = 0
	case 1:
		low = 1
	case 2:
		low = m
	case 3:
		low = sign
	case 4:
		low = sign - 1
	case 5:
		low = uint64(g.r.IntN(17))
	case 6:
		low = -uint64(g.r.IntN(17))
	case 7:
		low = sign + uint64(g.r.IntN(5)) - 2
	case 8:
		low = 0x0f + uint64(g.r.IntN(3)) // AF boundaries
	default:
		low = g.r.Uint64()
	}
	garbage := g.r.Uint64()
	if g.r.IntN(4) == 0 {
		garbage = 0
	}
	return garbage&^m | low&m
}

// pickReg returns a register number for an operand of size bytes: never
// RSP (the harness owns it), and for 8-bit operands in legacy mode 4-7 are
// AH..BH.
func (g *diffGen) pickReg(size int, avoid []int) int {
	for {
		var r int
		if g.legacy8 {
			r = g.r.IntN(8)
		} else {
			r = g.r.IntN(16)
		}
		if r == RSP && !(size == 1 && g.legacy8) {
			continue
		}
		if contains(avoid, r) {
			continue
		}
		return r
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// regFull is the 64-bit register an operand register number names.
func (g *diffGen) regFull(num, size int) int {
	if size == 1 && g.legacy8 && num >= 4 && num < 8 {
		return num - 4
	}
	return num
}

// newCase builds a random instance of spec at size.
func (g *diffGen) newCase(spec *diffSpec, size int) *diffCase {
	c := &diffCase{spec: spec, size: size}
	rmSize := size
	if spec.rmSize != 0 {
		rmSize = spec.rmSize
	}
	// High-byte registers exist only without REX, so not with REX.W.
	has8 := size == 1 || rmSize == 1
	g.legacy8 = has8 && size != 8 && g.r.IntN(2) == 0
	c.legacy = g.legacy8
	e := &c.enc
	e.opreg = -1
	e.p66 = size == 2
	e.rexW = size == 8
	// Without the legacy mode, an 8-bit operand always gets a REX so that
	// registers 4-7 are SPL..DIL; otherwise add an empty REX now and then.
	e.rex = !g.legacy8 && (has8 || g.r.IntN(4) == 0)
	e.pfx = spec.pfx
	if size == 1 && spec.op8 != nil {
		e.op = spec.op8
	} else {
		e.op = spec.opv
	}
	used := append([]int(nil), spec.implicit...)
	if spec.opreg {
		e.opreg = g.pickReg(size, nil)
		used = append(used, g.regFull(e.opreg, size))
	}
	if !spec.noRM {
		e.modrm = true
		if spec.digit >= 0 {
			e.reg = spec.digit
		} else {
			e.reg = g.pickReg(size, nil)
			used = append(used, g.regFull(e.reg, size))
		}
		mem := g.r.IntN(2) == 0
		if spec.regOnly {
			mem = false
		}
		if spec.memOnly {
			mem = true
		}
		if mem {
			e.rm = g.memOperand(used)
			e.lock = spec.lock && g.r.IntN(2) == 0
		} else {
			e.rm = diffRM{reg: g.pickReg(rmSize, nil), index: -1}
		}
	}
	immBytes := func() int {
		switch size {
		case 1:
			return 1
		case 2:
			return 2
		}
		return 4
	}
	switch spec.imm {
	case 1:
		e.imm = appendLE(nil, 1, g.edge(1))
	case -1:
		n := immBytes()
		e.imm = appendLE(nil, n, g.edge(n))
	}
	if spec.count == 3 {
		e.imm = []byte{g.count(size)}
	}
	if spec.encSetup != nil {
		spec.encSetup(g, c)
	}
	c.code = e.bytes()
	g.fillState(c)
	return c
}

// fillState gives c (whose encoding is set) a fresh random input state.
func (g *diffGen) fillState(c *diffCase) {
	spec, e := c.spec, &c.enc
	rmSize := c.size
	if spec.rmSize != 0 {
		rmSize = spec.rmSize
	}
	c.mem = make([]byte, pageSize)
	for i := 0; i < len(c.mem); i += 8 {
		putLE(c.mem[i:], 8, g.r.Uint64())
	}
	// Registers: edge values everywhere, then the address registers.
	for r := range 16 {
		c.in.R[r] = g.edge(c.size)
		if g.r.IntN(3) == 0 {
			c.in.R[r] = g.edge(rmSize)
		}
	}
	if spec.count == 2 {
		c.in.R[RCX] = c.in.R[RCX]&^0xff | uint64(g.count(c.size))
	}
	c.in.RFLAGS = g.r.Uint64()&(FlagsArith|FlagDF) | flagRes1
	if e.modrm && e.rm.mem {
		g.placeMem(c)
	}
	if spec.setup != nil {
		spec.setup(g, c)
	}
	switch spec.count {
	case 1:
		c.count = 1
	case 2:
		c.count = c.in.R[RCX] & 0xff
	case 3:
		c.count = uint64(e.imm[0])
	}
}

// count returns a shift count around the interesting values.
func (g *diffGen) count(size int) byte {
	bits := 8 * size
	cs := []int{0, 1, 2, bits - 1, bits, bits + 1, 31, 32, 33, 63, 64, 65, 9, 17, 255, 0x80}
	if g.r.IntN(4) == 0 {
		return byte(g.r.IntN(256))
	}
	return byte(cs[g.r.IntN(len(cs))])
}

// memOperand picks base/index/scale/disp registers not in avoid.
func (g *diffGen) memOperand(avoid []int) diffRM {
	m := diffRM{mem: true, index: -1}
	pick := func() int {
		for {
			r := g.r.IntN(16)
			if g.legacy8 {
				r = g.r.IntN(8)
			}
			if r != RSP && !contains(avoid, r) {
				return r
			}
		}
	}
	m.base = pick()
	if g.r.IntN(3) == 0 {
		for {
			m.index = pick()
			if m.index != m.base {
				break
			}
		}
		m.scale = g.r.IntN(4)
	}
	switch g.r.IntN(3) {
	case 0:
		if m.base&7 != 5 { // RBP/R13 as base need a displacement
			m.dsize = 0
			break
		}
		fallthrough
	case 1:
		m.dsize, m.disp = 1, int32(int8(g.r.IntN(256)))
	default:
		m.dsize, m.disp = 4, int32(g.r.IntN(1<<16))-1<<15
	}
	return m
}

// placeMem sets the address registers so the operand lands well inside the
// scratch page.
func (g *diffGen) placeMem(c *diffCase) {
	m := &c.enc.rm
	target := g.scratchAddr + 128 + uint64(g.r.IntN(pageSize-256))
	var idx uint64
	if m.index >= 0 {
		idx = uint64(g.r.IntN(64))
		c.in.R[m.index] = idx
	}
	c.in.R[m.base] = target - idx<<m.scale - uint64(int64(m.disp))
}

// memTarget is the memory operand's address in c.
func (c *diffCase) memTarget() uint64 {
	m := &c.enc.rm
	a := c.in.R[m.base] + uint64(int64(m.disp))
	if m.index >= 0 {
		a += c.in.R[m.index] << m.scale
	}
	return a
}

// diffMismatch is a known, explained difference between the emulator and
// the host: the SDM leaves a result undefined and the test cannot mask it
// by flags alone.
type diffMismatch struct {
	reason string
	// regs returns the registers whose value may differ in c, or 0;
	// mem whether the memory operand may.
	regs func(c *diffCase, in *inst) (regs uint16, mem bool)
}

var diffMismatches = []diffMismatch{
	{
		reason: "SDM BSF/BSR: with a zero source the destination is undefined; AMD leaves it unchanged " +
			"(as the emulator does), Intel clears bits 63:32 of a 32-bit destination " +
			"(Linux arch/x86/include/asm/bitops.h, ffs())",
		regs: func(c *diffCase, in *inst) (uint16, bool) {
			s := &in.sem
			if s.op != opBscan || (s.sub != scBsf && s.sub != scBsr) {
				return 0, false
			}
			if c.rmValue() == 0 {
				return 1 << s.r, false
			}
			return 0, false
		},
	},
	{
		reason: "SDM SHLD/SHRD: with a count above the operand width (16-bit operands) the destination is undefined",
		regs: func(c *diffCase, in *inst) (uint16, bool) {
			if in.sem.op == opShxd && in.sem.size == 2 && c.count&31 > 16 {
				if in.sem.mf&mMem != 0 {
					return 0, true
				}
				return 1 << in.sem.rm, false
			}
			return 0, false
		},
	},
}

// runDiff executes c on the emulator and the host and reports differences.
func runDiff(t *testing.T, g *diffGen, c *diffCase, hostMem []byte) bool {
	t.Helper()
	in, err := decodeInst(c.code, snippetCodeBase)
	if err != nil {
		t.Errorf("% x: %v", c.code, err)
		return false
	}
	undef := undefinedFlagsCount(in, c.count)
	if c.spec != nil && int(in.len) != len(c.code) {
		t.Errorf("% x: decoded length %d", c.code, in.len)
		return false
	}
	for off := int(in.len); off < len(c.code); {
		x, err := decodeInst(c.code[off:], snippetCodeBase+uint64(off))
		if err != nil {
			t.Errorf("% x at +%d: %v", c.code, off, err)
			return false
		}
		undef |= undefinedFlags(x.sem.op, x)
		off += int(x.len)
	}
	desc := fmt.Sprintf("% x (%s)", c.code, gnu(c.code))
	emuMem := append([]byte(nil), c.mem...)
	got, err := execSnippet(t, c.code, c.in, g.scratchAddr, emuMem)
	if de := wantDivideError(in, c); de {
		var f *snippetFault
		if !errors.As(err, &f) || f.Info.vector != VecDE {
			t.Errorf("%s: want #DE (the host would fault), got %v", desc, err)
			return false
		}
		return true // the host cannot run a faulting snippet
	}
	if err != nil {
		t.Errorf("%s: emulator: %v\nin:  %s", desc, err, fmtState(c.in))
		return false
	}
	hs := hostexec.State{R: c.in.R, RFLAGS: c.in.RFLAGS}
	copy(hostMem, c.mem)
	if err := hostexec.Run(c.code, &hs); err != nil {
		t.Fatalf("%s: host: %v", desc, err)
	}
	fmask := (FlagsArith | FlagDF) &^ undef
	var skipRegs uint16 = 1 << RSP
	skipMem := false
	for _, km := range diffMismatches {
		if r, m := km.regs(c, in); r != 0 || m {
			skipRegs |= r
			skipMem = skipMem || m
		}
	}
	var diffs []string
	for r := range 16 {
		if skipRegs&(1<<r) != 0 {
			continue
		}
		if got.R[r] != hs.R[r] {
			diffs = append(diffs, fmt.Sprintf("%s emu %#x host %#x", goldenRegOrder[r], got.R[r], hs.R[r]))
		}
	}
	if (got.RFLAGS^hs.RFLAGS)&fmask != 0 {
		diffs = append(diffs, fmt.Sprintf("rflags emu %#x host %#x (diff %#x, undefined %#x)", got.RFLAGS, hs.RFLAGS, (got.RFLAGS^hs.RFLAGS)&fmask, undef))
	}
	if !skipMem && !bytes.Equal(emuMem, hostMem) {
		for i := range emuMem {
			if emuMem[i] != hostMem[i] {
				diffs = append(diffs, fmt.Sprintf("scratch[%#x] emu %#x host %#x", i, emuMem[i], hostMem[i]))
				break
			}
		}
	}
	if len(diffs) != 0 {
		t.Errorf("%s:\n  in:  %s\n  %s", desc, fmtState(c.in), strings.Join(diffs, "\n  "))
		return false
	}
	return true
}

// wantDivideError predicts #DE for DIV/IDIV independently of the
// emulator's implementation, with big integers (SDM Vol. 2 DIV/IDIV).
func wantDivideError(in *inst, c *diffCase) bool {
	s := &in.sem
	if s.op != opMulDiv || s.sub < mdDiv {
		return false
	}
	var src uint64
	if s.mf&mMem != 0 {
		src = getLE(c.mem[c.memTarget()-snippetScratch(c):], int(s.size))
	} else {
		src = c.in.R[s.rm] >> s.rmsh & s.mask
	}
	bitsN := uint(s.size) * 8
	var hi, lo uint64
	if s.size == 1 {
		hi, lo = c.in.R[RAX]>>8&0xff, c.in.R[RAX]&0xff
	} else {
		hi, lo = c.in.R[RDX]&s.mask, c.in.R[RAX]&s.mask
	}
	n := new(big.Int).Lsh(new(big.Int).SetUint64(hi), bitsN)
	n.Or(n, new(big.Int).SetUint64(lo))
	d := new(big.Int).SetUint64(src)
	if s.sub == mdIdiv {
		if hi>>(bitsN-1)&1 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), 2*bitsN))
		}
		if src>>(bitsN-1)&1 != 0 {
			d.Sub(d, new(big.Int).Lsh(big.NewInt(1), bitsN))
		}
	}
	if d.Sign() == 0 {
		return true
	}
	q := new(big.Int).Quo(n, d) // truncates toward zero, as IDIV
	if s.sub == mdDiv {
		return q.Cmp(new(big.Int).Lsh(big.NewInt(1), bitsN)) >= 0
	}
	lim := new(big.Int).Lsh(big.NewInt(1), bitsN-1)
	return q.Cmp(lim) >= 0 || q.Cmp(new(big.Int).Neg(lim)) < 0
}

// snippetScratch is set per test run: the scratch page address.
var diffScratchAddr uint64

func snippetScratch(*diffCase) uint64 { return diffScratchAddr }

func gnu(code []byte) string {
	x, err := x86asm.Decode(code, 64)
	if err != nil {
		return "?"
	}
	return x86asm.GNUSyntax(x, 0, nil)
}

func fmtState(s ArchState) string {
	var b strings.Builder
	for r := range 16 {
		if r == RSP {
			continue
		}
		fmt.Fprintf(&b, "%s=%#x ", goldenRegOrder[r], s.R[r])
	}
	fmt.Fprintf(&b, "fl=%#x", s.RFLAGS)
	return b.String()
}

// diffSpecs lists the forms under differential test.
func diffSpecs() []*diffSpec {
	all := []int{1, 2, 4, 8}
	wide := []int{2, 4, 8}
	var specs []*diffSpec
	add := func(s *diffSpec) { specs = append(specs, s) }

	aluNames := []string{"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"}
	for k, n := range aluNames {
		o := byte(8 * k)
		lock := n != "cmp"
		add(&diffSpec{name: n + " rm,r", sizes: all, op8: []byte{o}, opv: []byte{o + 1}, digit: -1, lock: lock})
		add(&diffSpec{name: n + " r,rm", sizes: all, op8: []byte{o + 2}, opv: []byte{o + 3}, digit: -1})
		add(&diffSpec{name: n + " acc,imm", sizes: all, op8: []byte{o + 4}, opv: []byte{o + 5}, noRM: true, imm: -1, implicit: []int{RAX}})
		add(&diffSpec{name: n + " rm,imm", sizes: all, op8: []byte{0x80}, opv: []byte{0x81}, digit: k, imm: -1, lock: lock})
		add(&diffSpec{name: n + " rm,imm8", sizes: wide, opv: []byte{0x83}, digit: k, imm: 1, lock: lock})
	}
	add(&diffSpec{name: "test rm,r", sizes: all, op8: []byte{0x84}, opv: []byte{0x85}, digit: -1})
	add(&diffSpec{name: "test acc,imm", sizes: all, op8: []byte{0xa8}, opv: []byte{0xa9}, noRM: true, imm: -1, implicit: []int{RAX}})
	add(&diffSpec{name: "test rm,imm", sizes: all, op8: []byte{0xf6}, opv: []byte{0xf7}, digit: 0, imm: -1})
	add(&diffSpec{name: "test/1 rm,imm", sizes: all, op8: []byte{0xf6}, opv: []byte{0xf7}, digit: 1, imm: -1})

	add(&diffSpec{name: "mov rm,r", sizes: all, op8: []byte{0x88}, opv: []byte{0x89}, digit: -1})
	add(&diffSpec{name: "mov r,rm", sizes: all, op8: []byte{0x8a}, opv: []byte{0x8b}, digit: -1})
	add(&diffSpec{name: "mov rm,imm", sizes: all, op8: []byte{0xc6}, opv: []byte{0xc7}, digit: 0, imm: -1})
	add(&diffSpec{name: "mov r,imm", sizes: []int{1, 2, 4}, op8: []byte{0xb0}, opv: []byte{0xb8}, noRM: true, opreg: true, imm: -1})
	add(&diffSpec{name: "movabs r,imm64", sizes: []int{8}, opv: []byte{0xb8}, noRM: true, opreg: true,
		encSetup: func(g *diffGen, c *diffCase) { c.enc.imm = appendLE(nil, 8, g.edge(8)) }})
	add(&diffSpec{name: "lea r,m", sizes: wide, opv: []byte{0x8d}, digit: -1, memOnly: true})
	add(&diffSpec{name: "movzx r,rm8", sizes: wide, opv: []byte{0x0f, 0xb6}, digit: -1, rmSize: 1})
	add(&diffSpec{name: "movzx r,rm16", sizes: []int{4, 8}, opv: []byte{0x0f, 0xb7}, digit: -1, rmSize: 2})
	add(&diffSpec{name: "movsx r,rm8", sizes: wide, opv: []byte{0x0f, 0xbe}, digit: -1, rmSize: 1})
	add(&diffSpec{name: "movsx r,rm16", sizes: []int{4, 8}, opv: []byte{0x0f, 0xbf}, digit: -1, rmSize: 2})
	add(&diffSpec{name: "movsxd r,rm32", sizes: []int{8}, opv: []byte{0x63}, digit: -1, rmSize: 4})
	add(&diffSpec{name: "xchg rm,r", sizes: all, op8: []byte{0x86}, opv: []byte{0x87}, digit: -1, lock: true})
	add(&diffSpec{name: "xchg acc,r", sizes: wide, opv: []byte{0x90}, noRM: true, opreg: true, implicit: []int{RAX},
		encSetup: func(g *diffGen, c *diffCase) {
			if c.enc.opreg == 0 {
				c.enc.opreg = 8 // 90 is NOP, not XCHG EAX,EAX; use r8
			}
		}})
	add(&diffSpec{name: "xadd rm,r", sizes: all, op8: []byte{0x0f, 0xc0}, opv: []byte{0x0f, 0xc1}, digit: -1, lock: true})
	add(&diffSpec{name: "cmpxchg rm,r", sizes: all, op8: []byte{0x0f, 0xb0}, opv: []byte{0x0f, 0xb1}, digit: -1, lock: true, implicit: []int{RAX},
		setup: func(g *diffGen, c *diffCase) {
			// Make the comparison succeed half the time.
			if g.r.IntN(2) == 0 {
				c.in.R[RAX] = c.rmValue()
			}
		}})
	add(&diffSpec{name: "bswap r", sizes: []int{4, 8}, opv: []byte{0x0f, 0xc8}, noRM: true, opreg: true})
	add(&diffSpec{name: "cbw/cwde/cdqe", sizes: wide, opv: []byte{0x98}, noRM: true, implicit: []int{RAX}})
	add(&diffSpec{name: "cwd/cdq/cqo", sizes: wide, opv: []byte{0x99}, noRM: true, implicit: []int{RAX, RDX}})

	for k, n := range []string{"inc", "dec"} {
		add(&diffSpec{name: n + " rm", sizes: all, op8: []byte{0xfe}, opv: []byte{0xff}, digit: k, lock: true})
	}
	for k, n := range []string{2: "not", 3: "neg", 4: "mul", 5: "imul", 6: "div", 7: "idiv"} {
		if n == "" {
			continue
		}
		s := &diffSpec{name: n + " rm", sizes: all, op8: []byte{0xf6}, opv: []byte{0xf7}, digit: k, lock: k < 4}
		if k >= 4 {
			s.implicit = []int{RAX, RDX}
		}
		add(s)
	}
	add(&diffSpec{name: "imul r,rm", sizes: wide, opv: []byte{0x0f, 0xaf}, digit: -1})
	add(&diffSpec{name: "imul r,rm,imm8", sizes: wide, opv: []byte{0x6b}, digit: -1, imm: 1})
	add(&diffSpec{name: "imul r,rm,imm", sizes: wide, opv: []byte{0x69}, digit: -1, imm: -1})

	// /6 is an undocumented alias of SHL (decode.go rewriteAlias).
	shiftNames := []string{"rol", "ror", "rcl", "rcr", "shl", "shr", "sal/6", "sar"}
	for k, n := range shiftNames {
		if n == "" {
			continue
		}
		add(&diffSpec{name: n + " rm,1", sizes: all, op8: []byte{0xd0}, opv: []byte{0xd1}, digit: k, count: 1})
		add(&diffSpec{name: n + " rm,cl", sizes: all, op8: []byte{0xd2}, opv: []byte{0xd3}, digit: k, count: 2, implicit: []int{RCX}})
		add(&diffSpec{name: n + " rm,imm8", sizes: all, op8: []byte{0xc0}, opv: []byte{0xc1}, digit: k, count: 3})
	}
	add(&diffSpec{name: "shld rm,r,imm8", sizes: wide, opv: []byte{0x0f, 0xa4}, digit: -1, count: 3})
	add(&diffSpec{name: "shld rm,r,cl", sizes: wide, opv: []byte{0x0f, 0xa5}, digit: -1, count: 2, implicit: []int{RCX}})
	add(&diffSpec{name: "shrd rm,r,imm8", sizes: wide, opv: []byte{0x0f, 0xac}, digit: -1, count: 3})
	add(&diffSpec{name: "shrd rm,r,cl", sizes: wide, opv: []byte{0x0f, 0xad}, digit: -1, count: 2, implicit: []int{RCX}})

	btNames := []string{"bt", "bts", "btr", "btc"}
	for k, n := range btNames {
		add(&diffSpec{name: n + " rm,r", sizes: wide, opv: []byte{0x0f, 0xa3 + 8*byte(k)}, digit: -1, lock: k > 0,
			setup: func(g *diffGen, c *diffCase) {
				if c.enc.rm.mem {
					// A register bit offset addresses memory outside the
					// operand: keep it within +-512 bits of the scratch
					// operand (SDM Vol. 1 §3.6.1).
					r := c.enc.reg
					c.in.R[r] = c.in.R[r]&^c.maskOf() | uint64(g.r.IntN(1024)-512)&c.maskOf()
				}
			}})
		add(&diffSpec{name: n + " rm,imm8", sizes: wide, opv: []byte{0x0f, 0xba}, digit: 4 + k, imm: 1, lock: k > 0})
	}
	add(&diffSpec{name: "bsf r,rm", sizes: wide, opv: []byte{0x0f, 0xbc}, digit: -1})
	add(&diffSpec{name: "bsr r,rm", sizes: wide, opv: []byte{0x0f, 0xbd}, digit: -1})
	add(&diffSpec{name: "tzcnt r,rm", sizes: wide, pfx: []byte{0xf3}, opv: []byte{0x0f, 0xbc}, digit: -1})
	add(&diffSpec{name: "lzcnt r,rm", sizes: wide, pfx: []byte{0xf3}, opv: []byte{0x0f, 0xbd}, digit: -1})
	add(&diffSpec{name: "popcnt r,rm", sizes: wide, pfx: []byte{0xf3}, opv: []byte{0x0f, 0xb8}, digit: -1})

	for cc := range 16 {
		add(&diffSpec{name: fmt.Sprintf("set%s rm8", ccNames[cc]), sizes: []int{1}, op8: []byte{0x0f, 0x90 + byte(cc)}, digit: 0, rmSize: 1})
		add(&diffSpec{name: fmt.Sprintf("cmov%s r,rm", ccNames[cc]), sizes: wide, opv: []byte{0x0f, 0x40 + byte(cc)}, digit: -1})
	}
	add(&diffSpec{name: "xlat", sizes: []int{1}, op8: []byte{0xd7}, noRM: true, implicit: []int{RAX, RBX},
		setup: func(g *diffGen, c *diffCase) {
			c.in.R[RBX] = g.scratchAddr + uint64(g.r.IntN(pageSize-256))
		}})
	add(&diffSpec{name: "cmpxchg8b m64", sizes: []int{4}, opv: []byte{0x0f, 0xc7}, digit: 1, memOnly: true, lock: true,
		implicit: []int{RAX, RBX, RCX, RDX},
		setup: func(g *diffGen, c *diffCase) {
			if g.r.IntN(2) == 0 {
				v := getLE(c.mem[c.memTarget()-g.scratchAddr:], 8)
				c.in.R[RAX] = c.in.R[RAX]&^0xffffffff | v&0xffffffff
				c.in.R[RDX] = c.in.R[RDX]&^0xffffffff | v>>32
			}
		}})
	add(&diffSpec{name: "cmpxchg16b m128", sizes: []int{8}, opv: []byte{0x0f, 0xc7}, digit: 1, memOnly: true, lock: true,
		implicit: []int{RAX, RBX, RCX, RDX},
		setup: func(g *diffGen, c *diffCase) {
			// 16-byte aligned (else #GP, which the host cannot take).
			c.in.R[c.enc.rm.base] -= c.memTarget() & 15
			if g.r.IntN(2) == 0 {
				off := c.memTarget() - g.scratchAddr
				c.in.R[RAX], c.in.R[RDX] = getLE(c.mem[off:], 8), getLE(c.mem[off+8:], 8)
			}
		}})
	add(&diffSpec{name: "lahf", sizes: []int{4}, opv: []byte{0x9f}, noRM: true})
	add(&diffSpec{name: "sahf", sizes: []int{4}, opv: []byte{0x9e}, noRM: true})
	add(&diffSpec{name: "clc", sizes: []int{4}, opv: []byte{0xf8}, noRM: true})
	add(&diffSpec{name: "stc", sizes: []int{4}, opv: []byte{0xf9}, noRM: true})
	add(&diffSpec{name: "cmc", sizes: []int{4}, opv: []byte{0xf5}, noRM: true})
	return specs
}

var ccNames = [16]string{"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}

func (c *diffCase) maskOf() uint64 { return sizeMask(uint8(c.size)) }

// rmValue is the r/m operand's input value (for CMPXCHG's accumulator).
func (c *diffCase) rmValue() uint64 {
	rmSize := c.size
	if c.enc.rm.mem {
		off := c.memTarget() - diffScratchAddr
		return getLE(c.mem[off:], rmSize)
	}
	r := c.enc.rm.reg
	if rmSize == 1 && c.legacy && r >= 4 && r < 8 {
		return c.in.R[r-4] >> 8 & 0xff
	}
	return c.in.R[r] & sizeMask(uint8(rmSize))
}

func diffCasesPerForm() int {
	switch {
	case testing.Short():
		return 4
	case *longTests:
		return 2500
	}
	return 60
}

func hostOrSkip(t *testing.T) ([]byte, uint64) {
	t.Helper()
	mem, addr := hostexec.Scratch()
	if mem == nil {
		t.Skip("hostexec: no host execution on this platform")
	}
	if err := hostexec.Run([]byte{0x90}, &hostexec.State{}); err != nil {
		t.Skipf("hostexec: %v", err)
	}
	return mem, addr
}

func TestHostDiffForms(t *testing.T) {
	hostMem, addr := hostOrSkip(t)
	seed := testkit.Seed(t)
	diffScratchAddr = addr
	n := diffCasesPerForm()
	for fi, spec := range diffSpecs() {
		for _, size := range spec.sizes {
			t.Run(fmt.Sprintf("%s/%d", spec.name, 8*size), func(t *testing.T) {
				g := &diffGen{r: rand.New(rand.NewPCG(seed, uint64(fi)<<8|uint64(size))), scratchAddr: addr}
				fails := 0
				for i := 0; i < n && fails < 5; i++ {
					c := g.newCase(spec, size)
					// Several states per encoding: the host harness reuses
					// a loaded snippet.
					for j := 0; j < 4 && fails < 5; j++ {
						if j > 0 {
							c2 := *c
							g.fillState(&c2)
							c = &c2
						}
						if !runDiff(t, g, c, hostMem) {
							fails++
						}
					}
				}
			})
		}
	}
}

// TestHostDiffJcc checks every Jcc (rel8 and rel32) against the host: the
// branch skips a MOV whose effect shows whether it was taken.
func TestHostDiffJcc(t *testing.T) {
	hostMem, addr := hostOrSkip(t)
	seed := testkit.Seed(t)
	diffScratchAddr = addr
	r := rand.New(rand.NewPCG(seed, 1))
	for cc := range 16 {
		for _, near := range []bool{false, true} {
			name, code := jccDiffCode(cc, near)
			t.Run(name, func(t *testing.T) {
				for f := range 64 {
					var in ArchState
					for i := range in.R {
						in.R[i] = r.Uint64()
					}
					// All 32 combinations of CF PF ZF SF OF, plus AF and DF.
					fl := uint64(f)
					in.RFLAGS = fl&1 | fl>>1&1<<2 | fl>>2&1<<6 | fl>>3&1<<7 | fl>>4&1<<11 | fl>>5&1<<4 | flagRes1
					c := &diffCase{code: code, in: in, mem: make([]byte, pageSize)}
					runDiff(t, &diffGen{r: r, scratchAddr: addr}, c, hostMem)
				}
			})
		}
	}
}

// jccDiffCode is TestHostDiffJcc's snippet for condition cc, rel8 or
// (near) rel32.
func jccDiffCode(cc int, near bool) (string, []byte) {
	name := fmt.Sprintf("j%s/rel8", ccNames[cc])
	code := []byte{0x70 + byte(cc), 5}
	if near {
		name = fmt.Sprintf("j%s/rel32", ccNames[cc])
		code = []byte{0x0f, 0x80 + byte(cc), 5, 0, 0, 0}
	}
	code = append(code, 0xb8, 0x11, 0x22, 0x33, 0x44) // mov eax, 0x44332211
	code = append(code, 0x48, 0x83, 0xc1, 0x01)       // add rcx, 1
	return name, code
}

// TestHostDiffLoop checks LOOP, LOOPE, LOOPNE and JRCXZ, with and without
// 0x67 (ECX as the count), against the host: the branch skips a MOV whose
// effect shows whether it was taken, and RCX shows the count written back.
func TestHostDiffLoop(t *testing.T) {
	hostMem, addr := hostOrSkip(t)
	seed := testkit.Seed(t)
	diffScratchAddr = addr
	r := rand.New(rand.NewPCG(seed, 2))
	counts := []uint64{0, 1, 2, 3, 0xffffffff, 0x100000000, 0x100000001, 0xffffffff00000001, 0x8000000000000000}
	for _, lc := range loopDiffCodes() {
		code := lc.code
		t.Run(lc.name, func(t *testing.T) {
			for i := range 64 {
				var in ArchState
				for j := range in.R {
					in.R[j] = r.Uint64()
				}
				in.R[RCX] = counts[i%len(counts)]
				if i >= 2*len(counts) {
					in.R[RCX] = r.Uint64() >> (r.IntN(2) * 32)
				}
				in.RFLAGS = r.Uint64()&(FlagsArith|FlagDF) | flagRes1
				c := &diffCase{code: code, in: in, mem: make([]byte, pageSize)}
				runDiff(t, &diffGen{r: r, scratchAddr: addr}, c, hostMem)
			}
		})
	}
}

type namedCode struct {
	name string
	code []byte
}

// loopDiffCodes are TestHostDiffLoop's snippets: LOOPNE, LOOPE, LOOP and
// JRCXZ, without and with 0x67, each skipping a MOV.
func loopDiffCodes() []namedCode {
	var cs []namedCode
	names := map[byte]string{0xe0: "loopne", 0xe1: "loope", 0xe2: "loop", 0xe3: "jrcxz"}
	for _, op := range []byte{0xe0, 0xe1, 0xe2, 0xe3} {
		for _, a32 := range []bool{false, true} {
			name := names[op]
			var code []byte
			if a32 {
				name += "/addr32"
				code = append(code, 0x67)
			}
			code = append(code, op, 5)
			code = append(code, 0xb8, 0x11, 0x22, 0x33, 0x44) // mov eax, 0x44332211
			cs = append(cs, namedCode{name, code})
		}
	}
	return cs
}

// TestHostDiffStack16 checks the 16-bit PUSH/POP forms (0x66), ENTER,
// CALL/RET and PUSHFQ/POPFQ against the host in balanced snippets (the stack is the host's, so what
// the snippet leaves is read back into registers before it is popped).
func TestHostDiffStack16(t *testing.T) {
	hostMem, addr := hostOrSkip(t)
	seed := testkit.Seed(t)
	diffScratchAddr = addr
	r := rand.New(rand.NewPCG(seed, 3))
	for _, tc := range stack16DiffCases(addr) {
		t.Run(tc.name, func(t *testing.T) {
			code := hexBytes(t, tc.code)
			for range 16 {
				var in ArchState
				for j := range in.R {
					in.R[j] = r.Uint64()
				}
				in.RFLAGS = r.Uint64()&(FlagsArith|FlagDF) | flagRes1
				if tc.mem != nil {
					tc.mem(&in)
				}
				c := &diffCase{code: code, in: in, mem: make([]byte, pageSize)}
				for i := 0; i < len(c.mem); i += 8 {
					putLE(c.mem[i:], 8, r.Uint64())
				}
				runDiffStack(t, c, addr, hostMem)
			}
		})
	}
}

type stack16Case struct {
	name string
	code string
	mem  func(in *ArchState) // point registers at the scratch page
}

// stack16DiffCases are TestHostDiffStack16's snippets, for the scratch
// page at addr.
func stack16DiffCases(addr uint64) []stack16Case {
	return []stack16Case{
		{"push r16; pop r16", "66 50 66 5b", nil},                                                              // push ax; pop bx
		{"push r16 x4; pop r64", "66 41 57 66 51 66 52 66 53 5e", nil},                                         // push r15w, cx, dx, bx; pop rsi
		{"push imm8; pop r16", "66 6a 80 66 5e", nil},                                                          // push -128 (16-bit); pop si
		{"push imm16; pop r16", "66 68 34 12 66 5f", nil},                                                      // push 0x1234; pop di
		{"push m16; pop m16", "66 ff 33 66 8f 46 02", func(in *ArchState) { scratchRegs(in, addr, RBX, RSI) }}, // push [rbx]; pop [rsi+2]
		{"pushf16; pop r16", "66 9c 66 58 66 25 d5 0c", nil},                                                   // pushf; pop ax; and ax, the flags both run
		{"push r16; popf16", "66 25 d5 0c 66 50 66 9d", nil},                                                   // and ax (no TF); push ax; popf
		{"enter 0,0; leave", "c8 00 00 00 48 89 e8 48 29 e0 c9", nil},                                          // mov rax,rbp; sub rax,rsp
		{"enter 24,0; leave", "c8 18 00 00 48 89 e8 48 29 e0 48 8b 5d 00 c9", nil},                             // rbx = [rbp]: the old RBP
		{"enter 8,1; leave", "c8 08 00 01 48 89 e8 48 29 e0 48 8b 5d f8 48 29 eb c9", nil},                     // rbx = [rbp-8] - rbp
		{"enter 0,3; leave", "c8 00 00 03 48 8b 4d f8 48 8b 55 f0 48 8b 5d e8 48 29 eb 48 89 e0 48 29 e8 c9",
			func(in *ArchState) { scratchRegs(in, addr+0x100, RBP) }}, // the old frame's [rbp-8], [rbp-16] copied
		// 64-bit CALL/RET and PUSHFQ/POPFQ: what they push is read back
		// as a difference, the code's address being the host's own.
		{"call rel32; pop r64", "e8 00 00 00 00 59 48 8d 05 00 00 00 00 48 29 c8 89 c1", nil}, // pop rcx; lea rax,[rip]; sub rax,rcx; mov ecx,eax
		{"call rel32; ret", "e8 02 00 00 00 eb 01 c3", nil},                                   // call 7; jmp 8; 7: ret
		{"call rel32; ret imm16", "6a 00 e8 02 00 00 00 eb 03 c2 08 00", nil},                 // push 0; call 9; jmp 12; 9: ret 8
		{"pushfq; pop r64", "9c 58 48 25 d5 0c 00 00", nil},                                   // pushfq; pop rax; and rax, the flags both run
		{"push r64; popfq", "48 25 d5 0c 00 00 50 9d", nil},                                   // and rax (no TF, IF); push rax; popfq
	}
}

func scratchRegs(in *ArchState, base uint64, regs ...int) {
	for i, r := range regs {
		in.R[r] = base + 0x200 + uint64(i)*0x100
	}
}

// runDiffStack runs a balanced stack snippet on the emulator, with RSP in
// the scratch page's top, and on the host (the goroutine's stack), and
// compares the registers but RSP, the flags and the scratch page below the
// emulator's stack.
func runDiffStack(t *testing.T, c *diffCase, addr uint64, hostMem []byte) {
	t.Helper()
	const stackTop, stackLow = 0xf00, 0xd00
	desc := fmt.Sprintf("% x (%s)", c.code, gnu(c.code))
	emuIn := c.in
	emuIn.R[RSP] = addr + stackTop
	emuMem := append([]byte(nil), c.mem...)
	got, err := execSnippet(t, c.code, emuIn, addr, emuMem)
	if err != nil {
		t.Fatalf("%s: emulator: %v", desc, err)
	}
	if got.R[RSP] != emuIn.R[RSP] {
		t.Fatalf("%s: emulator RSP %#x, want %#x (balanced)", desc, got.R[RSP], emuIn.R[RSP])
	}
	hs := hostexec.State{R: c.in.R, RFLAGS: c.in.RFLAGS}
	copy(hostMem, c.mem)
	if err := hostexec.Run(c.code, &hs); err != nil {
		t.Fatalf("%s: host: %v", desc, err)
	}
	for r := range 16 {
		if r != RSP && got.R[r] != hs.R[r] {
			t.Errorf("%s: %s emu %#x host %#x\n  in: %s", desc, goldenRegOrder[r], got.R[r], hs.R[r], fmtState(c.in))
		}
	}
	if (got.RFLAGS^hs.RFLAGS)&(FlagsArith|FlagDF) != 0 {
		t.Errorf("%s: rflags emu %#x host %#x", desc, got.RFLAGS, hs.RFLAGS)
	}
	if !bytes.Equal(emuMem[:stackLow], hostMem[:stackLow]) {
		t.Errorf("%s: scratch memory differs", desc)
	}
}

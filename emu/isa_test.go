package emu

import (
	"bufio"
	hexenc "encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/emu/internal/hostexec"
)

// Instruction goldens: emu/testdata/insn/*.txt, one case per line,
//
//	bytes | state in | state out
//
// in the style of x86asm's testdata/decode.txt. bytes is hex (spaces
// allowed) and may hold several instructions, run until RIP reaches the end.
// A state is a list of tokens:
//
//	rax=V ... r15=V   a register (64-bit value)
//	gs=V              in only: the GS base
//	cet=V             in only: the CPU has IA32_S_CET (Quirks.IBT), = V
//	fl=V              RFLAGS (in: default 0x2; out: compared with the
//	                  flags the snippet's instructions leave undefined masked)
//	m8@OFF=V m16@ m32@ m64@   scratch memory at byte offset OFF
//	rip=V             out only: final RIP (default: the end of bytes, or
//	                  for a fault the start of bytes)
//	fault=#PF ec=V cr2=V      out only: the last instruction faults
//	exit=int3|int1|iret|sti|hlt|serialize   out only: exits taken, in order
//
// V is a number (0x hex, decimal, or negative decimal as two's complement)
// or code+N / scratch+N, the snippet's or scratch page's address plus N.
// In the out state, registers and memory not mentioned must be unchanged.
// A line starting with TODO names a gap. A file containing the line
// "#!host" has every case also run on the host CPU (hostexec), so the
// hand-written expectations are themselves checked against hardware.

type goldenCase struct {
	file   string
	line   int
	code   []byte
	in     goldenState
	out    goldenState
	text   string
	onHost bool
}

type goldenState struct {
	regs   map[int]string
	gs     string
	cet    string
	fl     string
	mem    []goldenMem
	rip    string
	fault  string
	ec     string
	cr2    string
	exits  []string
	hasFl  bool
	hasRIP bool
}

type goldenMem struct {
	off  uint64
	size int
	val  string
}

var goldenRegNames = map[string]int{
	"rax": RAX, "rcx": RCX, "rdx": RDX, "rbx": RBX, "rsp": RSP, "rbp": RBP, "rsi": RSI, "rdi": RDI,
	"r8": R8, "r9": R9, "r10": R10, "r11": R11, "r12": R12, "r13": R13, "r14": R14, "r15": R15,
}

var goldenRegOrder = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

func parseGoldenState(s string, out bool) (goldenState, error) {
	g := goldenState{regs: map[int]string{}}
	for _, tok := range strings.Fields(s) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			return g, fmt.Errorf("token %q: want key=value", tok)
		}
		if r, ok := goldenRegNames[k]; ok {
			g.regs[r] = v
			continue
		}
		switch {
		case k == "fl":
			g.fl, g.hasFl = v, true
		case !out && k == "gs":
			g.gs = v
		case !out && k == "cet":
			g.cet = v
		case strings.HasPrefix(k, "m") && strings.Contains(k, "@"):
			sz, off, _ := strings.Cut(k[1:], "@")
			n, err := strconv.Atoi(sz)
			if err != nil || (n != 8 && n != 16 && n != 32 && n != 64) {
				return g, fmt.Errorf("token %q: bad memory size", tok)
			}
			o, err := strconv.ParseUint(off, 0, 64)
			if err != nil {
				return g, fmt.Errorf("token %q: bad offset", tok)
			}
			g.mem = append(g.mem, goldenMem{off: o, size: n / 8, val: v})
		case out && k == "rip":
			g.rip, g.hasRIP = v, true
		case out && k == "fault":
			g.fault = v
		case out && k == "ec":
			g.ec = v
		case out && k == "cr2":
			g.cr2 = v
		case out && k == "exit":
			g.exits = append(g.exits, v)
		default:
			return g, fmt.Errorf("unknown token %q", tok)
		}
	}
	return g, nil
}

// goldenEnv resolves symbolic values.
type goldenEnv struct{ code, scratch uint64 }

func (e goldenEnv) val(s string) (uint64, error) {
	base := uint64(0)
	switch {
	case strings.HasPrefix(s, "code"):
		base, s = e.code, strings.TrimPrefix(s, "code")
	case strings.HasPrefix(s, "scratch"):
		base, s = e.scratch, strings.TrimPrefix(s, "scratch")
	}
	if s == "" {
		return base, nil
	}
	if base != 0 {
		s = strings.TrimPrefix(s, "+")
	}
	if strings.HasPrefix(s, "-") {
		v, err := strconv.ParseInt(s, 0, 64)
		return base + uint64(v), err
	}
	v, err := strconv.ParseUint(s, 0, 64)
	return base + v, err
}

func (e goldenEnv) must(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := e.val(s)
	if err != nil {
		t.Fatalf("value %q: %v", s, err)
	}
	return v
}

func loadGoldens(t *testing.T) ([]goldenCase, []string) {
	files, err := filepath.Glob(filepath.Join("testdata", "insn", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	var cases []goldenCase
	var todos []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		onHost := false
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "#!host" {
				onHost = true
				continue
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "TODO") {
				todos = append(todos, fmt.Sprintf("%s:%d: %s", filepath.Base(f), n, line))
				continue
			}
			parts := strings.Split(line, "|")
			if len(parts) != 3 {
				t.Fatalf("%s:%d: want 3 |-separated fields", f, n)
			}
			code, err := hexenc.DecodeString(strings.ReplaceAll(strings.TrimSpace(parts[0]), " ", ""))
			if err != nil {
				t.Fatalf("%s:%d: bytes: %v", f, n, err)
			}
			in, err := parseGoldenState(parts[1], false)
			if err != nil {
				t.Fatalf("%s:%d: state in: %v", f, n, err)
			}
			out, err := parseGoldenState(parts[2], true)
			if err != nil {
				t.Fatalf("%s:%d: state out: %v", f, n, err)
			}
			cases = append(cases, goldenCase{file: filepath.Base(f), line: n, code: code, in: in, out: out, text: line, onHost: onHost})
		}
	}
	return cases, todos
}

// goldenScratchAddr is the scratch page used when the host has none.
const goldenScratchAddr = 0x7f0000200000

func TestISAGoldens(t *testing.T) {
	cases, todos := loadGoldens(t)
	for _, td := range todos {
		t.Log(td)
		// A TODO names a gap: its bytes must still be unsupported.
		_, rest, _ := strings.Cut(td, "TODO")
		hx, _, _ := strings.Cut(rest, "|")
		code, err := hexenc.DecodeString(strings.ReplaceAll(strings.TrimSpace(hx), " ", ""))
		if err != nil {
			t.Errorf("%s: bytes: %v", td, err)
			continue
		}
		var u *UnsupportedError
		if _, err := decodeInst(code, snippetCodeBase); !errors.As(err, &u) {
			t.Errorf("%s: decodeInst = %v, want *UnsupportedError (remove the TODO?)", td, err)
		}
	}
	hostMem, hostAddr := hostexec.Scratch()
	env := goldenEnv{code: snippetCodeBase, scratch: goldenScratchAddr}
	if hostMem != nil {
		env.scratch = hostAddr
	}
	for _, gc := range cases {
		name := fmt.Sprintf("%s:%d/% x", strings.TrimSuffix(gc.file, ".txt"), gc.line, gc.code)
		t.Run(name, func(t *testing.T) {
			t.Log(gc.text)
			in, scratch := gc.inState(t, env)
			got, mem, res, err := gc.runEmu(t, env, in, scratch)
			gc.check(t, env, "emulator", in, scratch, got, mem, res, err)
			if gc.onHost && hostMem != nil && !testing.Short() {
				hs := hostexec.State{R: in.R, RFLAGS: in.RFLAGS}
				copy(hostMem, scratch)
				if err := hostexec.Run(gc.code, &hs); err != nil {
					t.Fatalf("host: %v", err)
				}
				hmem := append([]byte(nil), hostMem...)
				hs.R[RSP] = in.R[RSP]
				hres := snippetResult{State: ArchState{R: hs.R, RFLAGS: hs.RFLAGS}, RIP: env.code + uint64(len(gc.code))}
				gc.check(t, env, "host", in, scratch, hres.State, hmem, hres, nil)
			}
		})
	}
}

func (gc *goldenCase) inState(t *testing.T, env goldenEnv) (ArchState, []byte) {
	var st ArchState
	for r, v := range gc.in.regs {
		st.R[r] = env.must(t, v)
	}
	st.RFLAGS = 0x2
	if gc.in.hasFl {
		st.RFLAGS = env.must(t, gc.in.fl)
	}
	scratch := make([]byte, pageSize)
	for _, m := range gc.in.mem {
		putLE(scratch[m.off:], m.size, env.must(t, m.val))
	}
	return st, scratch
}

func (gc *goldenCase) runEmu(t *testing.T, env goldenEnv, in ArchState, scratch []byte) (ArchState, []byte, snippetResult, error) {
	mem := append([]byte(nil), scratch...)
	var gs uint64
	if gc.in.gs != "" {
		gs = env.must(t, gc.in.gs)
	}
	var cet *uint64
	if gc.in.cet != "" {
		v := env.must(t, gc.in.cet)
		cet = &v
	}
	res, err := runSnippetCET(t, gc.code, in, env.scratch, mem, gs, cet)
	return res.State, mem, res, err
}

// undefinedIn is the union of the flags the snippet's instructions leave
// undefined.
func (gc *goldenCase) undefinedIn() uint64 {
	var u uint64
	for off := 0; off < len(gc.code); {
		in, err := decodeInst(gc.code[off:], snippetCodeBase+uint64(off))
		if err != nil {
			break
		}
		u |= undefinedFlags(in.sem.op, in)
		off += int(in.len)
	}
	return u
}

func (gc *goldenCase) check(t *testing.T, env goldenEnv, who string, in ArchState, scratchIn []byte, got ArchState, mem []byte, res snippetResult, err error) {
	t.Helper()
	out := gc.out
	if out.fault != "" {
		var f *snippetFault
		if !errors.As(err, &f) {
			t.Fatalf("%s: want fault %s, got err %v", who, out.fault, err)
		}
		if f.Info.vector.Name() != out.fault {
			t.Errorf("%s: fault %s, want %s", who, f.Info.vector.Name(), out.fault)
		}
		if out.ec != "" && f.Info.errCode != env.must(t, out.ec) {
			t.Errorf("%s: error code %#x, want %s", who, f.Info.errCode, out.ec)
		}
		if out.cr2 != "" && f.Info.addr != env.must(t, out.cr2) {
			t.Errorf("%s: fault address %#x, want %s", who, f.Info.addr, out.cr2)
		}
	} else if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	for r := range 16 {
		want := in.R[r]
		if v, ok := out.regs[r]; ok {
			want = env.must(t, v)
		}
		if who == "host" && r == RSP {
			continue
		}
		if got.R[r] != want {
			t.Errorf("%s: %s = %#x, want %#x", who, goldenRegOrder[r], got.R[r], want)
		}
	}
	wantFl := in.RFLAGS
	if out.hasFl {
		wantFl = env.must(t, out.fl)
	}
	mask := FlagsArith | FlagDF | FlagIF | FlagTF
	if who == "host" {
		mask = FlagsArith | FlagDF // hostexec neither loads IF/TF nor lets us set them
	}
	mask &^= gc.undefinedIn()
	if got.RFLAGS&mask != wantFl&mask {
		t.Errorf("%s: rflags = %#x, want %#x (compared bits %#x, diff %#x)", who, got.RFLAGS, wantFl, mask, (got.RFLAGS^wantFl)&mask)
	}
	wantMem := append([]byte(nil), scratchIn...)
	for _, m := range out.mem {
		putLE(wantMem[m.off:], m.size, env.must(t, m.val))
	}
	for i := range wantMem {
		if mem[i] != wantMem[i] {
			t.Errorf("%s: scratch[%#x] = %#x, want %#x", who, i, mem[i], wantMem[i])
		}
	}
	if who == "host" {
		return
	}
	wantRIP := env.code + uint64(len(gc.code))
	if out.hasRIP {
		wantRIP = env.must(t, out.rip)
	} else if out.fault != "" {
		wantRIP = env.code // a fault leaves RIP at the faulting instruction
	}
	if res.RIP != wantRIP {
		t.Errorf("%s: rip = %#x, want %#x", who, res.RIP, wantRIP)
	}
	var exits []string
	for _, x := range res.Exits {
		exits = append(exits, exitName(x))
	}
	if strings.Join(exits, ",") != strings.Join(out.exits, ",") {
		t.Errorf("%s: exits %v, want %v", who, exits, out.exits)
	}
}

func exitName(x exitKind) string {
	switch x {
	case exitInt3:
		return "int3"
	case exitInt1:
		return "int1"
	case exitIret:
		return "iret"
	case exitSTI:
		return "sti"
	case exitHlt:
		return "hlt"
	case exitSerialize:
		return "serialize"
	case exitFault:
		return "fault"
	}
	return "none"
}

func putLE(b []byte, size int, v uint64) {
	for i := 0; i < size; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func getLE(b []byte, size int) uint64 {
	var v uint64
	for i := 0; i < size; i++ {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

func TestUnsupportedInstruction(t *testing.T) {
	const addr = 0xffffffff81000010
	tests := []struct {
		name  string
		code  []byte
		bytes string // in the message
		why   string
	}{
		{"xgetbv", []byte{0x0f, 0x01, 0xd0}, `"0f 01 d0" (xgetbv)`, "not implemented"},
		{"rdtsc", []byte{0x0f, 0x31}, `"0f 31" (rdtsc)`, "not implemented"},
		{"syscall", []byte{0x0f, 0x05}, `"0f 05" (syscall)`, "not implemented"},
		{"sse", []byte{0x66, 0x0f, 0xef, 0xc0}, `"66 0f ef c0" (pxor %xmm0,%xmm0)`, "not implemented"},
		{"push es", []byte{0x66, 0x0f, 0xa0}, `"66 0f a0" (pushw %fs)`, "segment register"},
		{"leave16", []byte{0x66, 0xc9}, `"66 c9" (leavew)`, "16-bit"},
		{"iretw", []byte{0x66, 0xcf}, `"66 cf" (iretw`, "not implemented"},
		{"x86asm error", []byte{0x0f, 0x38, 0xff, 0xc0}, `"0f 38 ff c0" (bad)`, "x86asm"},
		{"x87", []byte{0xd9, 0xc0}, `"d9 c0" (fld %st)`, "not implemented"},
		{"truncated", []byte{0x48, 0x8b}, `"48 8b" (bad)`, "x86asm"},
		{"empty", nil, `"" (bad)`, "x86asm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := decodeInst(tt.code, addr)
			if in != nil {
				t.Fatalf("got inst %+v, want nil", in.sem)
			}
			var u *UnsupportedError
			if !errors.As(err, &u) {
				t.Fatalf("err = %v (%T), want *UnsupportedError", err, err)
			}
			if u.Addr != addr || string(u.Bytes) != string(tt.code) {
				t.Errorf("Addr, Bytes = %#x, % x; want %#x, % x", u.Addr, u.Bytes, uint64(addr), tt.code)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "unsupported instruction "+tt.bytes) || !strings.Contains(msg, "at 0xffffffff81000010: ") || !strings.Contains(msg, tt.why) {
				t.Errorf("message %q: want bytes %s, the address and %q", msg, tt.bytes, tt.why)
			}
		})
	}
}

// TestDecodeForms checks the pre-decoded operands of a few encodings
// whose x86asm form is easy to get wrong.
func TestDecodeForms(t *testing.T) {
	const addr = 0xffffffff81000100
	tests := []struct {
		name string
		code string
		want func(s *semantics) string
	}{
		{"high byte rm", "88 e0", func(s *semantics) string { // mov al, ah
			return check(s.op == opMovRR && s.r == RAX && s.rsh == 0 && s.rm == RAX && s.rmsh == 8 && s.size == 1)
		}},
		{"spl needs rex", "40 88 e0", func(s *semantics) string { // mov al, spl
			return check(s.op == opMovRR && s.rm == RSP && s.rmsh == 0)
		}},
		{"gs moffs", "65 48 8b 04 25 10 00 00 00", func(s *semantics) string {
			return check(s.op == opMovRM && s.mf&mGS != 0 && s.mf&(mBase|mIndex) == 0 && s.disp == 0x10 && s.size == 8)
		}},
		{"rip relative", "48 8d 05 10 00 00 00", func(s *semantics) string {
			return check(s.op == opLea && s.mf&mRIP != 0 && s.disp == 0x10)
		}},
		{"sib", "8b 44 8b 08", func(s *semantics) string { // mov eax, [rbx+rcx*4+8]
			return check(s.mf&mBase != 0 && s.base == RBX && s.mf&mIndex != 0 && s.index == RCX && s.scale == 2 && s.disp == 8)
		}},
		{"imm8 sign-extended", "48 83 c0 ff", func(s *semantics) string {
			return check(s.op == opAluRI && s.sub == aluAdd && s.imm == ^uint64(0))
		}},
		{"push imm8", "6a 80", func(s *semantics) string {
			return check(s.op == opPushI && s.imm == 0xffffffffffffff80)
		}},
		{"jcc target", "74 10", func(s *semantics) string {
			return check(s.op == opJcc && s.sub == 4 && s.target == addr+2+0x10)
		}},
		{"call backwards", "e8 fb ff ff ff", func(s *semantics) string {
			return check(s.op == opCall && s.target == addr)
		}},
		{"ret imm16", "c2 08 00", func(s *semantics) string { return check(s.op == opRet && s.imm == 8) }},
		{"bad lock", "f0 01 c0", func(s *semantics) string { return check(s.op == opUD) }},
		{"lock ok", "f0 01 00", func(s *semantics) string { return check(s.op == opAluMR) }},
		{"endbr64", "f3 0f 1e fa", func(s *semantics) string { return check(s.op == opNop) }},
		{"nopw", "66 2e 0f 1f 84 00 00 00 00 00", func(s *semantics) string { return check(s.op == opNop) }},
		{"movabs", "48 b8 ef cd ab 89 67 45 23 01", func(s *semantics) string {
			return check(s.op == opMovRI && s.imm == 0x0123456789abcdef && s.size == 8)
		}},
		{"mov r32 imm", "b8 ff ff ff ff", func(s *semantics) string {
			return check(s.op == opMovRI && s.size == 4 && s.mask == 0xffffffff)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := hexenc.DecodeString(strings.ReplaceAll(tt.code, " ", ""))
			in, err := decodeInst(code, addr)
			if err != nil {
				t.Fatal(err)
			}
			if int(in.len) != len(code) || in.addr != addr || string(in.Bytes()) != string(code) {
				t.Errorf("header: len %d addr %#x bytes % x", in.len, in.addr, in.Bytes())
			}
			if msg := tt.want(&in.sem); msg != "" {
				t.Errorf("semantics %+v", in.sem)
			}
		})
	}
}

func check(ok bool) string {
	if ok {
		return ""
	}
	return "mismatch"
}

// TestFaultAtomicity checks that a faulting instruction has no effect.
func TestFaultAtomicity(t *testing.T) {
	const scratch = goldenScratchAddr
	tests := []struct {
		name  string
		code  string
		setup func(m *Machine, c *CPU)
		vec   Vector
		ec    uint64
		addr  uint64
	}{
		{"push to unmapped stack", "50", func(m *Machine, c *CPU) { c.R[RSP] = 0x10000 }, VecPF, 2, 0x10000 - 8},
		{"call to unmapped stack", "e8 00 00 00 00", func(m *Machine, c *CPU) { c.R[RSP] = 0x10000 }, VecPF, 2, 0x10000 - 8},
		{"pop from unmapped stack", "58", func(m *Machine, c *CPU) { c.R[RSP] = 0x10000 }, VecPF, 0, 0x10000},
		{"store to r-x page", "48 89 03", func(m *Machine, c *CPU) { c.R[RBX] = snippetCodeBase + 0x10 }, VecPF, 3, snippetCodeBase + 0x10},
		{"rmw on r-x page", "48 01 03", func(m *Machine, c *CPU) { c.R[RBX] = snippetCodeBase + 0x10; c.R[RAX] = 1 }, VecPF, 3, snippetCodeBase + 0x10},
		{"xchg on r-- page", "48 87 03", func(m *Machine, c *CPU) {
			m.mem.mapNew(0x40000, 1, PermR)
			c.R[RBX] = 0x40008
		}, VecPF, 3, 0x40008},
		{"store split into unmapped page", "48 89 03", func(m *Machine, c *CPU) { c.R[RBX] = scratch + pageSize - 4 }, VecPF, 2, scratch + pageSize},
		{"cmpxchg fails on r-- page", "f0 48 0f b1 0b", func(m *Machine, c *CPU) {
			m.mem.mapNew(0x40000, 1, PermR)
			c.R[RBX] = 0x40000
			c.R[RAX] = 1 // memory holds 0: the comparison fails, the write-back still faults
		}, VecPF, 3, 0x40000},
		{"pop to r-x page", "8f 03", func(m *Machine, c *CPU) { c.R[RSP] = scratch + 0x100; c.R[RBX] = snippetCodeBase }, VecPF, 3, snippetCodeBase},
		{"call through unmapped slot", "65 ff 14 25 08 00 00 00", func(m *Machine, c *CPU) { c.R[RSP] = scratch + 0x100; c.GSBase = 0x50000 }, VecPF, 0, 0x50008},
		{"iretq frame runs off the stack", "48 cf", func(m *Machine, c *CPU) { c.R[RSP] = scratch + pageSize - 16 }, VecPF, 0, scratch + pageSize},
		{"div by zero", "48 f7 f1", func(m *Machine, c *CPU) { c.R[RAX] = 5 }, VecDE, 0, 0},
		{"idiv overflow", "48 f7 f9", func(m *Machine, c *CPU) { c.R[RAX] = 1 << 63; c.R[RDX] = ^uint64(0); c.R[RCX] = ^uint64(0) }, VecDE, 0, 0},
		{"ud2", "0f 0b", func(m *Machine, c *CPU) {}, VecUD, 0, 0},
		{"bad lock", "f0 01 c0", func(m *Machine, c *CPU) {}, VecUD, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _ := hexenc.DecodeString(strings.ReplaceAll(tt.code, " ", ""))
			scr := make([]byte, pageSize)
			for i := range scr {
				scr[i] = byte(i * 7)
			}
			m, c := newSnippetMachine(t, code, scratch, scr)
			c.RFLAGS = 0x2 | FlagCF
			c.R[RBP] = 0x1234
			tt.setup(m, c)
			beforeR, beforeRIP, beforeFl := c.R, c.RIP, c.RFLAGS
			var memBefore [pageSize]byte
			m.mem.peek(scratch, memBefore[:])
			in, err := decodeInst(code, c.RIP)
			if err != nil {
				t.Fatal(err)
			}
			c.exec(in)
			if c.exit != exitFault {
				t.Fatalf("exit = %v, want a fault", c.exit)
			}
			if c.fault.vector != tt.vec || c.fault.errCode != tt.ec || (tt.vec == VecPF && c.fault.addr != tt.addr) {
				t.Errorf("fault %s ec %#x addr %#x, want %s ec %#x addr %#x", c.fault.vector.Name(), c.fault.errCode, c.fault.addr, tt.vec.Name(), tt.ec, tt.addr)
			}
			if c.R != beforeR || c.RIP != beforeRIP || c.RFLAGS != beforeFl {
				t.Errorf("state changed: R %x -> %x, RIP %#x -> %#x, RFLAGS %#x -> %#x", beforeR, c.R, beforeRIP, c.RIP, beforeFl, c.RFLAGS)
			}
			var memAfter [pageSize]byte
			m.mem.peek(scratch, memAfter[:])
			if memAfter != memBefore {
				t.Error("scratch memory changed")
			}
		})
	}
}

func TestCPUID(t *testing.T) {
	tests := []struct {
		leaf, sub  uint64
		a, b, c, d uint64
	}{
		{0, 0, 7, le64("Patc"), le64("ceVM"), le64("hTra")},
		{1, 0, 0x600, 3 << 24, 1<<23 | 1<<13, 1<<15 | 1<<8},
		{7, 0, 0, 1 << 3, 0, 0},
		{7, 1, 0, 0, 0, 0},
		{0x80000000, 0, 0x80000001, 0, 0, 0},
		{0x80000001, 0, 0, 0, 1 | 1<<5, 1<<20 | 1<<29},
		{0x40000000, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("leaf %#x.%d", tt.leaf, tt.sub), func(t *testing.T) {
			m, c := newSnippetMachine(t, []byte{0x0f, 0xa2}, 0, nil)
			_ = m
			c.ID = 3
			c.R[RAX] = tt.leaf | 0xdead00000000
			c.R[RCX] = tt.sub
			c.R[RBX], c.R[RDX] = ^uint64(0), ^uint64(0)
			in, err := decodeInst([]byte{0x0f, 0xa2}, c.RIP)
			if err != nil {
				t.Fatal(err)
			}
			c.exec(in)
			if c.exit != exitSerialize {
				t.Errorf("exit %v, want serialize", c.exit)
			}
			got := [4]uint64{c.R[RAX], c.R[RBX], c.R[RCX], c.R[RDX]}
			if want := [4]uint64{tt.a, tt.b, tt.c, tt.d}; got != want {
				t.Errorf("got %#x, want %#x", got, want)
			}
		})
	}
}

func le64(s string) uint64 { return uint64(le32(s)) }

// TestFlagTable checks the flag table's invariants and that every decoded
// form names a flag class.
func TestFlagTable(t *testing.T) {
	for fc := range numFlagClasses {
		e := flagTable[fc]
		if e.undefined&^e.writes != 0 {
			t.Errorf("class %d: undefined %#x not a subset of written %#x", fc, e.undefined, e.writes)
		}
		if e.writes&^flagsWritable != 0 {
			t.Errorf("class %d: writes %#x outside the writable flags", fc, e.writes)
		}
	}
	tests := []struct {
		code  string
		count uint64
		want  uint64
	}{
		{"48 01 c8", 0, 0},   // add
		{"21 c8", 0, FlagAF}, // and
		{"48 f7 e1", 0, FlagSF | FlagZF | FlagAF | FlagPF},          // mul
		{"48 f7 f1", 0, FlagsArith},                                 // div
		{"d1 e0", 1, FlagAF},                                        // shl by 1: OF defined
		{"c1 e0 05", 5, FlagAF | FlagOF},                            // shl by 5
		{"c1 e0 00", 0, 0},                                          // shl by 0: no flag changes
		{"c0 e0 09", 9, FlagAF | FlagOF | FlagCF},                   // shl r8 by 9 >= width
		{"c0 f8 09", 9, FlagAF | FlagOF},                            // sar r8 by 9: CF is the sign
		{"d1 c0", 1, 0},                                             // rol by 1
		{"c1 c0 03", 3, FlagOF},                                     // rol by 3
		{"66 0f a4 c1 11", 17, FlagsArith},                          // shld r16 by 17 > width
		{"0f bc c1", 0, FlagCF | FlagOF | FlagSF | FlagAF | FlagPF}, // bsf
		{"f3 0f b8 c1", 0, 0},                                       // popcnt
		{"0f a3 c8", 0, FlagOF | FlagSF | FlagAF | FlagPF},          // bt
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			code, _ := hexenc.DecodeString(strings.ReplaceAll(tt.code, " ", ""))
			in, err := decodeInst(code, snippetCodeBase)
			if err != nil {
				t.Fatal(err)
			}
			if got := undefinedFlagsCount(in, tt.count); got != tt.want {
				t.Errorf("undefinedFlagsCount = %#x, want %#x", got, tt.want)
			}
			if in.sem.mf&mCL == 0 {
				if got := undefinedFlags(in.sem.op, in); got != tt.want {
					t.Errorf("undefinedFlags = %#x, want %#x", got, tt.want)
				}
			}
			if u := undefinedFlags(in.sem.op, in); u&^writtenFlags(in) != 0 {
				t.Errorf("undefined %#x not written (%#x)", u, writtenFlags(in))
			}
		})
	}
}

// FuzzDecodeExec: arbitrary bytes through decodeInst and exec on a
// snippet machine never panic, and decodeInst returns an error exactly
// when it returns no instruction.
func FuzzDecodeExec(f *testing.F) {
	for _, s := range []string{
		"4801c8", "f00fb111", "65488b042510000000", "f348a5", "48f7f9", "0fa2", "48cf", "cc",
		"d3e0", "0fa5c1", "0fbae005", "f30fbcc0", "c20800", "ff742408", "8f442408", "0f0b", "f001c0",
		"66400fbec4", "f2ae", "9d", "c9", "e3fe", "f3a4", "480fc7c8",
	} {
		b, _ := hexenc.DecodeString(s)
		f.Add(b, uint64(0x7f0000200100), uint64(0x246))
	}
	f.Fuzz(func(t *testing.T, code []byte, reg, fl uint64) {
		in, err := decodeInst(code, snippetCodeBase)
		if (in == nil) == (err == nil) {
			t.Fatalf("decodeInst(% x) = %v, %v: want exactly one nil", code, in, err)
		}
		if err != nil {
			var u *UnsupportedError
			if !errors.As(err, &u) {
				t.Fatalf("error %T, want *UnsupportedError", err)
			}
			_ = err.Error()
			return
		}
		if int(in.len) > len(code) || in.len == 0 {
			t.Fatalf("len %d of % x", in.len, code)
		}
		scr := make([]byte, pageSize)
		m, c := newSnippetMachine(t, code, goldenScratchAddr, scr)
		_ = m
		for i := range c.R {
			c.R[i] = reg + uint64(i)*8
		}
		c.R[RCX] &= 0xff // keep REP counts small
		c.RFLAGS = fl&flagsWritable | flagRes1
		c.GSBase = goldenScratchAddr
		c.exec(in)
		if c.RFLAGS&flagRes1 == 0 {
			t.Errorf("reserved RFLAGS bit 1 cleared")
		}
		if c.exit == exitFault && c.fault.vector == VecPF && c.fault.errCode&^3 != 0 {
			t.Errorf("odd #PF error code %#x", c.fault.errCode)
		}
	})
}

// BenchmarkExecALU measures exec alone on a decoded ALU/MOV/branch loop
// body (register operands, the bench-fentry bench.S mix without calls), with no decode
// or step-loop overhead.
func BenchmarkExecALU(b *testing.B) {
	code := []byte{
		0x48, 0x89, 0xcf, // mov rdi, rcx
		0x48, 0x89, 0xf8, // mov rax, rdi
		0x48, 0x05, 0x34, 0x12, 0, 0, // add rax, 0x1234
		0x48, 0x31, 0xd0, // xor rax, rdx
		0x41, 0x89, 0xf8, // mov r8d, edi
		0x41, 0x83, 0xe0, 0x01, // and r8d, 1
		0x41, 0x83, 0xf8, 0x01, // cmp r8d, 1
		0x74, 0x03, // je +3
		0x48, 0x01, 0xc2, // add rdx, rax
		0x48, 0x83, 0xc1, 0x01, // add rcx, 1
		0x4c, 0x39, 0xe1, // cmp rcx, r12
		0x75, 0xd8, // jne start
	}
	m, c := newSnippetMachine(b, code, 0, nil)
	_ = m
	var insts []*inst
	for off := 0; off < len(code); {
		in, err := decodeInst(code[off:], snippetCodeBase+uint64(off))
		if err != nil {
			b.Fatal(err)
		}
		insts = append(insts, in)
		off += int(in.len)
	}
	// Resolve each instruction's successors so the loop below indexes
	// rather than looks up.
	next := make([]*inst, len(code))
	for _, in := range insts {
		next[in.addr-snippetCodeBase] = in
	}
	c.R[R12] = 1 << 62
	c.RIP = snippetCodeBase
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for range 1000 {
			c.exec(next[c.RIP-snippetCodeBase])
		}
		n += 1000
	}
	// ns/insn: wall time per executed instruction.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/insn")
	// insns/s: instructions executed per second.
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "insns/s")
}

package emu

import (
	hexenc "encoding/hex"
	"errors"
	"strings"
	"testing"
)

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hexenc.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// TestDecodeInvalid: bytes that are no instruction in 64-bit mode decode to
// an instruction raising #UD (or #GP(0) past 15 bytes), with the length the
// verdict rests on; valid instructions the interpreter lacks stay
// *UnsupportedError. testdata/insn/ud/invalid.txt checks the same rules
// against the host CPU.
func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		code string
		op   semOp // opUD, opUD, opNop; or numSemOps for *UnsupportedError
		len  int
	}{
		{"1e 89 f8", opUD, 1}, // push ds: the bytes the int3-boost bug ran
		{"06", opUD, 1},
		{"07", opUD, 1},
		{"0e", opUD, 1},
		{"16", opUD, 1},
		{"17", opUD, 1},
		{"1f", opUD, 1},
		{"27", opUD, 1},
		{"2f", opUD, 1},
		{"37", opUD, 1},
		{"3f", opUD, 1},
		{"60", opUD, 1},
		{"61", opUD, 1},
		{"82 c0 01", opUD, 1},
		{"9a 01 02 03 04 05 06", opUD, 1},
		{"ce", opUD, 1},
		{"d4 0a", opUD, 1},
		{"d5 0a", opUD, 1},
		{"d6", opUD, 1},
		{"ea 01 02 03 04 05 06", opUD, 1},
		{"66 1e", opUD, 2},
		{"48 06", opUD, 2},
		{"8d c0", opUD, 2},    // lea with a register source
		{"8c f0", opUD, 2},    // mov from segment register 6
		{"8e c8", opUD, 2},    // mov to CS
		{"fe d0", opUD, 2},    // group 4 /2
		{"ff f8", opUD, 2},    // group 5 /7
		{"ff d8", opUD, 2},    // far call with a register
		{"ff e8", opUD, 2},    // far jmp with a register
		{"c6 c8 00", opUD, 2}, // group 11 /1
		{"c7 c8 00 00 00 00", opUD, 2},
		{"c6 f8 00", opUD, 3},          // xabort: no RTM
		{"c7 f8 00 00 00 00", opUD, 6}, // xbegin: no RTM
		{"8f c8", opUD, 2},             // group 1A /1
		{"0f 0b", opUD, 2},             // ud2
		{"0f ff", opUD, 2},             // ud0
		{"0f b9 c0", opUD, 3},          // ud1
		{"0f 04", opUD, 2},
		{"0f 0a", opUD, 2},
		{"0f 0c", opUD, 2},
		{"0f 24 c0", opUD, 2},
		{"0f 36", opUD, 2},
		{"0f 39", opUD, 2},
		{"0f a6", opUD, 2},
		{"0f 00 f0", opUD, 3}, // group 6 /6
		{"0f c7 c8", opUD, 3}, // cmpxchg8b with a register
		{"0f c7 00", opUD, 3}, // group 9 /0
		{"f0 01 c0", opUD, 3}, // lock on a register destination
		{"f0 90", opUD, 2},    // lock nop
		{"f0 06", opUD, 2},
		{"66 c4 e2 79 18 00", opUD, 2}, // 66 before VEX
		{"48 c5 f8 77", opUD, 2},       // REX before VEX
		{"0f 1f 00", opNop, 3},
		{"0f 19 c0", opNop, 3},
		{"0f 1e c8", opNop, 3},
		{"0f 1d 44 24 08", opNop, 5},
		{"66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", opGP, 15},
		{"66 66 66 66 66 66 66 66 66 66 66 66 66 66 66", opGP, 15},
		{"66 66 66 66 66 66 66 66 66 66 48 b8 01 02 03 04 05 06 07 08", opGP, 15},
		{"d9 c0", numSemOps, 0},                // fld: valid x87
		{"66 0f ef c0", numSemOps, 0},          // pxor: valid SSE
		{"c5 f8 77", numSemOps, 0},             // vzeroupper: VEX
		{"62 f1 7c 48 28 c1", numSemOps, 0},    // EVEX vmovaps
		{"0f 01 d0", numSemOps, 0},             // xgetbv
		{"48 8b", numSemOps, 0},                // truncated
		{"8d", numSemOps, 0},                   // truncated before ModRM
		{"66 66 66 66 66 66 66", numSemOps, 0}, // prefixes only, fewer than 15
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			code := hexBytes(t, tt.code)
			in, err := decodeInst(code, snippetCodeBase)
			if tt.op == numSemOps {
				var u *UnsupportedError
				if !errors.As(err, &u) {
					t.Fatalf("decodeInst = %+v, %v; want *UnsupportedError", in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeInst: %v", err)
			}
			if in.sem.op != tt.op || int(in.len) != tt.len {
				t.Errorf("op %d len %d, want op %d len %d", in.sem.op, in.len, tt.op, tt.len)
			}
			if string(in.Bytes()) != string(code[:in.len]) {
				t.Errorf("raw % x", in.Bytes())
			}
		})
	}
}

// TestInvalidOpcodeDelivered: a CPU that runs into bytes that are no
// instruction takes #UD through the slice's vector table, with the saved
// RIP at the bytes (SDM Vol. 3 §6.15, Interrupt 6: a fault); ud2 outside a
// native stub likewise. Without a #UD gate the run oopses naming #UD: it is
// never an emulator error.
func TestInvalidOpcodeDelivered(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
	}{
		{"push ds", []byte{0x1e, 0x89, 0xf8}},
		{"ud2", []byte{0x0f, 0x0b}},
		{"lea reg", []byte{0x8d, 0xc0}},
		{"lock nop", []byte{0xf0, 0x90}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(asmNop, tc.code, asmSelf), testGate{v: VecUD, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			c := m.cpus[0]
			rsp := c.R[RSP]
			step(m) // nop
			step(m) // the bytes: #UD
			if stop, msg := m.Stopped(); stop != StopNone {
				t.Fatalf("stopped: %v %s", stop, msg)
			}
			tr := rec.kinds(EvTrap)
			if len(tr) != 1 || tr[0].Vector != VecUD || tr[0].RIP != testText+1 {
				t.Fatalf("traps %+v, want one #UD at %#x", tr, testText+1)
			}
			if c.RIP != testHandler {
				t.Errorf("RIP %#x, want the handler %#x", c.RIP, testHandler)
			}
			sp := (rsp &^ 15) - 40
			if got, _ := c.read(sp, 8); got != testText+1 {
				t.Errorf("saved RIP %#x, want %#x (the faulting instruction)", got, testText+1)
			}
			if c.R[RSP] != sp {
				t.Errorf("RSP %#x, want %#x: #UD pushes no error code", c.R[RSP], sp)
			}
		})
		t.Run(tc.name+"/no gate", func(t *testing.T) {
			img := testImage(t, cat(asmNop, tc.code, asmSelf))
			m, _ := newTestMachine(t, img, Quirks{})
			res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 5}}})
			if res.Stop != StopOops || res.Err != nil {
				t.Fatalf("stop %v err %v msg %q, want an oops", res.Stop, res.Err, res.Msg)
			}
			if !strings.Contains(res.Msg, "#UD") || !strings.Contains(res.Msg, "pt_start+0x1") {
				t.Errorf("message %q does not name #UD at pt_start+0x1", res.Msg)
			}
		})
	}
}

// TestLengthLimitGP: an instruction longer than 15 bytes raises #GP(0)
// (SDM Vol. 2 §2.3.11), delivered with error code 0.
func TestLengthLimitGP(t *testing.T) {
	code := cat(hexBytesNoT("66666666666666666666666666666690"), asmSelf)
	img := testImage(t, code, testGate{v: VecGP, code: asmSelf})
	m, rec := newTestMachine(t, img, Quirks{})
	step(m)
	tr := rec.kinds(EvTrap)
	if len(tr) != 1 || tr[0].Vector != VecGP || tr[0].RIP != testText || tr[0].ErrCode != 0 {
		t.Fatalf("traps %+v, want #GP(0) at %#x", tr, testText)
	}
}

func hexBytesNoT(s string) []byte {
	b, err := hexenc.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestUnimplementedInstructionStops: a valid instruction the interpreter
// does not implement is not #UD: the run stops with StopUnsupported and an
// error naming the bytes, the address and symbol+offset.
func TestUnimplementedInstructionStops(t *testing.T) {
	for _, tc := range []struct {
		name, bytes string
		code        []byte
	}{
		{"x87", "d9 c0", []byte{0xd9, 0xc0}},
		{"sse", "66 0f ef c0", []byte{0x66, 0x0f, 0xef, 0xc0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage(t, cat(asmNop, tc.code, asmSelf), testGate{v: VecUD, code: asmSelf})
			m, rec := newTestMachine(t, img, Quirks{})
			res := m.Run(&LogSource{Log: []Decision{{Kind: DecStep, CPU: 0, N: 5}}})
			var e *Error
			var u *UnsupportedError
			if res.Stop != StopUnsupported || !errors.As(res.Err, &e) || !errors.As(res.Err, &u) || u.Undecoded {
				t.Fatalf("stop %v err %v (%+v), want StopUnsupported with a decoded *UnsupportedError", res.Stop, res.Err, u)
			}
			if len(rec.kinds(EvTrap)) != 0 {
				t.Errorf("a trap was delivered: %+v", rec.kinds(EvTrap))
			}
			for _, want := range []string{tc.bytes, "pt_start+0x1", "0xffffffff81000001", "not implemented"} {
				if !strings.Contains(res.Err.Error(), want) || !strings.Contains(res.Msg, want) {
					t.Errorf("error %q / msg %q does not name %q", res.Err, res.Msg, want)
				}
			}
			if string(e.Bytes) != string(tc.code) {
				t.Errorf("Error.Bytes % x", e.Bytes)
			}
		})
	}
}

// TestIretdLret: IRETD and a 32-bit far RET in 64-bit kernel code pop
// 4-byte slots and zero-extend the return RIP (a stray one lands at a low
// address); the snippet goldens cover their faults.
func TestIretdLret(t *testing.T) {
	scratch := make([]byte, pageSize)
	const sp = 0x800
	for _, tc := range []struct {
		name  string
		code  []byte
		frame []uint32
		rsp   uint64
		flags uint64
		exit  exitKind
	}{
		{"iretd", []byte{0xcf}, []uint32{0x81000010, 0x10, 0x8d7, 0x12345678, 0x18}, 0x12345678, 0x8d7, exitIret},
		{"lret", []byte{0xcb}, []uint32{0x81000010, 0x10}, goldenScratchAddr + sp + 8, 0x2, exitNone},
		{"lret imm", []byte{0xca, 0x08, 0x00}, []uint32{0x81000010, 0x10}, goldenScratchAddr + sp + 16, 0x2, exitNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, c := newSnippetMachine(t, tc.code, goldenScratchAddr, scratch)
			_ = m
			for i, v := range tc.frame {
				if !c.write(goldenScratchAddr+sp+4*uint64(i), 4, uint64(v)) {
					t.Fatal("frame")
				}
			}
			c.R[RSP] = goldenScratchAddr + sp
			c.RFLAGS = 0x2
			in, err := decodeInst(tc.code, c.RIP)
			if err != nil {
				t.Fatal(err)
			}
			c.exec(in)
			if c.exit != tc.exit || c.RIP != 0x81000010 || c.R[RSP] != tc.rsp || c.RFLAGS != tc.flags {
				t.Errorf("exit %d RIP %#x RSP %#x RFLAGS %#x; want exit %d RIP 0x81000010 RSP %#x RFLAGS %#x",
					c.exit, c.RIP, c.R[RSP], c.RFLAGS, tc.exit, tc.rsp, tc.flags)
			}
		})
	}
}

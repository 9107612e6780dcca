package hostexec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/emu/internal/hostexec"
	"github.com/patchtrace/patchtrace/internal/testkit"
)

// RFLAGS bits, SDM Vol. 1 §3.4.3.
const (
	fCF    = 1 << 0
	fBit1  = 1 << 1 // reserved, always 1
	fPF    = 1 << 2
	fAF    = 1 << 4
	fZF    = 1 << 6
	fSF    = 1 << 7
	fTF    = 1 << 8
	fIF    = 1 << 9
	fDF    = 1 << 10
	fOF    = 1 << 11
	fAC    = 1 << 18
	fArith = fCF | fPF | fAF | fZF | fSF | fOF
)

// Hardware register numbers, the index into State.R.
const (
	rAX = iota
	rCX
	rDX
	rBX
	rSP
	rBP
	rSI
	rDI
	r8
	r9
	r10
	r11
	r12
	r13
	r14
	r15
)

var regNames = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

// run calls hostexec.Run, skipping the test where it is unsupported.
func run(t testing.TB, code []byte, st *hostexec.State) {
	t.Helper()
	if err := hostexec.Run(code, st); err != nil {
		if errors.Is(err, hostexec.ErrUnsupported) {
			t.Skip(err)
		}
		t.Fatalf("Run(% x): %v", code, err)
	}
}

// background fills every register with a distinct value that no case
// produces by accident, so a register written or read by mistake shows.
func background() hostexec.State {
	var st hostexec.State
	for i := range st.R {
		st.R[i] = 0xA5A5_0000_0000_0000 | uint64(i)<<40 | uint64(i)*0x0101_0101
	}
	return st
}

// checkOut compares every register but RSP with want and checks the RFLAGS
// bits the trampoline guarantees whatever the snippet: reserved bit 1 and IF
// set, TF and AC clear.
func checkOut(t *testing.T, got, want *hostexec.State, rspIn uint64) {
	t.Helper()
	for i := range got.R {
		if i == rSP {
			if got.R[i] != rspIn {
				t.Errorf("rsp = %#x, want it left at %#x", got.R[i], rspIn)
			}
			continue
		}
		if got.R[i] != want.R[i] {
			t.Errorf("%s = %#x, want %#x", regNames[i], got.R[i], want.R[i])
		}
	}
	if got.RFLAGS&fBit1 == 0 {
		t.Errorf("rflags = %#x: reserved bit 1 clear", got.RFLAGS)
	}
	if got.RFLAGS&fIF == 0 {
		t.Errorf("rflags = %#x: IF clear", got.RFLAGS)
	}
	if got.RFLAGS&(fTF|fAC) != 0 {
		t.Errorf("rflags = %#x: TF or AC set", got.RFLAGS)
	}
}

func TestRun(t *testing.T) {
	type regs map[int]uint64
	tests := []struct {
		name    string
		code    []byte
		in      regs   // on top of background()
		flags   uint64 // RFLAGS in
		out     regs   // registers the snippet changes; the rest must not
		mask    uint64 // RFLAGS bits compared
		wantFlg uint64 // RFLAGS & mask out
	}{
		{
			// 1+2 = 3 = 0b11: two bits set, even parity.
			name: "add rax,rbx/small", code: []byte{0x48, 0x01, 0xd8},
			in: regs{rAX: 1, rBX: 2}, out: regs{rAX: 3},
			mask: fArith, wantFlg: fPF,
		},
		{
			// Stale input flags must be overwritten.
			name: "add rax,rbx/small flags in", code: []byte{0x48, 0x01, 0xd8},
			in: regs{rAX: 1, rBX: 2}, flags: fArith, out: regs{rAX: 3},
			mask: fArith, wantFlg: fPF,
		},
		{
			// Carry out of bit 63 and out of bit 3, zero result (even parity).
			name: "add rax,rbx/wrap", code: []byte{0x48, 0x01, 0xd8},
			in: regs{rAX: math.MaxUint64, rBX: 1}, out: regs{rAX: 0},
			mask: fArith, wantFlg: fCF | fZF | fPF | fAF,
		},
		{
			// Positive + positive = negative: OF and SF, no CF.
			name: "add rax,rbx/signed overflow", code: []byte{0x48, 0x01, 0xd8},
			in: regs{rAX: math.MaxInt64, rBX: 1}, out: regs{rAX: 1 << 63},
			mask: fArith, wantFlg: fOF | fSF | fAF | fPF,
		},
		{
			// Carry in is taken from the state: 1+2+CF.
			name: "adc rax,rbx/cf in", code: []byte{0x48, 0x11, 0xd8},
			in: regs{rAX: 1, rBX: 2}, flags: fCF, out: regs{rAX: 4},
			mask: fArith, wantFlg: 0,
		},
		{
			// 1-2 borrows out of bit 63 and bit 3; 0xff has eight bits set.
			name: "sub rax,rbx/borrow", code: []byte{0x48, 0x29, 0xd8},
			in: regs{rAX: 1, rBX: 2}, out: regs{rAX: math.MaxUint64},
			mask: fArith, wantFlg: fCF | fSF | fAF | fPF,
		},
		{
			// SF ZF AF PF are undefined after IMUL; CF = OF = result truncated.
			name: "imul rax,rbx/fits", code: []byte{0x48, 0x0f, 0xaf, 0xc3},
			in: regs{rAX: 3, rBX: 0xFFFF_FFFF_FFFF_FFFC}, out: regs{rAX: 0xFFFF_FFFF_FFFF_FFF4}, // 3 * -4 = -12
			mask: fCF | fOF, wantFlg: 0,
		},
		{
			name: "imul rax,rbx/overflow", code: []byte{0x48, 0x0f, 0xaf, 0xc3},
			in: regs{rAX: 1 << 62, rBX: 2}, out: regs{rAX: 1 << 63},
			mask: fCF | fOF, wantFlg: fCF | fOF,
		},
		{
			// A zero count changes neither the flags nor EAX (SDM SAL/SAR/SHL/SHR:
			// "If the count is 0, the flags are not affected").
			name: "shl eax,cl/count 0 flags set", code: []byte{0xd3, 0xe0},
			in: regs{rAX: 0x1234_5678, rCX: 0}, flags: fCF | fSF | fOF | fZF | fPF | fAF,
			mask: fArith, wantFlg: fCF | fSF | fOF | fZF | fPF | fAF,
		},
		{
			name: "shl eax,cl/count 0 flags clear", code: []byte{0xd3, 0xe0},
			in: regs{rAX: 0x1234_5678, rCX: 0}, flags: 0,
			mask: fArith, wantFlg: 0,
		},
		{
			// 0x10000001 << 4: bit 28 is the last out (CF), 32-bit result
			// zero-extends; result 0x10 has one bit set (odd parity).
			name: "shl eax,cl/count 4", code: []byte{0xd3, 0xe0},
			in: regs{rAX: 0xFFFF_FFFF_1000_0001, rCX: 4}, flags: fZF | fPF,
			out:  regs{rAX: 0x10},
			mask: fCF | fZF | fSF | fPF, wantFlg: fCF,
		},
		{
			// LAHF: AH = SF:ZF:0:AF:0:PF:1:CF, read from the loaded flags.
			name: "lahf", code: []byte{0x9f},
			in: regs{rAX: 0}, flags: fSF | fAF | fCF,
			out:  regs{rAX: (0x80 | 0x10 | 0x02 | 0x01) << 8},
			mask: fArith, wantFlg: fSF | fAF | fCF,
		},
		{
			// SETO AL: OF is not in LAHF.
			name: "seto al", code: []byte{0x0f, 0x90, 0xc0},
			in: regs{rAX: 0xFF00}, flags: fOF, out: regs{rAX: 0xFF01},
			mask: fArith | fDF, wantFlg: fOF,
		},
		{
			name: "std", code: []byte{0xfd},
			mask: fArith | fDF, wantFlg: fDF,
		},
		{
			name: "cld", code: []byte{0xfc}, flags: fDF | fZF,
			mask: fArith | fDF, wantFlg: fZF,
		},
		{
			name: "empty/df round trip", code: nil, flags: fDF,
			mask: fArith | fDF, wantFlg: fDF,
		},
		{
			// Every loadable bit set, TF and AC too: they must not reach the
			// CPU (TF would raise SIGTRAP, AC SIGBUS on misaligned accesses).
			name: "empty/all flags in", code: nil, flags: math.MaxUint64,
			mask: fArith | fDF | fTF | fAC, wantFlg: fArith | fDF,
		},
		{
			name: "ret", code: []byte{0xc3}, flags: fCF | fOF,
			mask: fArith | fDF, wantFlg: fCF | fOF,
		},
		{
			// xchg r14, r15; g and the GOT register hold snippet values.
			name: "xchg r14,r15", code: []byte{0x4d, 0x87, 0xfe},
			in: regs{r14: 14, r15: 15}, out: regs{r14: 15, r15: 14},
			mask: fArith, wantFlg: 0,
		},
		{
			// A balanced push/pop, which the package doc allows.
			name: "push rax; pop rbx", code: []byte{0x50, 0x5b},
			in: regs{rAX: 0x1234_5678_9ABC_DEF0}, out: regs{rBX: 0x1234_5678_9ABC_DEF0},
		},
		{
			// rbp is the frame pointer in Go.
			name: "lea rbp,[rbp+1]", code: []byte{0x48, 0x8d, 0x6d, 0x01},
			in: regs{rBP: 41}, out: regs{rBP: 42},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := background()
			for r, v := range tt.in {
				st.R[r] = v
			}
			st.RFLAGS = tt.flags
			want := st
			for r, v := range tt.out {
				want.R[r] = v
			}
			rsp := st.R[rSP]
			run(t, tt.code, &st)
			checkOut(t, &st, &want, rsp)
			if got := st.RFLAGS & tt.mask; got != tt.wantFlg {
				t.Errorf("rflags = %#x: masked by %#x got %#x, want %#x", st.RFLAGS, tt.mask, got, tt.wantFlg)
			}
		})
	}
}

// TestRegisterOrder moves each register to and from RAX, so a register
// loaded from or stored to the wrong State.R slot shows even where a round
// trip would not.
func TestRegisterOrder(t *testing.T) {
	for i := range 16 {
		if i == rSP {
			continue
		}
		// MOV r/m64, r64: REX.W (+R for reg ≥ 8, +B for r/m ≥ 8) 89 /r, mod=11.
		from := []byte{0x48 | byte(i>>3)<<2, 0x89, 0xC0 | byte(i&7)<<3} // mov rax, reg
		to := []byte{0x48 | byte(i>>3), 0x89, 0xC0 | byte(i&7)}         // mov reg, rax
		t.Run("mov rax,"+regNames[i], func(t *testing.T) {
			st := background()
			want := st
			want.R[rAX] = st.R[i]
			rsp := st.R[rSP]
			run(t, from, &st)
			checkOut(t, &st, &want, rsp)
		})
		t.Run("mov "+regNames[i]+",rax", func(t *testing.T) {
			st := background()
			want := st
			want.R[i] = st.R[rAX]
			rsp := st.R[rSP]
			run(t, to, &st)
			checkOut(t, &st, &want, rsp)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	values := []struct {
		name string
		st   func() hostexec.State
	}{
		{"background", background},
		{"zero", func() hostexec.State { return hostexec.State{} }},
		{"ones", func() hostexec.State {
			var st hostexec.State
			for i := range st.R {
				st.R[i] = math.MaxUint64
			}
			st.RFLAGS = fArith | fDF
			return st
		}},
	}
	for _, code := range [][]byte{nil, {0xc3}, {0x90, 0x90, 0x90}} {
		for _, v := range values {
			t.Run(fmt.Sprintf("% x/%s", code, v.name), func(t *testing.T) {
				st := v.st()
				st.R[rSP] = 0xDEAD_BEEF // ignored on input, left alone
				want := st
				run(t, code, &st)
				checkOut(t, &st, &want, 0xDEAD_BEEF)
				if got, want := st.RFLAGS&(fArith|fDF), want.RFLAGS&(fArith|fDF); got != want {
					t.Errorf("rflags & (arith|DF) = %#x, want %#x", got, want)
				}
			})
		}
	}
}

func TestScratch(t *testing.T) {
	mem, addr := hostexec.Scratch()
	if mem == nil {
		var st hostexec.State
		run(t, nil, &st) // skips if unsupported
		t.Fatal("Scratch returned nil on a supported platform")
	}
	page := uint64(os.Getpagesize())
	if len(mem) < 4096 || addr%page != 0 {
		t.Fatalf("Scratch: %d bytes at %#x, want at least 4096, page aligned", len(mem), addr)
	}
	if mem2, addr2 := hostexec.Scratch(); addr2 != addr || len(mem2) != len(mem) {
		t.Fatalf("second Scratch: %d bytes at %#x, want %d at %#x", len(mem2), addr2, len(mem), addr)
	}
	clear(mem)

	t.Run("load", func(t *testing.T) {
		binary.LittleEndian.PutUint64(mem[8:], 0x0807_0605_0403_0201)
		st := background()
		st.R[rSI] = addr + 8
		want := st
		want.R[rAX] = 0x0807_0605_0403_0201
		run(t, []byte{0x48, 0x8b, 0x06}, &st) // mov rax, [rsi]
		checkOut(t, &st, &want, st.R[rSP])
	})
	t.Run("store", func(t *testing.T) {
		st := background()
		st.R[rSI] = addr + 16
		st.R[rAX] = 0x1122_3344_5566_7788
		want := st
		run(t, []byte{0x48, 0x89, 0x06}, &st) // mov [rsi], rax
		checkOut(t, &st, &want, st.R[rSP])
		if got := binary.LittleEndian.Uint64(mem[16:]); got != 0x1122_3344_5566_7788 {
			t.Errorf("scratch[16:24] = %#x, want %#x", got, uint64(0x1122_3344_5566_7788))
		}
		if got := mem[last(mem)]; got != 0 {
			t.Errorf("last scratch byte = %#x, want untouched 0", got)
		}
	})
	t.Run("last byte", func(t *testing.T) {
		st := background()
		st.R[rDI] = addr + uint64(last(mem))
		st.R[rAX] = 0x77
		want := st
		run(t, []byte{0x88, 0x07}, &st) // mov [rdi], al
		checkOut(t, &st, &want, st.R[rSP])
		if got := mem[last(mem)]; got != 0x77 {
			t.Errorf("last scratch byte = %#x, want 0x77", got)
		}
	})
	t.Run("movsq backwards", func(t *testing.T) {
		// With DF=1 MOVSQ copies [rsi] to [rdi] and decrements both by 8.
		binary.LittleEndian.PutUint64(mem[64:], 0xCAFE_F00D)
		binary.LittleEndian.PutUint64(mem[128:], 0)
		st := background()
		st.R[rSI], st.R[rDI] = addr+64, addr+128
		st.RFLAGS = fDF
		want := st
		want.R[rSI], want.R[rDI] = addr+56, addr+120
		run(t, []byte{0x48, 0xa5}, &st)
		checkOut(t, &st, &want, st.R[rSP])
		if st.RFLAGS&fDF == 0 {
			t.Errorf("rflags = %#x: DF clear", st.RFLAGS)
		}
		if got := binary.LittleEndian.Uint64(mem[128:]); got != 0xCAFE_F00D {
			t.Errorf("scratch[128:136] = %#x, want 0xcafef00d", got)
		}
	})
}

func last(b []byte) int { return len(b) - 1 }

// TestGoDFClear leaves DF set in the snippet and then has Go clear and copy
// memory, which goes wrong if the trampoline hands DF=1 back to Go code: on
// CPUs with ERMS, clearing 2 KiB to 32 MiB uses REP STOSQ, which with DF set
// runs downwards from the start of the region; without AVX, copying uses
// REP MOVSQ. The regions sit in the middle of one allocation so a wrong
// direction stays inside it.
func TestGoDFClear(t *testing.T) {
	const n = 64 << 10
	buf := make([]byte, 3*n)
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i*7) | 1
	}
	for range 10 {
		for i := range buf {
			buf[i] = 0xAB
		}
		st := background()
		run(t, []byte{0xfd}, &st) // std
		clear(buf[n : 2*n])
		if st.RFLAGS&fDF == 0 {
			t.Fatalf("rflags = %#x: std left DF clear", st.RFLAGS)
		}
		for i, b := range buf {
			want := byte(0xAB)
			if i >= n && i < 2*n {
				want = 0
			}
			if b != want {
				t.Fatalf("clear after a snippet that set DF: buf[%d] = %#x, want %#x", i, b, want)
			}
		}
		run(t, []byte{0xfd}, &st)
		copy(buf[n:2*n], src)
		if !bytes.Equal(buf[n:2*n], src) || buf[n-1] != 0xAB || buf[2*n] != 0xAB {
			t.Fatal("copy after a snippet that set DF went wrong")
		}
	}
}

func TestErrors(t *testing.T) {
	var st hostexec.State
	run(t, nil, &st) // skips if unsupported
	if err := hostexec.Run(nil, nil); err == nil {
		t.Error("Run(nil, nil) = nil, want an error")
	}
	if err := hostexec.Run(make([]byte, 1<<20), &st); err == nil {
		t.Error("Run(1 MiB snippet) = nil, want an error")
	}
	// The page still works afterwards.
	st = background()
	st.R[rAX], st.R[rBX] = 40, 2
	run(t, []byte{0x48, 0x01, 0xd8}, &st)
	if st.R[rAX] != 42 {
		t.Errorf("add after errors: rax = %d, want 42", st.R[rAX])
	}
}

func parity(v uint64) uint64 {
	if bits.OnesCount8(uint8(v))%2 == 0 {
		return fPF
	}
	return 0
}

func szp(r uint64) uint64 {
	f := parity(r)
	if r == 0 {
		f |= fZF
	}
	if int64(r) < 0 {
		f |= fSF
	}
	return f
}

// op is one randomised instruction with its result computed in Go.
type op struct {
	name string
	code []byte
	// eval returns RAX and the flags under mask after rax OP rbx.
	eval func(a, b uint64) (rax, flags uint64)
	mask uint64
}

var ops = []op{
	{"add rax,rbx", []byte{0x48, 0x01, 0xd8}, func(a, b uint64) (uint64, uint64) {
		r, c := bits.Add64(a, b, 0)
		f := szp(r) | c*fCF | (a^b^r)&fAF
		if (a^r)&(b^r)>>63 != 0 {
			f |= fOF
		}
		return r, f
	}, fArith},
	{"sub rax,rbx", []byte{0x48, 0x29, 0xd8}, func(a, b uint64) (uint64, uint64) {
		r, c := bits.Sub64(a, b, 0)
		f := szp(r) | c*fCF | (a^b^r)&fAF
		if (a^b)&(a^r)>>63 != 0 {
			f |= fOF
		}
		return r, f
	}, fArith},
	{"xor rax,rbx", []byte{0x48, 0x31, 0xd8}, func(a, b uint64) (uint64, uint64) {
		r := a ^ b
		return r, szp(r) // CF = OF = 0, AF undefined
	}, fCF | fPF | fZF | fSF | fOF},
	{"imul rax,rbx", []byte{0x48, 0x0f, 0xaf, 0xc3}, func(a, b uint64) (uint64, uint64) {
		hi, lo := bits.Mul64(a, b)
		// Signed high half from the unsigned one.
		if int64(a) < 0 {
			hi -= b
		}
		if int64(b) < 0 {
			hi -= a
		}
		if hi != uint64(int64(lo)>>63) {
			return lo, fCF | fOF
		}
		return lo, 0
	}, fCF | fOF},
}

var edges = []uint64{0, 1, 2, 0xF, 0x10, 0x7F, 0x80, 0xFF, math.MaxInt32, 1 << 31, math.MaxUint32,
	math.MaxInt64, 1 << 63, math.MaxUint64, math.MaxUint64 - 1}

func operand(r *rand.Rand) uint64 {
	if r.IntN(3) == 0 {
		return edges[r.IntN(len(edges))]
	}
	return r.Uint64()
}

// TestStress runs snippets from several goroutines at once while others
// collect garbage and allocate, checking every result.
func TestStress(t *testing.T) {
	var probe hostexec.State
	run(t, nil, &probe) // skips if unsupported
	calls := 20000
	if testing.Short() {
		calls = 2000
	}
	workers := max(4, min(8, runtime.GOMAXPROCS(0)))
	seed := testkit.Seed(t)
	mem, addr := hostexec.Scratch()

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	})
	var sink [][]byte
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				sink = append(sink, make([]byte, 1<<10))
				if len(sink) > 1<<10 {
					sink = nil
				}
			}
		}
	})

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			off := uint64(w) * 64 // this worker's part of the scratch page
			for i := range calls / workers {
				st := background()
				a, b := operand(r), operand(r)
				st.R[rAX], st.R[rBX] = a, b
				st.RFLAGS = r.Uint64() & (fArith | fDF)
				if i%8 == 7 {
					// mov [rsi], rax; mov rbx, [rsi]
					st.R[rSI] = addr + off
					want := st
					want.R[rBX] = a
					if err := hostexec.Run([]byte{0x48, 0x89, 0x06, 0x48, 0x8b, 0x1e}, &st); err != nil {
						t.Errorf("worker %d call %d: %v", w, i, err)
						return
					}
					if st.R != want.R || st.RFLAGS&(fArith|fDF) != want.RFLAGS&(fArith|fDF) {
						t.Errorf("worker %d call %d: store/load %#x: got %+v, want %+v", w, i, a, st, want)
						return
					}
					if got := binary.LittleEndian.Uint64(mem[off:]); got != a {
						t.Errorf("worker %d call %d: scratch = %#x, want %#x", w, i, got, a)
						return
					}
					continue
				}
				o := ops[r.IntN(len(ops))]
				want := st
				var flags uint64
				want.R[rAX], flags = o.eval(a, b)
				if err := hostexec.Run(o.code, &st); err != nil {
					t.Errorf("worker %d call %d: %v", w, i, err)
					return
				}
				if st.R != want.R || st.RFLAGS&o.mask != flags || st.RFLAGS&fDF != want.RFLAGS&fDF {
					t.Errorf("worker %d call %d: %s with rax=%#x rbx=%#x: got rax=%#x rflags=%#x (mask %#x), want rax=%#x flags %#x; registers %x, want %x",
						w, i, o.name, a, b, st.R[rAX], st.RFLAGS, o.mask, want.R[rAX], flags, st.R, want.R)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
}

// TestLongSnippet runs a snippet long enough for the runtime to try to
// preempt it (sysmon asks after 10ms; the GC asks for stop-the-world) and
// for CPU-profiling signals to land in it, with R14 not holding g.
func TestLongSnippet(t *testing.T) {
	var probe hostexec.State
	run(t, nil, &probe) // skips if unsupported
	// mov ecx, n; L: dec ecx; jnz L
	const n = 300_000_000
	loop := []byte{0xb9, n & 0xff, n >> 8 & 0xff, n >> 16 & 0xff, n >> 24, 0xff, 0xc9, 0x75, 0xfc}
	rounds := 5
	if testing.Short() {
		rounds = 1
	}
	if err := pprof.StartCPUProfile(io.Discard); err == nil {
		defer pprof.StopCPUProfile()
	} else {
		t.Logf("no CPU profile: %v", err)
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				_ = make([]byte, 1<<20)
			}
		}
	})
	defer bg.Wait()
	defer close(stop)
	for i := range rounds {
		st := background()
		st.R[r14] = 0 // a nil g, should anything read it
		st.R[r15] = 0
		want := st
		want.R[rCX] = 0
		start := time.Now()
		run(t, loop, &st)
		if i == 0 {
			t.Logf("%d iterations in %v", n, time.Since(start))
		}
		checkOut(t, &st, &want, st.R[rSP])
		if st.RFLAGS&fZF == 0 {
			t.Errorf("round %d: rflags = %#x: ZF clear after the loop", i, st.RFLAGS)
		}
	}
}

func BenchmarkRun(b *testing.B) {
	add := []byte{0x48, 0x01, 0xd8}
	sub := []byte{0x48, 0x29, 0xd8}
	var st hostexec.State
	run(b, add, &st) // skips if unsupported
	b.Run("same", func(b *testing.B) {
		// The snippet stays loaded: no mprotect.
		b.ReportAllocs()
		for b.Loop() {
			if err := hostexec.Run(add, &st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("alternating", func(b *testing.B) {
		// Every call loads a new snippet: two mprotect calls.
		b.ReportAllocs()
		code := [2][]byte{add, sub}
		i := 0
		for b.Loop() {
			if err := hostexec.Run(code[i&1], &st); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

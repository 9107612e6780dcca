package emu

import (
	"bufio"
	"bytes"
	"context"
	hexenc "encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchtrace/patchtrace/emu/internal/hostexec"
)

// Host #UD probing. hostexec cannot survive a faulting snippet (without cgo
// the Go runtime's handler turns a SIGILL in foreign code into a crash), so
// a byte sequence's fate on the host CPU is observed from a child process:
// the test binary re-executed with PATCHTRACE_HOSTPROBE set, running the
// sequences one by one and saying so on stdout; the parent reads which one
// the child died on and the signal and PC from the runtime's crash report.
// A fault at the snippet's first byte with SIGILL is #UD; with SIGSEGV it is
// #GP (si_code SI_KERNEL) or #PF (probes keep memory operands on the
// scratch page).

// hostOutcome is what the host CPU did with one byte sequence.
type hostOutcome string

const (
	hostRan   hostOutcome = "ran"   // completed (or faulted elsewhere than its first byte)
	hostUD    hostOutcome = "#UD"   // SIGILL at the first byte
	hostGP    hostOutcome = "#GP"   // SIGSEGV with si_code SI_KERNEL at the first byte: #GP
	hostPF    hostOutcome = "#PF"   // SIGSEGV or SIGBUS with a fault address at the first byte: #PF
	hostTrap  hostOutcome = "trap"  // SIGTRAP (int3, or control left the snippet into the INT3 fill)
	hostOther hostOutcome = "other" // another signal, a fault elsewhere, or a hang
)

const hostProbeEnv = "PATCHTRACE_HOSTPROBE"

// TestHostProbeChild is the child process; it does nothing in a normal run.
func TestHostProbeChild(t *testing.T) {
	if os.Getenv(hostProbeEnv) == "" {
		t.Skip("child process of hostProbe only")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Printf("bad stdin %v\n", err)
		os.Exit(3)
	}
	list := strings.TrimSpace(string(in))
	mem, addr := hostexec.Scratch()
	if mem == nil {
		fmt.Println("nohost")
		os.Exit(0)
	}
	fmt.Printf("code %#x\n", hostexec.CodeAddr())
	for i, hx := range strings.Split(list, ",") {
		code, err := hexenc.DecodeString(hx)
		if err != nil {
			fmt.Printf("bad %d\n", i)
			os.Exit(3)
		}
		var st hostexec.State
		for r := range st.R {
			st.R[r] = addr + 0x800 // memory operands land on the scratch page
		}
		st.RFLAGS = 0x2
		fmt.Printf("start %d\n", i)
		if err := hostexec.Run(code, &st); err != nil {
			fmt.Printf("error %d %v\n", i, err)
			os.Exit(3)
		}
		fmt.Printf("done %d\n", i)
	}
	os.Exit(0)
}

var (
	crashRe = regexp.MustCompile(`(?m)^(SIG[A-Z]+): .*\nPC=(0x[0-9a-f]+)`)
	segvRe  = regexp.MustCompile(`\[signal (SIGSEGV|SIGBUS): .* code=(0x[0-9a-f]+) addr=0x[0-9a-f]+ pc=(0x[0-9a-f]+)\]`)
)

// hostProbe runs each sequence on the host CPU and reports what happened.
// Each sequence runs as a snippet (followed by RET) with every register but
// RSP pointing into the scratch page. It skips t when the host cannot run
// code.
func hostProbe(t *testing.T, seqs [][]byte) []hostOutcome {
	t.Helper()
	hostOrSkip(t)
	out := make([]hostOutcome, len(seqs))
	for i := 0; i < len(seqs); {
		var hx []string
		for _, s := range seqs[i:] {
			hx = append(hx, hexenc.EncodeToString(s))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostProbeChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), hostProbeEnv+"=1", "GOTRACEBACK=single")
		cmd.Stdin = strings.NewReader(strings.Join(hx, ","))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr := cmd.Run()
		cancel()
		var codeAddr uint64
		started, done := -1, -1
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "nohost":
				t.Skip("hostexec: no host execution")
			case "code":
				codeAddr, _ = strconv.ParseUint(f[1], 0, 64)
			case "start":
				started, _ = strconv.Atoi(f[1])
			case "done":
				done, _ = strconv.Atoi(f[1])
				out[i+done] = hostRan
			case "bad", "error":
				t.Fatalf("probe child: %s\n%s", sc.Text(), stderr.String())
			}
		}
		if runErr == nil {
			if done != len(seqs)-i-1 {
				t.Fatalf("probe child exited early:\n%s\n%s", stdout.String(), stderr.String())
			}
			break
		}
		if started < 0 || started == done {
			t.Fatalf("probe child failed outside a snippet: %v\n%s\n%s", runErr, stdout.String(), stderr.String())
		}
		o := hostOther
		if m := crashRe.FindStringSubmatch(stderr.String()); m != nil {
			// SIGILL and SIGTRAP: "SIGILL: illegal instruction\nPC=0x...".
			pc, _ := strconv.ParseUint(m[2], 0, 64)
			switch {
			case m[1] == "SIGTRAP":
				o = hostTrap
			case m[1] == "SIGILL" && pc == codeAddr:
				o = hostUD
			}
		} else if m := segvRe.FindStringSubmatch(stderr.String()); m != nil {
			// SIGSEGV/SIGBUS: "[signal SIGSEGV: ... code=0x80 addr=0x0 pc=0x...]".
			pc, _ := strconv.ParseUint(m[3], 0, 64)
			switch {
			case pc != codeAddr:
			case m[2] == "0x80": // SI_KERNEL: #GP
				o = hostGP
			default:
				o = hostPF
			}
		}
		out[i+started] = o
		i += started + 1
	}
	return out
}

// TestHostProbeSelf checks the probe itself on sequences whose fate is
// known from the SDM.
func TestHostProbeSelf(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	seqs := [][]byte{{0x90}, {0x0f, 0x0b}, {0x48, 0x01, 0xc0}, {0x06}, {0xfa}, {0xcc}, {0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00}}
	want := []hostOutcome{hostRan, hostUD, hostRan, hostUD, hostGP, hostTrap, hostPF}
	got := hostProbe(t, seqs)
	for i := range seqs {
		if got[i] != want[i] {
			t.Errorf("% x: host %s, want %s", seqs[i], got[i], want[i])
		}
	}
}

// decoderVerdict is what decodeInst makes of a byte sequence: "#UD",
// "#GP", "ok" (an instruction the interpreter executes) or "unsupported".
func decoderVerdict(code []byte) string {
	in, err := decodeInst(code, snippetCodeBase)
	switch {
	case err != nil:
		return "unsupported"
	case in.sem.op == opUD:
		return "#UD"
	case in.sem.op == opGP:
		return "#GP"
	}
	return "ok"
}

// probeSafe reports whether seq may run in a probe child: no system call
// or software interrupt (their registers hold scratch addresses, not
// numbers the kernel is known to reject).
func probeSafe(seq []byte) bool {
	p := 0
	for p < len(seq) && (isLegacyPrefix(seq[p]) || seq[p]&0xf0 == 0x40) {
		p++
	}
	if p >= len(seq) {
		return true
	}
	switch seq[p] {
	case 0xcd, 0xcc, 0xf1: // INT n, INT3, INT1
		return false
	case 0x0f:
		if p+1 < len(seq) && (seq[p+1] == 0x05 || seq[p+1] == 0x34 || seq[p+1] == 0x07 || seq[p+1] == 0x35) {
			return false // SYSCALL SYSENTER SYSRET SYSEXIT
		}
	}
	return true
}

// sweepSeqs enumerates opcode-map cells: every one-byte and 0F xx opcode
// (prefix bytes excepted), each with a ModRM byte for every /digit in
// register (mod 11) and memory ([rax]) form, then zeros. With lock, each
// memory form also gets a LOCK prefix.
func sweepSeqs(lock bool) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	add := func(s []byte) {
		if !probeSafe(s) || seen[string(s)] {
			return
		}
		seen[string(s)] = true
		out = append(out, s)
	}
	for _, esc := range [][]byte{nil, {0x0f}} {
		for op := 0; op < 256; op++ {
			if esc == nil && (isLegacyPrefix(byte(op)) || op&0xf0 == 0x40 || op == 0x0f) {
				continue
			}
			if esc != nil && (op == 0x38 || op == 0x3a) {
				continue // three-byte maps: not swept
			}
			for reg := 0; reg < 8; reg++ {
				for _, mod := range []byte{0x00, 0xc0} {
					s := append(append([]byte(nil), esc...), byte(op), mod|byte(reg)<<3)
					s = append(s, make([]byte, 8)...)
					// Cut to the decoded length so trailing bytes do not
					// run as instructions of their own.
					if in, err := decodeInst(s, snippetCodeBase); err == nil && in.sem.op != opUD {
						s = s[:in.len]
					}
					add(s)
					if lock && mod == 0 {
						add(append([]byte{0xf0}, s...))
					}
				}
			}
		}
	}
	return out
}

// TestHostOpcodeSweep (-long) runs every opcode-map cell of sweepSeqs on the
// host and checks the decoder's verdicts: what it calls #UD or #GP faults
// so on the host, and nothing it executes is #UD there. Host #UDs the
// decoder reports as unsupported (it does not know them to be invalid) are
// logged: they stop a run honestly, but less precisely than hardware.
func TestHostOpcodeSweep(t *testing.T) {
	if !*longTests {
		t.Skip("-long only: runs a child process per #UD")
	}
	seqs := sweepSeqs(true)
	host := hostProbe(t, seqs)
	var vague []string
	for i, s := range seqs {
		dv := decoderVerdict(s)
		h := host[i]
		if why, ok := amdDifferences[fmt.Sprintf("% x", s[:min(len(s), 4)])]; ok {
			t.Logf("% x: decoder %s, host %s: %s", s, dv, h, why)
			continue
		}
		switch {
		case dv == "#UD" && h != hostUD, dv == "#GP" && h != hostGP:
			t.Errorf("% x (%s): decoder %s, host %s", s, gnu(s), dv, h)
		case dv == "ok" && h == hostUD:
			t.Errorf("% x (%s): decoder executes it, host #UD", s, gnu(s))
		case dv == "unsupported" && h == hostUD:
			vague = append(vague, fmt.Sprintf("% x", s))
		}
	}
	t.Logf("%d sequences; %d host #UDs the decoder calls unsupported:\n%s", len(seqs), len(vague), strings.Join(vague, "\n"))
}

// amdDifferences are sweep cells where the host (an AMD CPU) and the SDM
// disagree; the decoder follows the SDM.
var amdDifferences = map[string]string{
	"f0 0f 00 28": "AMD executes LOCK VERW; the SDM says LOCK on VERW is #UD",
	"f0 0f 20 00": "AMD's LOCK MOV CR0 is MOV CR8 (CPUID AltMovCr8); Intel #UD",
	"f0 0f 22 00": "AMD's LOCK MOV CR0 is MOV CR8 (CPUID AltMovCr8); Intel #UD",
}

// invalidLine is one line of testdata/insn/ud/invalid.txt.
type invalidLine struct {
	code    []byte
	verdict string
	where   string
}

func invalidCorpus(t *testing.T) []invalidLine {
	t.Helper()
	f, err := os.Open("testdata/insn/ud/invalid.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []invalidLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		hx, v, ok := strings.Cut(line, "|")
		code, err := hexenc.DecodeString(strings.ReplaceAll(strings.TrimSpace(hx), " ", ""))
		v = strings.TrimSpace(v)
		if !ok || err != nil || (v != "#UD" && v != "#GP" && v != "ok" && v != "unsupported") {
			t.Fatalf("invalid.txt:%d: %q: want \"bytes | #UD|#GP|ok|unsupported\"", n, line)
		}
		lines = append(lines, invalidLine{code, v, fmt.Sprintf("invalid.txt:%d", n)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestHostInvalidCorpus checks testdata/insn/ud/invalid.txt: the decoder's
// verdict always, the host CPU's (in child processes) unless -short.
func TestHostInvalidCorpus(t *testing.T) {
	var seqs [][]byte
	var want []string
	var lines []string
	for _, l := range invalidCorpus(t) {
		if got := decoderVerdict(l.code); got != l.verdict {
			t.Errorf("%s: % x (%s): decoder %s, want %s", l.where, l.code, gnu(l.code), got, l.verdict)
		}
		seqs, want, lines = append(seqs, l.code), append(want, l.verdict), append(lines, l.where)
	}
	if testing.Short() {
		return
	}
	host := hostProbe(t, seqs)
	for i, h := range host {
		var ok bool
		switch want[i] {
		case "#UD":
			ok = h == hostUD
		case "#GP":
			ok = h == hostGP
		case "ok":
			ok = h != hostUD && h != hostGP
		default: // unsupported: valid, though it may fault (XGETBV #GP with a bad ECX)
			ok = h != hostUD
		}
		if !ok {
			t.Errorf("%s: % x (%s): %s, but the host CPU: %s", lines[i], seqs[i], gnu(seqs[i]), want[i], h)
		}
	}
}

package emu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Single-step differential test. hostexec cannot run a snippet with TF set
// (the #DB becomes a SIGTRAP the Go runtime does not survive), so the truth
// source here is a small C program, built with the system gcc and run as a
// child process: it installs a SIGTRAP handler (SA_SIGINFO) that records the
// saved RIP of each single-step trap, then runs the snippet. On Linux a
// user-mode single-step #DB becomes one SIGTRAP whose context RIP is the
// trap's saved RIP; the handler runs with TF clear and sigreturn restores
// TF, exactly as the emulator's #DB handler (a bare IRETQ) does. The same
// bytes then run on the emulator and the trap RIPs (offsets from the
// snippet start) must agree.
//
// The snippet covers the rules single-stepping depends on (SDM Vol. 3
// §17.3.1.4, §6.8.3): the POPF that sets TF does not trap, every later
// instruction does once, MOV SS holds its trap for one instruction (one
// trap for MOV SS and the nop after it), and the POPF that clears TF still
// traps while the instruction after it does not. The host runs it at CPL 3
// with the user SS, the emulator at CPL 0 with the kernel SS: MOV SS reloads
// whatever SS holds, valid in both.
var singleStepSnippet = cat(
	asmPushf,           // 0: a copy of RFLAGS without TF, for the last POPF
	asmSetTF,           // 1: pushfq; orq $0x100,(%rsp); popfq -> TF=1, no trap
	asmNop,             // 11: trap, returns to 12
	asmNop,             // 12: trap -> 13
	asmMovFSS,          // 13: mov %ss,%ecx: trap -> 15
	[]byte{0x8e, 0xd1}, // 15: mov %ecx,%ss: trap held
	asmNop,             // 17: trap -> 18 (for both)
	asmPopf,            // 18: TF := 0, but TF was set as it started: trap -> 19
	asmNop,             // 19: no trap
)

const hostStepProgram = `
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

extern void snippet(void);
__asm__(".text\n.globl snippet\nsnippet:\n.byte %s\nret\n");

static volatile unsigned long rips[64];
static volatile int n;

static void trap(int sig, siginfo_t *si, void *ctx) {
	ucontext_t *uc = ctx;
	(void)sig; (void)si;
	if (n < 64)
		rips[n++] = uc->uc_mcontext.gregs[REG_RIP];
}

int main(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = trap;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGTRAP, &sa, 0))
		return 2;
	snippet();
	for (int i = 0; i < n; i++)
		printf("%%ld\n", (long)(rips[i] - (unsigned long)snippet));
	return 0;
}
`

// hostSingleStep returns the snippet offsets the host's single-step traps
// return to, or skips when the host cannot show it.
func hostSingleStep(t *testing.T, code []byte) []uint64 {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the host truth source needs linux/amd64")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the host single-step program")
	}
	var bytes []string
	for _, b := range code {
		bytes = append(bytes, fmt.Sprintf("%#x", b))
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "step.c")
	if err := os.WriteFile(src, []byte(fmt.Sprintf(hostStepProgram, strings.Join(bytes, ","))), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "step")
	if out, err := exec.Command(gcc, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("host single-step program: %v", err)
	}
	var offs []uint64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("host output %q: %v", out, err)
		}
		offs = append(offs, v)
	}
	// The host also traps on the RET after the snippet and inside the
	// caller until the last POPF takes effect; keep the traps inside it.
	var in []uint64
	for _, o := range offs {
		if o <= uint64(len(code)) {
			in = append(in, o)
		}
	}
	return in
}

func TestSingleStepMatchesHost(t *testing.T) {
	host := hostSingleStep(t, singleStepSnippet)
	img := testImage(t, cat(singleStepSnippet, asmSelf), dbHandler)
	m, rec := newTestMachine(t, img, Quirks{})
	c := m.cpus[0]
	end := testText + uint64(len(singleStepSnippet))
	for i := 0; i < 100 && c.RIP != end; i++ {
		step(m)
	}
	if c.RIP != end {
		t.Fatalf("the emulator did not reach the end of the snippet: RIP %#x", c.RIP)
	}
	var emu []uint64
	for _, r := range dbTraps(t, rec) {
		emu = append(emu, r-testText)
	}
	t.Logf("host traps return to offsets %v; emulator %v", host, emu)
	if fmt.Sprint(host) != fmt.Sprint(emu) {
		t.Fatalf("single-step traps differ: host %v, emulator %v", host, emu)
	}
	if want := "[12 13 15 18 19]"; fmt.Sprint(emu) != want {
		t.Fatalf("emulator traps %v, want %s (SDM Vol. 3 §17.3.1.4, §6.8.3)", emu, want)
	}
}

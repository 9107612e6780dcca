// Package hostexec runs a snippet of x86-64 machine code on the host CPU
// with a given register state and returns the state after it, so tests can
// check the emulator's instruction semantics against real hardware (see
// emu/hostdiff_isa_test.go and the goldens in emu/testdata/insn).
//
// # How
//
// [Run] copies the snippet to the start of a code page, appends a RET
// (0xC3) and CALLs it from a Go assembly trampoline (hostexec_amd64.s). The
// trampoline saves what Go needs (BP, R14 = g, R15), loads the fifteen
// general-purpose registers other than RSP and the arithmetic flags and DF
// from a [State], calls the snippet, stores all of them and the full RFLAGS
// back, then clears DF and restores Go's registers. The code page is mapped
// r-x and only made rw- while a new snippet is copied in; Scratch gives a
// rw- page, between two PROT_NONE guard pages, that snippets may reach
// through registers. Snippets run one at a time, under a mutex, on a thread
// locked to the calling goroutine.
//
// # Snippets
//
// A snippet is straight-line code: control may move within it (a loop is
// fine) but must leave by falling off its end into the appended RET. It
// must
//
//   - leave RSP as it found it: it runs on the calling goroutine's stack,
//     8 bytes below the trampoline's frame. RSP is not part of the
//     comparison ([State].R[4] is ignored and left unchanged). A balanced
//     PUSH/POP of a few words is harmless (the runtime keeps a few hundred
//     bytes free below a nosplit frame), but memory below RSP is not
//     compared and signals do not use it;
//   - not touch memory other than the Scratch page;
//   - not fault: #UD, #DE, #GP, #PF, INT3 and the like raise a signal the Go
//     runtime cannot turn into a panic in code it did not generate, so the
//     process dies. Filter such cases (DIV by zero, invalid encodings,
//     privileged instructions, stray addresses) before calling Run. The
//     rest of the code page holds INT3, so a jump out of the snippet dies
//     with SIGTRAP rather than running stale bytes;
//   - not change FS or GS (the runtime finds g through FS), the x87 control
//     word or MXCSR, and it must terminate: the goroutine cannot be
//     preempted while the snippet runs, so a long one stalls stop-the-world
//     phases of the garbage collector until it finishes.
//
// Vector registers are neither loaded nor compared; the trampoline zeroes
// X15 afterwards, as Go's internal ABI requires.
//
// # Signals and preemption
//
// Signals may arrive while R14 and the other registers hold snippet values.
// That is safe: Go's signal handler (runtime·sigtramp) runs on the thread's
// signal stack and loads g from thread-local storage, not from R14, and an
// asynchronous preemption request (SIGURG) is not acted upon at a PC with
// no Go function table, nor in an assembly function (runtime
// isAsyncSafePoint), so the trampoline and the snippet run to completion.
// CPU profiling samples taken there are attributed to external code. The
// kernel clears DF for the handler. The stress tests exercise this with
// garbage collection, allocation and CPU profiling running alongside.
//
// # Why no cgo
//
// The module builds with CGO_ENABLED=0, and the standard library's
// syscall.Mmap and syscall.Mprotect plus a page of Go assembly are all this
// needs (as in gVisor's kvm/testutil and wazero's platform/mmap_linux.go).
// Without cgo the process cannot install its own SIGSEGV/SIGILL handlers
// next to the runtime's, which is why a faulting snippet is fatal rather
// than reported.
//
// On platforms other than linux/amd64, Run returns [ErrUnsupported] and
// Scratch returns nil, 0.
package hostexec

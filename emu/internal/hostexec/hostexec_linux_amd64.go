package hostexec

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

const (
	opINT3 = 0xCC // fills the code page outside the snippet
	opRET  = 0xC3 // appended to every snippet: returns into the trampoline
)

// trampoline loads st (all GPRs but RSP, and RFLAGS as described on Run),
// CALLs code, stores every GPR but RSP and the full RFLAGS back into st and
// restores what Go expects (DF=0, R14=g, R15, RBP, X15=0). hostexec_amd64.s.
//
//go:noescape
func trampoline(code uintptr, st *State)

var (
	mu sync.Mutex // guards codePage, codeLen and the execution of a snippet
	// codePage is the RX page snippets run from, followed by a RET; outside the
	// current snippet it holds INT3.
	codePage []byte
	// codeLen is the length of the snippet in codePage, -1 if none.
	codeLen = -1
	// scratch is the RW page handed out by Scratch; PROT_NONE guard pages
	// surround it so a stray access faults rather than corrupting a
	// neighbouring mapping.
	scratch []byte
)

// setup maps the code and scratch pages once.
var setup = sync.OnceValue(func() error {
	page := syscall.Getpagesize()
	c, err := syscall.Mmap(-1, 0, page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return fmt.Errorf("hostexec: map code page: %w", err)
	}
	fill(c, opINT3)
	if err := syscall.Mprotect(c, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		syscall.Munmap(c)
		return fmt.Errorf("hostexec: protect code page r-x: %w", err)
	}
	s, err := syscall.Mmap(-1, 0, 3*page, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		syscall.Munmap(c)
		return fmt.Errorf("hostexec: map scratch page: %w", err)
	}
	s = s[page : 2*page : 2*page]
	if err := syscall.Mprotect(s, syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
		syscall.Munmap(c)
		return fmt.Errorf("hostexec: protect scratch page rw-: %w", err)
	}
	codePage, scratch = c, s
	return nil
})

// Run executes code on the host CPU with the registers in st and writes the
// registers and RFLAGS after the snippet back into st.
//
// code is a straight-line snippet at most one page less one byte long; Run
// appends a RET (0xC3) and CALLs it. The snippet must not transfer control
// out of itself, change RSP, fault, or touch memory other than the Scratch
// page; see the package documentation.
//
// Every general-purpose register except RSP is loaded from st.R and stored
// back. st.R[4] (RSP) is neither loaded nor changed: the snippet runs on the
// calling goroutine's stack, so RSP is not part of the comparison. From
// st.RFLAGS only CF, PF, AF, ZF, SF, OF and DF are loaded; the other bits
// keep the host's values, except TF and AC, which are cleared. On return
// st.RFLAGS is the full RFLAGS as PUSHFQ sees it after the snippet, so
// reserved bit 1 and IF are set.
//
// Run serialises callers: snippets run one at a time.
func Run(code []byte, st *State) error {
	if st == nil {
		return fmt.Errorf("hostexec: nil state")
	}
	if err := setup(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	// Write and execute the snippet on one thread. Nothing in the
	// trampoline can be preempted (see doc.go), so this is for the code
	// page write more than for the call itself.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := load(code); err != nil {
		return err
	}
	// The assembly's loads and stores are invisible to the race detector;
	// copying keeps every access to *st in Go.
	s := *st
	trampoline(uintptr(unsafe.Pointer(unsafe.SliceData(codePage))), &s)
	s.R[4] = st.R[4]
	*st = s
	return nil
}

// load places snippet followed by RET at the start of the code page, which
// is mapped r-x except while being written. mu must be held.
func load(snippet []byte) error {
	n := len(snippet)
	if n > len(codePage)-1 {
		return fmt.Errorf("hostexec: snippet of %d bytes is longer than %d", n, len(codePage)-1)
	}
	if n == codeLen && bytes.Equal(codePage[:n], snippet) {
		return nil // already loaded
	}
	if err := syscall.Mprotect(codePage, syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
		return fmt.Errorf("hostexec: protect code page rw-: %w", err)
	}
	codeLen = -1
	fill(codePage, opINT3)
	copy(codePage, snippet)
	codePage[n] = opRET
	if err := syscall.Mprotect(codePage, syscall.PROT_READ|syscall.PROT_EXEC); err != nil {
		return fmt.Errorf("hostexec: protect code page r-x: %w", err)
	}
	codeLen = n
	return nil
}

// Scratch returns a page-aligned RW host memory region (one page, at least
// 4 KiB, the same one every call) and its address, which snippets may
// address through registers. It returns nil, 0 if the page cannot be mapped;
// Run then reports why.
//
// The region is shared by all callers and Run does not lock it: goroutines
// running snippets concurrently must use disjoint parts of it.
func Scratch() (mem []byte, addr uint64) {
	if setup() != nil {
		return nil, 0
	}
	return scratch, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(scratch))))
}

// CodeAddr returns the address snippets run at (the start of the code
// page), or 0 if it cannot be mapped. A process that lets a snippet fault
// (a test's child process, see doc.go) can compare it with the PC of the
// Go runtime's crash report to tell a fault of the snippet's first
// instruction from any other.
func CodeAddr() uint64 {
	if setup() != nil {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(codePage))))
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

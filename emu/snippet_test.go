package emu

import (
	"fmt"
	"testing"
)

// ArchState is the register state a snippet test sets and compares: the
// sixteen general-purpose registers in hardware order and RFLAGS (the same
// layout as hostexec.State).
type ArchState struct {
	R      [16]uint64
	RFLAGS uint64
}

// snippetCodeBase is where snippets are mapped (r-x) in the test machine:
// a kernel-text address, far from any host scratch page.
const snippetCodeBase uint64 = 0xffffffff81000000

// snippetFault is the error execSnippet returns when an instruction raised
// an exception.
type snippetFault struct {
	RIP  uint64 // the faulting instruction
	Info faultInfo
}

func (e *snippetFault) Error() string {
	return fmt.Sprintf("%s (error code %#x, addr %#x) at %#x", e.Info.vector.Name(), e.Info.errCode, e.Info.addr, e.RIP)
}

// snippetResult is what runSnippet reports beyond the register state.
type snippetResult struct {
	State ArchState
	Exits []exitKind // the non-fault exits taken, in order
	RIP   uint64
	Insns int
}

// execSnippet runs code on a fresh one-CPU machine: code mapped r-x at
// snippetCodeBase, scratch (if any) mapped rw- at the page-aligned
// scratchAddr with its contents copied in, and the registers of in. It
// decodes and executes instructions until RIP reaches the end of code, and
// copies the scratch page back out. A fault ends the run with a
// *snippetFault and the state at the fault; an unsupported instruction
// with its *UnsupportedError.
func execSnippet(t testing.TB, code []byte, in ArchState, scratchAddr uint64, scratch []byte) (ArchState, error) {
	t.Helper()
	r, err := runSnippet(t, code, in, scratchAddr, scratch, 0)
	return r.State, err
}

// maxSnippetInsns bounds a snippet run (a loop in a golden that never ends
// is a test bug, not a hang).
const maxSnippetInsns = 1 << 16

// runSnippet is execSnippet with a GS base, reporting exits and the final
// RIP too.
func runSnippet(t testing.TB, code []byte, in ArchState, scratchAddr uint64, scratch []byte, gsBase uint64) (snippetResult, error) {
	t.Helper()
	return runSnippetCET(t, code, in, scratchAddr, scratch, gsBase, nil)
}

// runSnippetCET is runSnippet on a CPU with IA32_S_CET = *cet (as
// Quirks.IBT gives it) if cet is not nil.
func runSnippetCET(t testing.TB, code []byte, in ArchState, scratchAddr uint64, scratch []byte, gsBase uint64, cet *uint64) (snippetResult, error) {
	t.Helper()
	m, c := newSnippetMachine(t, code, scratchAddr, scratch)
	if cet != nil {
		c.cet = true
		c.setSCET(*cet)
	}
	c.GSBase = gsBase
	c.R = in.R
	c.RFLAGS = in.RFLAGS | flagRes1
	end := snippetCodeBase + uint64(len(code))
	var res snippetResult
	var err error
	for c.RIP != end {
		if res.Insns == maxSnippetInsns {
			t.Fatalf("snippet % x: no end after %d instructions", code, res.Insns)
		}
		off := c.RIP - snippetCodeBase
		if off >= uint64(len(code)) {
			err = fmt.Errorf("control left the snippet: RIP %#x", c.RIP)
			break
		}
		var x *inst
		x, err = decodeInst(code[off:], c.RIP)
		if err != nil {
			break
		}
		c.exit = exitNone
		c.exec(x)
		res.Insns++
		if c.exit == exitFault {
			err = &snippetFault{RIP: c.RIP, Info: c.fault}
			break
		}
		if c.exit == exitUnsupported {
			err = &UnsupportedError{Addr: x.addr, Bytes: append([]byte(nil), x.raw[:x.len]...), Reason: c.unsup}
			break
		}
		if c.exit != exitNone {
			res.Exits = append(res.Exits, c.exit)
		}
	}
	if scratch != nil {
		copyPages(t, m, scratchAddr, scratch, false)
	}
	res.State = ArchState{R: c.R, RFLAGS: c.RFLAGS}
	res.RIP = c.RIP
	return res, err
}

// newSnippetMachine builds the one-CPU machine runSnippet uses.
func newSnippetMachine(t testing.TB, code []byte, scratchAddr uint64, scratch []byte) (*Machine, *CPU) {
	t.Helper()
	m := &Machine{mem: newMemory(0)}
	c := &CPU{m: m}
	npages := (len(code) + pageSize - 1) / pageSize
	if npages == 0 {
		npages = 1
	}
	m.mem.mapNew(snippetCodeBase, npages, PermRX)
	if !m.mem.poke(snippetCodeBase, code) {
		t.Fatal("poke code")
	}
	if scratch != nil {
		if scratchAddr&pageMask != 0 {
			t.Fatalf("scratch address %#x is not page aligned", scratchAddr)
		}
		sp := (len(scratch) + pageSize - 1) / pageSize
		if scratchAddr < snippetCodeBase+uint64(npages*pageSize) && scratchAddr+uint64(sp*pageSize) > snippetCodeBase {
			t.Fatalf("scratch %#x overlaps the snippet code", scratchAddr)
		}
		m.mem.mapNew(scratchAddr, sp, PermRW)
		copyPages(t, m, scratchAddr, scratch, true)
	}
	c.RIP = snippetCodeBase
	return m, c
}

// copyPages copies b into (in=true) or out of the page-aligned mapping at
// addr, a page at a time.
func copyPages(t testing.TB, m *Machine, addr uint64, b []byte, in bool) {
	t.Helper()
	for off := 0; off < len(b); off += pageSize {
		p := m.mem.page((addr + uint64(off)) >> pageShift)
		if p == nil {
			t.Fatalf("page %#x not mapped", addr+uint64(off))
		}
		if in {
			copy(p.own().data[:], b[off:])
		} else {
			copy(b[off:], p.f.data[:])
		}
	}
}

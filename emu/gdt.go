package emu

import "fmt"

// The segment model. The machine runs in 64-bit mode at CPL 0 with flat
// segments (SDM Vol. 3 §3.2.4, §5.2.1): segment bases and limits are not
// used, but the selectors IRETQ pops and MOV SS loads are still checked
// against a descriptor table (SDM Vol. 2 IRET and MOV, Operation), so a
// clobbered interrupt frame faults as it does on hardware.
//
// The descriptor table is Linux's x86-64 GDT (arch/x86/include/asm/segment.h,
// arch/x86/kernel/cpu/common.c gdt_page): 16 entries, no LDT (a selector with
// TI=1 is outside every table). The machine pushes CS 0x10 and SS 0x18 in
// every interrupt frame; SS may also be null (0), which 64-bit mode allows
// at CPL 0 (SDM Vol. 3 §6.15 Interrupt 13, "64-bit mode" causes; §6.14.4).
const (
	selKernelCS = 0x10 // __KERNEL_CS: 64-bit code, DPL 0
	selKernelSS = 0x18 // __KERNEL_DS: writable data, DPL 0
)

// segDesc is the part of a segment descriptor the checks read (SDM Vol. 3
// §3.4.5, Figure 3-8: S, type, DPL, P, L).
type segDesc struct {
	system   bool // S = 0: a system descriptor (TSS, LDT) or an empty entry
	code     bool // type bit 3
	writable bool // data segment: type bit 1
	long     bool // code segment: L (64-bit code)
	dpl      uint8
	present  bool
}

// gdt is the descriptor table, indexed by selector>>3. An all-zero entry
// (unused, or TLS slots nobody filled) reads as a not-present system
// descriptor of type 0.
var gdt = [16]segDesc{
	0:  {system: true},                                         // null
	1:  {code: true, present: true},                            // __KERNEL32_CS (compatibility-mode code)
	2:  {code: true, long: true, present: true},                // __KERNEL_CS
	3:  {writable: true, present: true},                        // __KERNEL_DS
	4:  {code: true, dpl: 3, present: true},                    // __USER32_CS
	5:  {writable: true, dpl: 3, present: true},                // __USER_DS
	6:  {code: true, long: true, dpl: 3, present: true},        // __USER_CS
	7:  {system: true},                                         // unused
	8:  {system: true, present: true},                          // TSS (16 bytes: 8 and 9)
	9:  {system: true},                                         //
	10: {system: true, present: true},                          // LDT (16 bytes: 10 and 11)
	11: {system: true},                                         //
	12: {system: true}, 13: {system: true}, 14: {system: true}, // TLS, empty
	15: {dpl: 3, present: true}, // CPUNODE: read-only data, DPL 3
}

// selFault is the exception a selector check raises: #GP, #NP or #SS with
// an error code, or unsupported when the selector is valid but asks for
// something the machine does not model.
type selFault struct {
	vector      Vector
	errCode     uint64
	unsupported string
}

// selErr is the error code of a fault that names sel (SDM Vol. 3 §6.13,
// Figure 6-6): the selector's index and TI bit; EXT and IDT are 0 because
// an instruction, not an event delivery, raised it.
func selErr(v Vector, sel uint16) *selFault {
	return &selFault{vector: v, errCode: uint64(sel & 0xfffc)}
}

// desc looks sel up: ok is false when its index is beyond the table limit
// or it selects the (absent) LDT.
func desc(sel uint16) (segDesc, bool) {
	if sel&4 != 0 || int(sel>>3) >= len(gdt) {
		return segDesc{}, false
	}
	return gdt[sel>>3], true
}

func isNullSel(sel uint16) bool { return sel&^3 == 0 }

// checkIret checks what a 64-bit-mode IRET popped, in the order of SDM
// Vol. 2 IRET, Operation, IA-32e-MODE-RETURN: first the #GP(0) cases (a
// null CS, a non-canonical RIP, a null SS where 64-bit mode forbids one:
// returning to compatibility mode or to CPL 3, or with an RPL other than
// the new CPL), then the code segment (checkIretCS), then the stack segment
// (checkSS). The SDM's same-privilege path does not spell out the SS
// descriptor checks, but a 64-bit IRET always loads SS (Vol. 3 §6.14.3) and
// validates it as a return to an outer level does (QEMU's
// helper_ret_protected likewise takes that path for every 64-bit IRET).
func checkIret(rip uint64, cs, ss uint16) *selFault {
	nullSSBad := false
	if isNullSel(ss) {
		d, ok := desc(cs)
		compat := ok && d.code && !d.long
		nullSSBad = compat || cs&3 == 3 || ss&3 != cs&3
	}
	if isNullSel(cs) || !canonical(rip) || nullSSBad {
		return &selFault{vector: VecGP}
	}
	if f := checkIretCS(cs); f != nil {
		return f
	}
	return checkSS(ss, cs&3)
}

// checkIretCS checks the code-segment selector IRETQ popped, in the order of
// SDM Vol. 2 IRET, Operation (PROTECTED-MODE-RETURN, at CPL 0): null ->
// #GP(0); outside the table, not a code segment, or (non-conforming: every
// code segment here) DPL != RPL -> #GP(selector); not present ->
// #NP(selector). RPL > CPL is a return to an outer privilege level (user
// mode) and a code segment without L returns to compatibility mode: the
// machine models neither, so the run ends unsupported rather than going on
// as if it were still at CPL 0 (KVM's emulator makes the same call for
// outer-privilege returns: X86EMUL_UNHANDLEABLE).
func checkIretCS(cs uint16) *selFault {
	if isNullSel(cs) {
		return &selFault{vector: VecGP}
	}
	d, ok := desc(cs)
	if !ok || d.system || !d.code || d.dpl != uint8(cs&3) {
		return selErr(VecGP, cs)
	}
	if !d.present {
		return selErr(VecNP, cs)
	}
	if cs&3 != 0 {
		return &selFault{unsupported: fmt.Sprintf("IRETQ to CPL %d (CS %#x): the machine models CPL 0 only", cs&3, cs)}
	}
	if !d.long {
		return &selFault{unsupported: fmt.Sprintf("IRETQ to compatibility mode (CS %#x): the machine models 64-bit mode only", cs)}
	}
	return nil
}

// checkSS checks a stack-segment selector loaded at CPL 0 by IRETQ (whose
// return code segment has RPL rpl) or by MOV SS (rpl = CPL = 0), as SDM
// Vol. 2 IRET (the SS checks; a 64-bit IRET always pops SS:RSP, Vol. 3
// §6.14.3) and MOV (SS is loaded) say: a null selector is allowed in 64-bit
// mode when its RPL equals the new CPL and that CPL is not 3 (else #GP(0));
// outside the table, RPL != CPL, not a writable data segment, or DPL != CPL
// -> #GP(selector); not present -> #SS(selector).
func checkSS(ss uint16, rpl uint16) *selFault {
	if isNullSel(ss) {
		if ss&3 != rpl || rpl == 3 {
			return &selFault{vector: VecGP}
		}
		return nil
	}
	d, ok := desc(ss)
	if !ok || ss&3 != rpl || d.system || d.code || !d.writable || uint16(d.dpl) != rpl {
		return selErr(VecGP, ss)
	}
	if !d.present {
		return selErr(VecSS, ss)
	}
	return nil
}

// canonical reports whether a is a canonical 48-bit linear address (SDM
// Vol. 1 §3.3.7.1: bits 63:47 all equal; the machine has no 5-level paging).
func canonical(a uint64) bool { return uint64(int64(a<<16)>>16) == a }

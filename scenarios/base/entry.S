/* SPDX-License-Identifier: GPL-2.0 */
/*
 * entry.S - the vector table and the entry stubs.
 *
 * Every stub turns the hardware frame into a struct pt_regs, calls a C
 * handler with a pointer to it and returns with IRETQ through the (possibly
 * modified) frame: a handler redirects the interrupted context by writing
 * regs->ip, regs->flags or regs->sp, exactly as in the kernel.
 *
 * All gates are interrupt gates (bar the #BP knob at the end): IF is clear
 * from delivery to IRETQ, so an IPI never lands in a handler. text_poke_bp()
 * depends on that: a CPU in do_int3() cannot acknowledge the patcher's sync
 * IPI until it has finished looking at bp_int3_addr.
 */
#include "entry.h"

	.text

/* #BP: call-emulation gap, interrupt gate; the knobs: end of this file. */
#if __has_include("pt_int3_trap_gate.h")
#define PT_INT3_GATE	GATE_TRAP
#else
#define PT_INT3_GATE	GATE_INTERRUPT
#endif
#if __has_include("pt_no_int3_gap.h")
IDTENTRY asm_exc_int3, do_int3, create_gap=0
#else
IDTENTRY asm_exc_int3, do_int3, create_gap=1
#endif
PT_VECTOR X86_TRAP_BP, asm_exc_int3, PT_INT3_GATE

/* Faults no scenario expects: they all end in die(), an oops. */
IDTENTRY asm_exc_invalid_op, do_invalid_op
PT_VECTOR X86_TRAP_UD, asm_exc_invalid_op

IDTENTRY asm_exc_general_protection, do_general_protection, has_error_code=1
PT_VECTOR X86_TRAP_GP, asm_exc_general_protection

IDTENTRY asm_exc_page_fault, do_page_fault, has_error_code=1
PT_VECTOR X86_TRAP_PF, asm_exc_page_fault

/* #DF means the stack is gone: take it on a stack of its own. */
IDTENTRY asm_exc_double_fault, do_double_fault, has_error_code=1
PT_VECTOR X86_TRAP_DF, asm_exc_double_fault, GATE_INTERRUPT, IST_DF

/* Maskable interrupts. */
IRQENTRY asm_sysvec_apic_timer_interrupt, LOCAL_TIMER_VECTOR, do_timer_interrupt
PT_VECTOR LOCAL_TIMER_VECTOR, asm_sysvec_apic_timer_interrupt

IRQENTRY asm_sysvec_call_function, CALL_FUNCTION_VECTOR, do_call_function
PT_VECTOR CALL_FUNCTION_VECTOR, asm_sysvec_call_function

IRQENTRY asm_sysvec_reschedule_ipi, RESCHEDULE_VECTOR, do_reschedule_ipi
PT_VECTOR RESCHEDULE_VECTOR, asm_sysvec_reschedule_ipi

/*
 * NMI, on IST2.
 *
 * The hardware blocks NMIs from delivery until the next IRETQ, but *any*
 * IRETQ unblocks them: if do_nmi() takes a #BP (an int3 in code the NMI
 * handler runs), the #BP's IRETQ lets a second NMI in while the first is
 * still running. That NMI is delivered at the top of the same IST stack
 * and would overwrite the first one's IRETQ frame. This is the problem
 * Linux's "nested NMI" entry code solves; this is the same idea, simplified
 * for a machine without user mode or SYSCALL gaps:
 *
 *  - The outer NMI copies its hardware frame below NMI_HEADER and builds
 *    pt_regs on the copy; a nested NMI can only overwrite the top
 *    NMI_HEADER bytes, which the outer NMI no longer needs.
 *  - nmi_state (per CPU): 0 = no NMI handler running, 1 = running,
 *    2 = running and another NMI arrived meanwhile (latched).
 *  - A nested NMI (nmi_state != 0) only latches and returns at once, like
 *    Linux turning the outer NMI's return into repeat_nmi. NMI handlers
 *    therefore never nest: the outer NMI runs do_nmi() once more for it
 *    before returning.
 *  - Between the outer NMI clearing nmi_state and its IRETQ (its exit
 *    window), an NMI may arrive with nmi_state == 0. nmi_state cannot tell
 *    it from an outermost NMI, but its interrupted RSP can: it lies inside
 *    this CPU's NMI stack, which only an NMI (or a trap it takes) runs on.
 *    That NMI is nested too: it sets nmi_state back to 1 and returns into
 *    the outer NMI at .Lnmi_rerun, which moves back onto its pt_regs (still
 *    intact: popping does not erase them) and runs do_nmi() once more, like
 *    Linux's nested NMI sending the outer one to repeat_nmi. Since nmi_state
 *    is 1 again before the outer NMI resumes, an NMI arriving in
 *    .Lnmi_rerun latches, and no window like Linux's repeat_nmi ..
 *    end_repeat_nmi is needed. Running the exit-window NMI as an ordinary
 *    one below the interrupted RSP instead would nest without bound (each
 *    one's handler may IRETQ from a #BP or #DB and open its own exit
 *    window) until the NMI stack overflows into its neighbour.
 *
 * Every NMI handler therefore runs on the one frame and pt_regs at the top
 * of the NMI stack (NMI_REGS below the top), whatever the nesting.
 */
#if __has_include("pt_no_nested_nmi.h")
/*
 * A scenario that ships pt_no_nested_nmi.h gets the naive NMI entry Linux
 * had before commit 3f3c8b8c4b2a ("x86: Add workaround to NMI iret woes"):
 * pt_regs built on the hardware frame at the IST top, so an NMI let in by
 * an IRETQ inside the handler overwrites the running one's frame.
 */
IDTENTRY asm_exc_nmi, do_nmi
PT_VECTOR X86_TRAP_NMI, asm_exc_nmi, GATE_INTERRUPT, IST_NMI
#else
SYM_FUNC_START(asm_exc_nmi); ENDBR
	/*
	 * NMIs are blocked until our own IRETQ, so scratch space just under
	 * the hardware frame is ours: 16(%rsp) is the frame from here on.
	 */
	pushq	%rdx
	pushq	%rax

	cmpq	$0, %gs:nmi_state
	jne	.Lnmi_latch

	/* Is the interrupted RSP inside this CPU's NMI stack? */
	movq	16+3*8(%rsp), %rdx		/* interrupted RSP */
	movq	%gs:nmi_stack_top, %rax
	cmpq	%rax, %rdx
	ja	.Lnmi_outermost
	subq	$IST_STACK_SIZE, %rax
	cmpq	%rax, %rdx
	jbe	.Lnmi_outermost
	/*
	 * In an outer NMI's exit window: its frame and pt_regs are live. Make
	 * it run its handler again rather than building a frame of our own.
	 */
	movq	$1, %gs:nmi_state
	movq	$.Lnmi_rerun, 16+0*8(%rsp)	/* our return RIP */
	popq	%rax
	popq	%rdx
	iretq

.Lnmi_outermost:
	movq	%gs:nmi_stack_top, %rdx
	subq	$NMI_HEADER, %rdx
	/* %rdx: where the copied frame ends (its SS slot is at -8). */
	movq	16+4*8(%rsp), %rax		/* ss */
	movq	%rax, -1*8(%rdx)
	movq	16+3*8(%rsp), %rax		/* sp */
	movq	%rax, -2*8(%rdx)
	movq	16+2*8(%rsp), %rax		/* flags */
	movq	%rax, -3*8(%rdx)
	movq	16+1*8(%rsp), %rax		/* cs */
	movq	%rax, -4*8(%rdx)
	movq	16+0*8(%rsp), %rax		/* ip */
	movq	%rax, -5*8(%rdx)
	movq	$1, %gs:nmi_state

	/* Move onto the copy; fetch the scratch registers from the old spot. */
	movq	%rsp, %rax
	leaq	-5*8(%rdx), %rsp
	pushq	$-1				/* orig_ax */
	pushq	%rdi
	pushq	%rsi
	pushq	8(%rax)				/* rdx */
	pushq	%rcx
	pushq	(%rax)				/* rax */
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15

.Lnmi_repeat:
	movq	%rsp, %rdi
	call	do_nmi
	/*
	 * Leave nmi_state at 0 in one instruction, so a latch cannot slip in
	 * between reading and clearing it. If an NMI was latched, handle it
	 * now, on this same frame.
	 */
	xorl	%eax, %eax
	xchgq	%rax, %gs:nmi_state
	cmpq	$1, %rax
	je	.Lnmi_return
	movq	$1, %gs:nmi_state
	jmp	.Lnmi_repeat

.Lnmi_return:
	POP_REGS_AND_ORIG_AX
	iretq

.Lnmi_rerun:
	/*
	 * Back from an NMI that hit the exit window above, with nmi_state
	 * already 1 and RSP anywhere between our pt_regs and our IRETQ frame.
	 */
	movq	%gs:nmi_stack_top, %rax
	leaq	-NMI_REGS(%rax), %rsp
	jmp	.Lnmi_repeat

.Lnmi_latch:
	/* An NMI handler is running on this CPU: let it run do_nmi() again. */
	movq	$2, %gs:nmi_state
	popq	%rax
	popq	%rdx
	iretq
SYM_FUNC_END(asm_exc_nmi)
PT_VECTOR X86_TRAP_NMI, asm_exc_nmi, GATE_INTERRUPT, IST_NMI
#endif

/*
 * switch_to(prev, next): save prev's callee-saved registers and stack
 * pointer, load next's. Called from schedule() with IRQs off; returns when
 * someone switches back to prev. A new task's stack is prepared by
 * task_create() so that the first switch "returns" into ret_from_fork with
 * %rbx = entry and %r12 = arg (the kernel uses the same registers for
 * kernel threads).
 */
SYM_FUNC_START(switch_to)
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, TASK_SP(%rdi)
	movq	TASK_SP(%rsi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
SYM_FUNC_END(switch_to)

SYM_FUNC_START(ret_from_fork)
	/* schedule() ran with IRQs off; a task starts with them on. */
	sti
	movq	%r12, %rdi
	call	*%rbx
	call	task_exit			/* does not return */
SYM_FUNC_END(ret_from_fork)

/*
 * The #BP entry's knobs (kept down here so that the lines above, and the
 * line tables of every slice, stay where they were):
 *
 *  - A scenario that ships a header named pt_no_int3_gap.h gets the entry
 *    as it was before the gap (before Linux commit 2700fefdb2d9, "x86_64:
 *    Add gap to int3 to allow for call emulation"): pt_regs built on the
 *    hardware frame.
 *  - One that ships pt_int3_trap_gate.h gets #BP through a trap gate, which
 *    leaves IF as it was (SDM Vol. 3 §6.12.1.3), as i386's int3 gate was
 *    before kprobes made it an interrupt gate: an interrupt, or the
 *    patcher's sync IPI, can then be taken in do_int3() before it has
 *    looked at the patch state.
 */

#ifdef __CET__
/*
 * #CP (an IBT kernel only, quirks.ibt): exc_control_protection(), here for
 * the missing ENDBR64 of error code 3 (ENDBRANCH).
 */
	.text
IDTENTRY asm_exc_control_protection, do_control_protection, has_error_code=1
PT_VECTOR 21, asm_exc_control_protection	/* X86_TRAP_CP */
#endif

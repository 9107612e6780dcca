/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, the kprobe's instruction slot and the #DB
 * entry on an IST stack of its own.
 */
#include "entry.h"

#define X86_TRAP_DB	1
#define IST_DB		3

	.text

/*
 * u64 probed_fn(u64 x): the kprobed function. Its first instruction, push
 * %rbx (one byte, not a branch), is copied to the slot and single-stepped
 * there.
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx
	movq	%rdi, %rbx
	movq	%rdi, %rax
	shrq	$5, %rax
	xorq	%rbx, %rax
	addq	$0x3c3c, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

/* The kprobe's out-of-line instruction slot, filled by the patcher. */
SYM_FUNC_START(kprobe_insn_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_insn_slot)

/*
 * #DB on IST3, as Linux had it (DEBUG_STACK). A #DB raised while the #DB
 * handler runs - the handler single-stepping a kprobe it re-entered - is
 * delivered at the top of the same IST stack, where the running handler's
 * frame is. Linux's entry shifted the IST pointer down by one stack for the
 * handler's duration (idtentry ... shift_ist=DEBUG_STACK), so a nested #DB
 * got a stack of its own. A scenario that ships pt_db_no_ist_shift.h gets
 * the entry without the shift.
 */
#if __has_include("pt_db_no_ist_shift.h")
IDTENTRY asm_exc_debug, do_debug
#else
SYM_FUNC_START(asm_exc_debug)
	pushq	$-1			/* orig_ax: no error code */
	PUSH_REGS
	movq	%rsp, %rdi
	xorl	%esi, %esi
	/* A nested #DB gets the next stack down (IST_DB_STACKS of them). */
	subq	$IST_STACK_SIZE, %gs:cpu_tss_ist + 8 * IST_DB
	call	do_debug
	addq	$IST_STACK_SIZE, %gs:cpu_tss_ist + 8 * IST_DB
	POP_REGS_AND_ORIG_AX
	iretq
SYM_FUNC_END(asm_exc_debug)
#endif
PT_VECTOR X86_TRAP_DB, asm_exc_debug, GATE_INTERRUPT, IST_DB

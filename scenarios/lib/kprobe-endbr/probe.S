/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function as an IBT kernel builds it (ENDBR64 at
 * sym+0, the function's own first instruction at sym+4), the kprobe's
 * out-of-line instruction slot and the #DB entry.
 */
#include "entry.h"

#define X86_TRAP_DB	1

	.text

/*
 * u64 probed_fn(u64 x): reached only through a function pointer (an ops
 * table), so the ENDBR64 at +0 is the landing pad every call needs.
 * +4 is push %rbx (one byte, not a branch, no RIP-relative operand).
 */
SYM_FUNC_START(probed_fn)
	endbr64
	pushq	%rbx
	movq	%rdi, %rbx
	movq	%rdi, %rax
	shrq	$7, %rax
	xorq	%rbx, %rax
	addq	$0x5a5a, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

/*
 * The instruction slot (get_insn_slot()): kernel text the patcher fills
 * with a copy of the probed instruction through text_poke() before
 * arming; it runs single-stepped, reached by the #BP's IRETQ.
 */
SYM_FUNC_START(kprobe_insn_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_insn_slot)

/* #DB: single-step traps, on the interrupted stack (interrupt gate). */
IDTENTRY asm_exc_debug, do_debug
PT_VECTOR X86_TRAP_DB, asm_exc_debug

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, the kprobe's out-of-line instruction slot
 * and the #DB entry (base has none: the library brings its own vector).
 */
#include "entry.h"

#define X86_TRAP_DB	1

	.text

/*
 * u64 probed_fn(u64 x): the function the kprobe sits on. Its first
 * instruction, push %rbx (one byte, no RIP-relative operand, not a
 * branch), is what the kprobe copies to the slot and single-steps there.
 * The NMI handler calls it too.
 */
SYM_FUNC_START(probed_fn)
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
 * The instruction slot (Linux's kprobe insn slot, get_insn_slot()): kernel
 * text the patcher fills with a copy of the probed instruction through
 * text_poke() before arming. Only its first instruction ever runs, with TF
 * set; the #DB after it sends the CPU back to the probed function.
 */
SYM_FUNC_START(kprobe_insn_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_insn_slot)

/* #DB: single-step traps, on the interrupted stack (interrupt gate). */
IDTENTRY asm_exc_debug, do_debug
PT_VECTOR X86_TRAP_DB, asm_exc_debug

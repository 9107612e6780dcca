/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, whose first instruction reads a variable
 * RIP-relative, the kprobe's out-of-line instruction slot and the #DB
 * entry (base has none: the library brings its own vector).
 */
#include "entry.h"

#define X86_TRAP_DB	1

	.text

/*
 * u64 probed_fn(u64 x): probe_base + x. Its first instruction, the
 * 7-byte mov probe_base(%rip), %rax, is what the kprobe copies to the slot
 * and single-steps there: its operand is addressed relative to the
 * instruction's own end, so the copy needs another displacement to read
 * the same variable.
 */
SYM_FUNC_START(probed_fn)
	movq	probe_base(%rip), %rax
	addq	%rdi, %rax
	ret
SYM_FUNC_END(probed_fn)

/*
 * The instruction slot (get_insn_slot()): kernel text the patcher fills
 * with the copy of the probed instruction through text_poke() before
 * arming. Only its first instruction ever runs, with TF set; the #DB after
 * it sends the CPU back to the probed function.
 */
SYM_FUNC_START(kprobe_insn_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_insn_slot)

/* #DB: single-step traps, on the interrupted stack (interrupt gate). */
IDTENTRY asm_exc_debug, do_debug
PT_VECTOR X86_TRAP_DB, asm_exc_debug

	.data
	.balign	8
/* What probed_fn reads, and the variables right after it. */
	.globl	probe_base
probe_base:
	.quad	0x5a5a0000
	.globl	probe_next
probe_next:
	.fill	8, 8, 0x7e7e7e7e

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function and the template of the kprobe's boost
 * slot (the slot itself is allocated with module_alloc() per probe).
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x). Its first instruction, push %rbx (one byte, no
 * RIP-relative operand, not a branch), is what the kprobe boosts: the slot
 * runs a copy of it and jumps to probed_fn+1.
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx
	movq	%rdi, %rbx
	movq	%rdi, %rax
	shrq	$5, %rax
	xorq	%rbx, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

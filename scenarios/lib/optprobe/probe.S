/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, the kprobe's boost slot, the optprobe's
 * detour buffer and the handler the detour calls.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x). The optprobe replaces its first seven bytes, three
 * whole instructions, with a 5-byte jump to the detour (the last two bytes
 * are left as they are and never run); a task may be between any two of
 * them.
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx			/* +0: 1 byte, where the kprobe sits */
	movq	%rdi, %rbx		/* +1: 3 bytes */
	incq	%rbx			/* +4: 3 bytes */
	movq	%rbx, %rax		/* +7: where the detour returns */
	shrq	$3, %rax
	xorq	%rbx, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

/* The kprobe's boost slot: a copy of push %rbx, then jmp probed_fn+1. */
SYM_FUNC_START(kprobe_boost_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_boost_slot)

/*
 * The optprobe's detour buffer: call opt_thunk, the seven bytes of copied
 * instructions, jmp probed_fn+7.
 */
SYM_FUNC_START(optprobe_detour)
	.fill	32, 1, 0xcc
SYM_FUNC_END(optprobe_detour)

/* optimized_callback() with every argument register kept. */
FENTRY_HANDLER opt_thunk, opt_handler

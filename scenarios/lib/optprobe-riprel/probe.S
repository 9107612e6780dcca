/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, the kprobe's boost slot, the optprobe's
 * detour buffer and the handler the detour calls.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x): probe_base + x. The optprobe replaces its first
 * eight bytes, two whole instructions (the second RIP-relative), with a
 * 5-byte jump to the detour (the last three bytes are left as they are and
 * never run).
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx			/* +0: 1 byte, where the kprobe sits */
	movq	probe_base(%rip), %rbx	/* +1: 7 bytes */
	movq	%rbx, %rax		/* +8: where the detour returns */
	addq	%rdi, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

/* The kprobe's boost slot: a copy of push %rbx, then jmp probed_fn+1. */
SYM_FUNC_START(kprobe_boost_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_boost_slot)

/*
 * The optprobe's detour buffer: call opt_thunk, the copies of the eight
 * bytes of instructions, jmp probed_fn+8.
 */
SYM_FUNC_START(optprobe_detour)
	.fill	32, 1, 0xcc
SYM_FUNC_END(optprobe_detour)

/* optimized_callback() with every argument register kept. */
FENTRY_HANDLER opt_thunk, opt_handler

	.data
	.balign	8
/* What probed_fn reads, and the word after it. */
	.globl	probe_base
probe_base:
	.quad	0x5a5a0000
	.globl	probe_next
probe_next:
	.quad	0x7e7e7e7e7e7e7e7e

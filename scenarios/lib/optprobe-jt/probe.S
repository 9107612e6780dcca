/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - a probed function with a jump table, the retpoline-style thunk
 * its indirect jump goes through, the kprobe's boost slot, the optprobe's
 * detour buffer and the handler the detour calls.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x). Its first three instructions (seven bytes) are
 * what an optprobe at its entry would replace with a 5-byte jump. A
 * switch later in the function dispatches through a jump table, and as a
 * kernel built with retpolines does, it jumps through a thunk
 * (jmp pt_indirect_thunk_rax: a direct jump) instead of jmp *%rax. One
 * case of the switch goes back to .Lagain, probed_fn+4: inside the range
 * the optprobe's jump would cover, on the last byte of its displacement.
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx			/* +0: 1 byte, where the kprobe sits */
	movq	%rdi, %rbx		/* +1: 3 bytes */
.Lagain:
	incq	%rbx			/* +4: 3 bytes, a jump-table target */
	movq	%rbx, %rax		/* +7 */
	andq	$3, %rax
	leaq	probed_fn_table(%rip), %rdx
	movq	(%rdx,%rax,8), %rax
	/* switch (rbx & 3): jmp pt_indirect_thunk_rax, always rel32 (the
	   thunks are far away in a kernel) */
	.byte	0xe9
	.long	pt_indirect_thunk_rax - . - 4
.Ldone:
	movq	%rbx, %rax
	shrq	$3, %rax
	xorq	%rbx, %rax
	popq	%rbx
	ret
.Lprobed_fn_end:
SYM_FUNC_END(probed_fn)

	.section .rodata
	.balign 8
probed_fn_table:
	.quad	.Ldone			/* 0 */
	.quad	.Lagain			/* 1: once more (then 2) */
	.quad	.Ldone			/* 2 */
	.quad	.Ldone			/* 3 */

/* kallsyms_lookup_size_offset() for the check: probed_fn's size. */
	.globl	probed_fn_size
probed_fn_size:
	.quad	.Lprobed_fn_end - probed_fn
	.text

/*
 * The retpoline thunk for %rax (Linux's __x86_indirect_thunk_rax), here
 * just the indirect jump it stands for: what matters to the optimizer is
 * that the function's indirect jump is now a direct jump to it.
 */
SYM_FUNC_START(pt_indirect_thunk_rax)
	jmp	*%rax
SYM_FUNC_END(pt_indirect_thunk_rax)

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

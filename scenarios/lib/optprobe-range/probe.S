/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - two kprobes in one function whose optprobe ranges overlap, their
 * boost slots and detour buffers (placed before the function, so that a
 * jump's displacement to them is negative) and the handler the detours call.
 */
#include "entry.h"

	.text

/* kp_in's boost slot: a copy of incq %rbx, then jmp probed_fn+7. */
SYM_FUNC_START(slot_in)
	.fill	16, 1, 0xcc
SYM_FUNC_END(slot_in)

/* kp_entry's boost slot: a copy of pushq %rbx, then jmp probed_fn+1. */
SYM_FUNC_START(slot_entry)
	.fill	16, 1, 0xcc
SYM_FUNC_END(slot_entry)

/*
 * op_in's detour: call opt_thunk, the copies of incq %rbx and
 * movq %rbx, %rax, jmp probed_fn+10.
 */
SYM_FUNC_START(detour_in)
	.fill	32, 1, 0xcc
SYM_FUNC_END(detour_in)

/*
 * op_entry's detour: call opt_thunk, the copies of pushq %rbx,
 * movq %rdi, %rbx and incq %rbx, jmp probed_fn+7.
 */
SYM_FUNC_START(detour_entry)
	.fill	32, 1, 0xcc
SYM_FUNC_END(detour_entry)

/*
 * u64 probed_fn(u64 x). kp_entry sits on +0 and its optprobe's jump covers
 * +0..+6 (three instructions; the detour returns to +7). kp_in sits on +4
 * and its optprobe's jump covers +4..+9 (two instructions; the detour
 * returns to +10). So +7, where op_entry's detour returns, lies inside
 * op_in's jump while that jump is in the text.
 */
SYM_FUNC_START(probed_fn)
	pushq	%rbx			/* +0: kp_entry */
	movq	%rdi, %rbx		/* +1: 3 bytes */
	incq	%rbx			/* +4: 3 bytes, kp_in */
	movq	%rbx, %rax		/* +7: 3 bytes */
	shrq	$3, %rax		/* +10 */
	xorq	%rbx, %rax
	popq	%rbx
	ret
SYM_FUNC_END(probed_fn)

/* optimized_callback() with every argument register kept. */
FENTRY_HANDLER opt_thunk, opt_handler

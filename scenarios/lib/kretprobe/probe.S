/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the kretprobed function and the kretprobe trampoline.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x, u64 depth): the function the kretprobe sits on. Its
 * first instruction is a one-byte nop, which the kprobe's int3 replaces; the
 * int3 handler emulates it (there is nothing to do) and resumes after it.
 * The body is C and returns straight to probed_fn's caller, through the
 * word the kretprobe may have hijacked.
 */
SYM_FUNC_START(probed_fn)
	nop
	jmp	probed_body
SYM_FUNC_END(probed_fn)

/*
 * kretprobe_trampoline: a return the kretprobe hijacked lands here, with
 * %rsp just above the word that held the return address. As Linux's
 * trampoline does, it takes that word back as the slot for the real return
 * address, keeps the return value, asks the handler where the frame was
 * meant to return, and returns there.
 */
SYM_FUNC_START(kretprobe_trampoline)
	subq	$8, %rsp		/* the hijacked word: the slot */
	pushq	%rax			/* the return value */
	pushq	%rdx
	pushq	%rcx			/* (keeps the call 16-byte aligned) */
	leaq	24(%rsp), %rdi		/* the frame: where its return address was */
	call	kretprobe_trampoline_handler
	movq	%rax, 24(%rsp)
	popq	%rcx
	popq	%rdx
	popq	%rax
	ret
SYM_FUNC_END(kretprobe_trampoline)

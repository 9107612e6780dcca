/* SPDX-License-Identifier: GPL-2.0 */
/*
 * handler - what traced_fn's fentry site calls once patched.
 *
 * Like ftrace_caller, it runs before traced_fn's prologue, so traced_fn's
 * arguments are still live in the argument registers (and %rax, which a
 * varargs caller uses): save them around the C part. The stack holds our
 * return address (traced_fn + 5) with traced_fn's own return address just
 * above it.
 */
#include "entry.h"

	.text

SYM_FUNC_START(handler)
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	movq	7*8(%rsp), %rdi			/* ip: the site... */
	subq	$MCOUNT_INSN_SIZE, %rdi		/* ...not the return address */
	movq	8*8(%rsp), %rsi			/* parent_ip */
	call	handler_func
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	ret
SYM_FUNC_END(handler)

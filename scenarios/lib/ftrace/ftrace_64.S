/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ftrace_64.S - the two handlers a livepatched function's fentry site can
 * call (shared by the ftrace-* scenarios).
 *
 * Like ftrace_caller, each runs before the traced function's prologue, so
 * that function's arguments are still live in the argument registers (and
 * %rax): save them around the C part. On entry (%rsp) is the return address,
 * site + 5, and 8(%rsp) the traced function's own return address.
 */
#include "entry.h"

.macro FTRACE_HANDLER name:req, func:req
SYM_FUNC_START(\name)
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
	call	\func
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	ret
SYM_FUNC_END(\name)
.endm

	.text

/* The livepatch ops' own trampoline: the only ops on the function. */
FTRACE_HANDLER lp_handler, lp_handler_func

/* The list caller: the function has more than one ops (livepatch + tracer). */
FTRACE_HANDLER ftrace_list_caller, ftrace_list_func

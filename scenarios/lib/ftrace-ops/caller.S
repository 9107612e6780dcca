/* SPDX-License-Identifier: GPL-2.0 */
/*
 * caller.S - ftrace_caller, the one trampoline every enabled fentry site
 * calls, and its patchable "call func" (ftrace_call): the list function
 * when more than one ops is registered, the only ops' func directly when
 * one is (ftrace_update_ftrace_func() rewrites it).
 */
#include "entry.h"

	.text

SYM_FUNC_START(ftrace_caller)
	/* Called from the site: 0(%rsp) = site + 5, 8(%rsp) = parent_ip. */
	SAVE_MCOUNT_REGS
	MCOUNT_ARGS
	movq	function_trace_op(%rip), %rdx	/* op */
	xorl	%ecx, %ecx			/* regs: none */
	.globl	ftrace_call
ftrace_call:
	call	ftrace_stub			/* ftrace_update_ftrace_func() */
	RESTORE_MCOUNT_REGS
	ret
SYM_FUNC_END(ftrace_caller)

SYM_FUNC_START(ftrace_stub)
	ret
SYM_FUNC_END(ftrace_stub)

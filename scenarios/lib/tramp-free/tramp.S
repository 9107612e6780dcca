/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - the template of the dynamic trampoline free.c allocates, copies
 * and later frees: it calls tramp_handler (an ftrace ops callback, say)
 * and returns, so a task preempted in the handler has a return address
 * into the trampoline on its stack. Position-independent (the handler's
 * address is an absolute immediate), kept in .rodata: only copies run.
 */
#include "entry.h"

	.section .rodata, "a"
	.balign	16
	.globl	tramp_template, tramp_template_end
tramp_template:
	pushq	%rbp
	movq	%rsp, %rbp
	movabsq	$tramp_handler, %rax
	call	*%rax
	popq	%rbp
	ret
tramp_template_end:

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * template.S - the dynamic ftrace trampoline's template.
 *
 * create_trampoline() copies ftrace_tramp_template..ftrace_tramp_end into
 * module_alloc() memory, fills in the call to the ops' func and the ops
 * pointer stored at the end (x86's "save the local ftrace_ops at the end",
 * the layout of seed 001's arm64 RFC), and the fentry site of the one
 * function this ops traces is pointed at the copy.
 *
 * Mark Rutland, seed 001: "I think it would be much better to have a
 * separate template for the trampoline which we don't have to patch in this
 * way. It can even be placed into a non-executable RO section, since the
 * template shouldn't be executed directly." So it lives in .rodata: only
 * copies of it ever run. Everything in it is position-independent except
 * the call, whose rel32 create_trampoline() computes for the copy.
 */
#include "entry.h"

	.section .rodata, "a"
	.balign	16
	.globl	ftrace_tramp_template, ftrace_tramp_call, ftrace_tramp_op, ftrace_tramp_end
ftrace_tramp_template:
	/* Called from the site: 0(%rsp) = site + 5, 8(%rsp) = parent_ip. */
	SAVE_MCOUNT_REGS
	MCOUNT_ARGS
	movq	ftrace_tramp_op(%rip), %rdx	/* op: this trampoline's ops */
	xorl	%ecx, %ecx			/* regs: none (not a regs caller) */
ftrace_tramp_call:
	.byte	CALL_INSN_OPCODE		/* call ops->func: create_trampoline() */
	.long	0				/* fills in the rel32 */
	RESTORE_MCOUNT_REGS
	ret
	.balign	8
ftrace_tramp_op:
	.quad	0				/* struct ftrace_ops *: filled in */
ftrace_tramp_end:

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mod.S - what ftrace-modfail's loader "loads" (a template in .rodata that
 * modfail.c copies into module_alloc() memory, as the module loader lays
 * out a module's text) and the ftrace caller its sites call when tracing is
 * on.
 *
 *   mod_template + 0:  long mod_fn(long x)   an ftrace-able module function:
 *                      the 5-byte fentry nop, then x + 1
 *   mod_init_off:      long mod_init(void)   the module's init function: it
 *                      fails, -ENODEV (no hardware, say)
 *
 * ftrace_caller is what an enabled fentry site calls: it keeps the traced
 * function's argument registers and calls the tracer, ftrace_trace_fn().
 */
#include "entry.h"

	.section .rodata, "a"
	.balign	16
	.globl	mod_template, mod_site, mod_init_off, mod_template_end
mod_template:
mod_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopl 0(%rax,%rax,1): the fentry site */
	leaq	1(%rdi), %rax
	ret
	.balign	16
mod_init_off:
	movq	$-19, %rax			/* -ENODEV */
	ret
mod_template_end:

	.text

SYM_FUNC_START(ftrace_caller)
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx				/* four pushes: the call below sees rsp 16-aligned */
	call	ftrace_trace_fn
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
	ret
SYM_FUNC_END(ftrace_caller)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * graph.S - two traced functions, the function graph tracer's entry caller
 * and its return trampoline.
 *
 * u64 outer_fn(u64 x) calls u64 inner_fn(u64 x); each starts with a 5-byte
 * nop, its fentry site, which fgraph.c turns into "call ftrace_graph_caller"
 * while graph tracing is on (as the -mfentry sites of a kernel built with
 * CONFIG_FUNCTION_GRAPH_TRACER are).
 */
#include "entry.h"

	.text

SYM_FUNC_START(outer_fn)
	.globl	outer_site
outer_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* fentry site */
	pushq	%rbx
	movq	%rdi, %rbx
	call	inner_fn
	addq	%rbx, %rax			/* x + (x + 0x11) */
	popq	%rbx
	ret
SYM_FUNC_END(outer_fn)

SYM_FUNC_START(inner_fn)
	.globl	inner_site
inner_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* fentry site */
	leaq	0x11(%rdi), %rax
	ret
SYM_FUNC_END(inner_fn)

/*
 * ftrace_graph_caller: called from a fentry site, so 0(%rsp) is the site's
 * end and 8(%rsp) the traced function's return address. It keeps the
 * argument registers, as an fentry callee must, and hands
 * prepare_ftrace_return() the address of that return address (the word it
 * may hijack) and the site.
 */
SYM_FUNC_START(ftrace_graph_caller)
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%r8
	pushq	%r9
	pushq	%rax
	subq	$8, %rsp			/* 16-byte aligned call */
	leaq	72(%rsp), %rdi			/* parent: &return address */
	movq	64(%rsp), %rsi
	subq	$5, %rsi			/* self: the fentry site */
	call	prepare_ftrace_return
	addq	$8, %rsp
	popq	%rax
	popq	%r9
	popq	%r8
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
	ret
SYM_FUNC_END(ftrace_graph_caller)

/*
 * return_to_handler: a return prepare_ftrace_return() hijacked lands here,
 * %rsp just above the word that held the return address. It takes that
 * word back as the slot for the real return address, keeps the return
 * value, pops the task's return stack (ftrace_return_to_handler()) and
 * returns where the popped entry says.
 */
SYM_FUNC_START(return_to_handler)
	subq	$8, %rsp			/* the hijacked word: the slot */
	pushq	%rax
	pushq	%rdx
	pushq	%rcx
	call	ftrace_return_to_handler
	movq	%rax, 24(%rsp)
	popq	%rcx
	popq	%rdx
	popq	%rax
	ret
SYM_FUNC_END(return_to_handler)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - seed 004's call_to_exception_trampoline, on x86-64, and the
 * ftrace caller that uses it.
 *
 * call_to_exception_trampoline turns a CALL frame into an exception frame:
 * it pretends the CALL that got us here was an int3 scribbled over it. Use
 * it like
 *
 *	PUSH $func
 *	JMP call_to_exception_trampoline
 *
 * from code reached by a CALL. func(regs) sees regs->ip pointing at that
 * CALL and regs->sp at the stack as it was before the CALL (the caller's
 * <previous context>), and, like a handler of an int3 on a CALL, must move
 * regs->ip to make progress. The trampoline then returns to regs->ip with
 * %rsp = regs->sp and regs->flags, through three words it writes just below
 * regs->sp (where RET-IP and func were): whatever regs->sp says is what the
 * interrupted code runs on.
 */
#include "entry.h"

#define __KERNEL_CS	0x10
#define __KERNEL_DS	0x18

	.text

SYM_FUNC_START(call_to_exception_trampoline)
	/*
	 * On entry the stack looks like:
	 *
	 *	2*8(%rsp)	<previous context>
	 *	1*8(%rsp)	RET-IP
	 *	0*8(%rsp)	func
	 *
	 * transform it into a struct pt_regs:
	 *
	 *	23*8(%rsp)	<previous context>
	 *	22*8(%rsp)	gap / RET-IP
	 *	21*8(%rsp)	gap / func
	 *	20*8(%rsp)	ss
	 *	19*8(%rsp)	sp = &<previous context>
	 *	18*8(%rsp)	flags
	 *	17*8(%rsp)	cs
	 *	16*8(%rsp)	ip = RET-IP - 5: the CALL
	 *	15*8(%rsp)	orig_ax = -1
	 *	...		the general registers, %r15 at 0*8(%rsp)
	 */
	pushq	$__KERNEL_DS			/* ss */
	pushq	%rsp				/* points at ss... */
	addq	$3*8, (%rsp)			/* ...make it &<previous context> */
	pushfq
	pushq	$__KERNEL_CS
	pushq	5*8(%rsp)			/* RET-IP */
	subq	$CALL_INSN_SIZE, (%rsp)		/* point at the CALL */
	pushq	$-1				/* orig_ax */
	PUSH_REGS

	movq	%rsp, %rdi			/* 1st argument: pt_regs */
	movq	PT_REGS_SIZE(%rsp), %rax	/* func */
	call	*%rax

	/*
	 * Return to regs->ip on regs->sp: put regs->ip, regs->flags and
	 * regs->ax in the three words below regs->sp, switch to them, pop
	 * %rax and the flags and RET. Those words are dead: RET-IP, func and
	 * ss when regs->sp was not moved.
	 */
	movq	PT_RSP(%rsp), %rax
	movq	PT_RIP(%rsp), %rcx
	movq	%rcx, -1*8(%rax)
	movq	PT_EFLAGS(%rsp), %rcx
	movq	%rcx, -2*8(%rax)
	movq	PT_RAX(%rsp), %rcx
	movq	%rcx, -3*8(%rax)
	leaq	-3*8(%rax), %rax
	movq	%rax, PT_ORIG_RAX(%rsp)		/* the stack to return on */

	POP_REGS
	movq	(%rsp), %rsp			/* regs->sp - 3*8 */
	popq	%rax
	popfq
	ret
SYM_FUNC_END(call_to_exception_trampoline)

/*
 * ftrace_regs_caller - what traced_fn's fentry site calls, Peter's
 *
 *	ENTRY(ftrace_regs_caller)
 *	GLOBAL(ftrace_regs_func)
 *		push ftrace_stub
 *		push ftrace_regs_handler
 *		jmp call_to_exception_trampoline
 *
 * on x86-64. The site's CALL left 0(%rsp) = site + 5 and 8(%rsp) =
 * parent_ip. The ftrace func must end up between them, so that the
 * trampoline still finds RET-IP right above func and regs->sp points at
 *
 *	struct ftrace_regs_stack { ftrace_func_t func; unsigned long parent_ip; };
 *
 * which is what ftrace_regs_handler() reads. So: copy RET-IP down one word
 * and store func (Peter's patchable ftrace_regs_func immediate) where it
 * was.
 */
SYM_FUNC_START(ftrace_regs_caller)
	pushq	(%rsp)				/* RET-IP, again */
	movq	$tracer_func, 8(%rsp)		/* func (ftrace_regs_func), above RET-IP */
	pushq	$ftrace_regs_handler
	jmp	call_to_exception_trampoline
SYM_FUNC_END(ftrace_regs_caller)

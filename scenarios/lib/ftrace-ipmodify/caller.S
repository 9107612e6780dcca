/* SPDX-License-Identifier: GPL-2.0 */
/*
 * caller.S - ftrace_regs_caller, the trampoline an enabled fentry site
 * calls when an ops wants the registers (FTRACE_OPS_FL_SAVE_REGS): it
 * builds a pt_regs with regs->ip = site + 5, calls the list function with
 * it, and returns to regs->ip, which a callback may have changed (a
 * livepatch sends the CPU to the new function that way).
 */
#include "entry.h"

#define PT_R9		(8 * 8)
#define PT_R8		(9 * 8)
#define PT_RCX		(11 * 8)
#define PT_RDX		(12 * 8)
#define PT_RSI		(13 * 8)

	.text

SYM_FUNC_START(ftrace_regs_caller)
	/* 0(%rsp) = site + 5, 8(%rsp) = the traced function's return address */
	subq	$PT_REGS_SIZE, %rsp
	movq	%rdi, PT_RDI(%rsp)
	movq	%rsi, PT_RSI(%rsp)
	movq	%rdx, PT_RDX(%rsp)
	movq	%rcx, PT_RCX(%rsp)
	movq	%rax, PT_RAX(%rsp)
	movq	%r8, PT_R8(%rsp)
	movq	%r9, PT_R9(%rsp)
	movq	PT_REGS_SIZE(%rsp), %rdi
	movq	%rdi, PT_RIP(%rsp)		/* regs->ip = site + 5 */
	subq	$MCOUNT_INSN_SIZE, %rdi		/* ip: the site */
	movq	PT_REGS_SIZE+8(%rsp), %rsi	/* parent_ip */
	xorl	%edx, %edx			/* op: the list function finds them */
	movq	%rsp, %rcx			/* regs */
	call	ftrace_ops_list_func
	/* Callbacks may change the RIP: return there. */
	movq	PT_RIP(%rsp), %rax
	movq	%rax, PT_REGS_SIZE(%rsp)
	movq	PT_R9(%rsp), %r9
	movq	PT_R8(%rsp), %r8
	movq	PT_RAX(%rsp), %rax
	movq	PT_RCX(%rsp), %rcx
	movq	PT_RDX(%rsp), %rdx
	movq	PT_RSI(%rsp), %rsi
	movq	PT_RDI(%rsp), %rdi
	addq	$PT_REGS_SIZE, %rsp
	ret
SYM_FUNC_END(ftrace_regs_caller)

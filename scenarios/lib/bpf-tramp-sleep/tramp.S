/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - the template of the trampoline image sleep.c allocates,
 * copies and later frees: a BPF trampoline that calls the original
 * function (BPF_TRAMP_F_CALL_ORIG) between its fentry and fexit programs,
 * so a task that sleeps in the original function has a return address
 * into the image on its stack. With the image reference (Linux since
 * commit e21aa341785c, "bpf: Fix fexit trampoline.") the call to the
 * original is bracketed by bpf_tramp_enter() and bpf_tramp_exit(), which
 * take and drop a reference on the image (percpu_ref_get/put); a scenario
 * that ships pt_bpf_tramp_noref.h builds the image without them.
 * Position-independent (absolute immediates), kept in .rodata: only
 * copies run.
 */
#include "entry.h"

	.section .rodata, "a"
	.balign	16
	.globl	tramp_template, tramp_template_end
tramp_template:
	pushq	%rbp
	movq	%rsp, %rbp
	pushq	%rbx
	pushq	%rbx			/* keeps the stack 16-byte aligned */
	movq	%rdi, %rbx		/* the argument, for the original */
	movabsq	$fentry_prog, %rax
	call	*%rax
#if !__has_include("pt_bpf_tramp_noref.h")
	movabsq	$bpf_tramp_enter, %rax
	call	*%rax
#endif
	movq	%rbx, %rdi
	movabsq	$sleepy_fn, %rax
	call	*%rax			/* the original function: it may sleep */
	movq	%rax, %rbx		/* its return value, for fexit */
#if !__has_include("pt_bpf_tramp_noref.h")
	movabsq	$bpf_tramp_exit, %rax
	call	*%rax
#endif
	movq	%rbx, %rdi
	movabsq	$fexit_prog, %rax
	call	*%rax
	movq	%rbx, %rax
	popq	%rbx
	popq	%rbx
	popq	%rbp
	ret
tramp_template_end:

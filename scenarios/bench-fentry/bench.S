/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A fixed fentry-hook workload (the loop a Unicorn hook benchmark runs) as
 * a slice task, so patchtrace and Unicorn run the same instruction stream
 * and can be compared side by side. Per iteration i: the loop body (5 insns), a
 * fentry-style traced function (9 insns for odd i, 10 for even i) whose first
 * instruction is a 5-byte call to a handler (6 insns) that stores i in a
 * per-CPU slot through a base register. 20.5 instructions per iteration on
 * average; 5 memory writes and 4 reads per iteration.
 */
	.text

	.globl	bench_main
	.type	bench_main, @function
bench_main:
	push	%rbx
	push	%r12
	mov	%gs:this_cpu_off, %rbx		/* per-CPU base, like the harness's rbx */
	add	$bench_slot - 0x10, %rbx	/* so 0x10(%rbx) is bench_slot */
	mov	bench_iters(%rip), %r12
	xor	%ecx, %ecx
	xor	%edx, %edx
1:	mov	%rcx, %rdi
	call	bench_traced
	add	$1, %rcx
	cmp	%r12, %rcx
	jne	1b
	mov	%rdx, %gs:bench_result
	pop	%r12
	pop	%rbx
	ret
	.size	bench_main, .-bench_main

	.type	bench_traced, @function
bench_traced:
	call	bench_handler			/* e8 rel32, an fentry site */
	mov	%rdi, %rax
	add	$0x1234, %rax
	xor	%rdx, %rax
	mov	%edi, %r8d
	and	$1, %r8d
	cmp	$1, %r8d
	je	2f				/* taken for odd i */
	add	%rax, %rdx
2:	ret
	.size	bench_traced, .-bench_traced

	.type	bench_handler, @function
bench_handler:
	push	%rbp
	push	%rax
	mov	%rdi, 0x10(%rbx)		/* the per-CPU slot store */
	pop	%rax
	pop	%rbp
	ret
	.size	bench_handler, .-bench_handler

	.data
	.balign	8
	.globl	bench_iters
	.type	bench_iters, @object
bench_iters:
	.quad	1000000
	.size	bench_iters, 8

	.section .data..percpu, "aw"
	.balign	8
	.globl	bench_slot, bench_result
	.type	bench_slot, @object
bench_slot:
	.quad	0
	.size	bench_slot, 8
	.type	bench_result, @object
bench_result:
	.quad	0
	.size	bench_result, 8

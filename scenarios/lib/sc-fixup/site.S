/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - an inline static_call() site and its two targets, and the
 * static call trampoline of a module that is being loaded.
 *
 *   u64 sc_caller(u64 x)   sc_func_a(x) + 1 or sc_func_b(x) + 1, by the
 *                          call at sc_site that static_call_update() flips
 *
 * mod_tramp_template is a module's static call trampoline as the assembler
 * left it: "jmp __x86_return_thunk" (here the thunk's stand-in) and the
 * trampoline signature (0f b9 cc, a ud1 that no compiler emits). The
 * module loader copies it into module_alloc() memory; apply_returns()
 * turns the jmp into a plain "ret; int3 x 4" (__static_call_fixup()).
 */
#include "entry.h"

	.text

SYM_FUNC_START(sc_caller)
	.globl	sc_site
sc_site:
	call	sc_func_a			/* static_call(sc)(x) */
	addq	$1, %rax
	ret
SYM_FUNC_END(sc_caller)

SYM_FUNC_START(sc_func_a)
	leaq	0x11(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_a)

SYM_FUNC_START(sc_func_b)
	leaq	0x22(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_b)

SYM_FUNC_START(return_thunk)
	ret
	int3
SYM_FUNC_END(return_thunk)

	.section .rodata, "a"
	.balign	16
	.globl	mod_tramp_template, mod_tramp_template_end
mod_tramp_template:
	.byte	0xe9			/* jmp return_thunk, relocated by the loader */
	.long	0
	.byte	0x0f, 0xb9, 0xcc	/* the static call trampoline signature */
mod_tramp_template_end:

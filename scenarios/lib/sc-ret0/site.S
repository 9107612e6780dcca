/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - an inline static_call() site and the functions
 * static_call_update() points it at.
 *
 *   u64 sc_caller(u64 x)   static_call(sc)(x) + 1: sc_func_a(x) + 1, or
 *                          1 once the site is __static_call_return0's
 *                          inline form (RAX cleared in place)
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

/* The stub a static call may be pointed at: returns 0 (any width). */
SYM_FUNC_START(__static_call_return0)
	xorl	%eax, %eax
	ret
SYM_FUNC_END(__static_call_return0)

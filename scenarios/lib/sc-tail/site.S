/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - a module's two static_call() sites, one a plain call and one a
 * tail call, and the targets static_call_update() switches them between.
 *
 *   u64 mod_call_fn(u64 x)   sc(x + 1) + 1: "call" at mod_call_site
 *   u64 mod_tail_fn(u64 x)   sc(x + 3): the compiler's tail call, "jmp"
 *                            at mod_tail_site, the function's last bytes
 *   u64 mod_next_fn(u64 x)   x * 7, the function after it in the text
 *
 * sc is sc_func_a (x + 0x11) or sc_func_b (x + 0x22). The 5-byte jmp is
 * spelled out: the assembler would pick the 2-byte form for a near target.
 */
#include "entry.h"

	.text

SYM_FUNC_START(mod_call_fn)
	addq	$1, %rdi
	.globl	mod_call_site
mod_call_site:
	call	sc_func_a			/* static_call(sc)(x) */
	addq	$1, %rax
	ret
SYM_FUNC_END(mod_call_fn)

SYM_FUNC_START(mod_tail_fn)
	addq	$3, %rdi
	.globl	mod_tail_site
mod_tail_site:
	.byte	0xe9				/* jmp sc_func_a: return static_call(sc)(x) */
	.long	sc_func_a - (mod_tail_site + 5)
SYM_FUNC_END(mod_tail_fn)

SYM_FUNC_START(mod_next_fn)
	imulq	$7, %rdi, %rax
	ret
SYM_FUNC_END(mod_next_fn)

SYM_FUNC_START(sc_func_a)
	leaq	0x11(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_a)

SYM_FUNC_START(sc_func_b)
	leaq	0x22(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_b)

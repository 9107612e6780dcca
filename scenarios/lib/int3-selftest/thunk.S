/* SPDX-License-Identifier: GPL-2.0 */
/*
 * thunk.S - int3_magic_thunk: int3_magic() behind a thunk that keeps every
 * register the C calling convention lets a callee change.
 *
 * The #BP handler emulates a call at a site the compiler saw as an asm
 * statement with no register clobbers, so whatever it calls there must
 * change no register but the ones the asm names (none). A C function may
 * change any caller-saved register (SysV x86-64 ABI §3.2.1: rax, rcx, rdx,
 * rsi, rdi, r8-r11); this thunk saves them, calls the C function, and puts
 * them back before it returns to the site's end. Linux took the same way
 * out for calls the compiler cannot see (the register-preserving thunks of
 * static_call and paravirt); its int3 selftest fix made the target a two-
 * instruction asm function instead (commit ecc606103837).
 */
#include "entry.h"

	.text

SYM_FUNC_START(int3_magic_thunk)
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	call	int3_magic
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	ret
SYM_FUNC_END(int3_magic_thunk)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fastop.S - KVM's instruction emulator's fastop functions, modelled: one
 * ALU instruction on %rax and %rdx each, whose result the caller reads
 * back from %rax and from RFLAGS after the call (pushf). Each returns, as
 * the compiler and the RET macro emit a return under
 * CONFIG_RETHUNK, with "jmp __x86_return_thunk" (the 5-byte form) and an
 * int3; return_sites lists those jmps (the kernel's .return_sites, offsets
 * relative to the entry) for apply_returns().
 */
#include "entry.h"

.macro FASTOP name, insn
SYM_FUNC_START(\name)
	\insn	%rdx, %rax
	.globl	\name\()_ret
\name\()_ret:
	.byte	0xe9			/* jmp __x86_return_thunk */
	.long	__x86_return_thunk - (. + 4)
	int3
SYM_FUNC_END(\name)
.endm

	.text

FASTOP fop_add, addq
FASTOP fop_sub, subq
FASTOP fop_xor, xorq

	.section .rodata
	.balign	4
	.globl	return_sites, return_sites_end
return_sites:
	.long	fop_add_ret - .
	.long	fop_sub_ret - .
	.long	fop_xor_ret - .
return_sites_end:

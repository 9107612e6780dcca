/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mod.S - the text of a module that load.c "loads": a template in .rodata
 * exactly one page long, which load.c copies into a one-page
 * module_alloc() allocation (a guard page follows it), with the tables
 * the module's ELF would carry.
 *
 *   mod_sct       the static call trampoline of the module's key mod_hook,
 *                 defined NULL: "jmp __x86_return_thunk" and the
 *                 trampoline signature (0f b9 cc, a ud1 no compiler emits)
 *   u64 mod_fn(u64 x)
 *                 static_call_cond(mod_hook)(x); returns x + 1. Its return,
 *                 "jmp __x86_return_thunk", is the last instruction of the
 *                 page, as the module layout of the report left it.
 *
 * mod_relocs are the offsets of the rel32 fields that refer to
 * __x86_return_thunk (R_X86_64_PLT32, resolved by load.c), mod_return_sites
 * the offsets of the return jmps (the module's .return_sites, which list
 * the trampoline's jmp too).
 */
#include "entry.h"

#define PAGE_SIZE	4096
#define MOD_FN_SIZE	19	/* mod_fn below: 1 + 3 + 5 + 4 + 1 + 5 bytes */

	.section .rodata, "a"
	.balign	PAGE_SIZE
	.globl	mod_text_template, mod_text_end, mod_sct, mod_fn
mod_text_template:
mod_sct:
	.byte	0xe9			/* jmp __x86_return_thunk */
mod_sct_rel:
	.long	0
	.byte	0x0f, 0xb9, 0xcc	/* ud1 %esp, %ecx: the signature */

	.org	mod_text_template + PAGE_SIZE - MOD_FN_SIZE, 0xcc
mod_fn:
	pushq	%rbx
	movq	%rdi, %rbx
	call	mod_sct			/* static_call_cond(mod_hook)(x) */
	leaq	1(%rbx), %rax
	popq	%rbx
mod_fn_ret:
	.byte	0xe9			/* jmp __x86_return_thunk: the page's last bytes */
mod_fn_rel:
	.long	0
mod_text_end:
	.org	mod_text_template + PAGE_SIZE	/* fails if mod_fn outgrew MOD_FN_SIZE */

	.balign	8
	.globl	mod_relocs, mod_relocs_end, mod_return_sites, mod_return_sites_end
mod_relocs:
	.quad	mod_sct_rel - mod_text_template
	.quad	mod_fn_rel - mod_text_template
mod_relocs_end:
mod_return_sites:
	.quad	mod_sct - mod_text_template
	.quad	mod_fn_ret - mod_text_template
mod_return_sites_end:

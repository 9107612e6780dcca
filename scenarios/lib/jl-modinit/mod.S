/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mod.S - the two text sections of a module that jl.c "loads": templates
 * in .rodata that jl.c copies into module_alloc() memory, as the module
 * loader lays out a module's init text and core text in separate
 * allocations. Each holds one function with one jump label site: a 5-byte
 * nop (the key is off) that a static_key_enable() turns into a jmp to the
 * function's other branch. Position-independent: the jmp jl.c writes is
 * relative, within the same copy.
 *
 *   u64 mod_init(void)        init text: 1 (key off) or 2 (key on)
 *   u64 mod_core_fn(u64 x)    core text: x + 0x11 (key off) or x + 0x22
 */
#include "entry.h"

	.section .rodata, "a"
	.balign	16
	.globl	mod_init_template, mod_init_site, mod_init_yes, mod_init_template_end
mod_init_template:
mod_init_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopl 0(%rax,%rax,1): the jump label */
	movl	$1, %eax
	ret
mod_init_yes:
	movl	$2, %eax
	ret
mod_init_template_end:

	.balign	16
	.globl	mod_core_template, mod_core_site, mod_core_yes, mod_core_template_end
mod_core_template:
mod_core_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopl 0(%rax,%rax,1): the jump label */
	leaq	0x11(%rdi), %rax
	ret
mod_core_yes:
	leaq	0x22(%rdi), %rax
	ret
mod_core_template_end:

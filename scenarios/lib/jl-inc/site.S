/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - a function with one jump label site, as static_branch_unlikely()
 * lays it out: a 5-byte nop while the key is off, which enabling the key
 * turns into a jmp to the function's other branch.
 *
 *   u64 sk_fn(u64 x)   x + 0x11 (key off) or x + 0x22 (key on)
 */
#include "entry.h"

	.text

SYM_FUNC_START(sk_fn)
	.globl	sk_site
sk_site:
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopl 0(%rax,%rax,1): the jump label */
	leaq	0x11(%rdi), %rax
	ret
	.globl	sk_yes
sk_yes:
	leaq	0x22(%rdi), %rax
	ret
SYM_FUNC_END(sk_fn)

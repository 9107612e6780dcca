/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - a function with an alternative site whose original instruction
 * is shorter than its replacement: the assembler pads it with single-byte
 * nops. When the CPU has the feature the original stays, and
 * apply_alternatives() only optimizes the padding, in place, into one long
 * nop. u64 nops_fn(void) returns 8 either way, like any code interrupt
 * handlers run.
 */
#include "entry.h"

	.text

SYM_FUNC_START(nops_fn)
	.globl	alt_site, alt_pad
alt_site:
	movl	$7, %eax		/* the original instruction, kept */
alt_pad:
	.byte	0x90, 0x90, 0x90, 0x90, 0x90, 0x90	/* its padding */
	addl	$1, %eax
	ret
SYM_FUNC_END(nops_fn)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - u64 feature_fn(void): eight alternative sites, each an addl of
 * 0 to %eax (83 c0 00) that the boot patcher replaces with an addl of 1
 * (83 c0 01), so feature_fn() returns 0 as built and 8 once every site is
 * patched. Called directly only.
 */
#include "entry.h"

	.text

SYM_FUNC_START(feature_fn)
	xorl	%eax, %eax
	.globl	alt_sites
alt_sites:
	.rept	8
	.byte	0x83, 0xc0, 0x00	/* addl $0, %eax */
	.endr
	ret
SYM_FUNC_END(feature_fn)

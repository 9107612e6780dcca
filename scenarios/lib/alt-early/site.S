/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - a function with an alternative site: u64 feature_fn(void)
 * returns 0 as built and 1 once the alternative (the feature's
 * replacement) is applied, like a static_cpu_has() or ALTERNATIVE() site
 * in code that interrupt handlers run.
 */
#include "entry.h"

	.text

SYM_FUNC_START(feature_fn)
	.globl	alt_site
alt_site:
	movl	$0, %eax		/* b8 00 00 00 00, replaced by movl $1, %eax */
	ret
SYM_FUNC_END(feature_fn)

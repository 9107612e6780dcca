/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the fentry handler text_poke_bp() installs at traced_fn, and
 * the function a kprobe sits on.
 */
#include "entry.h"

	.text

FENTRY_HANDLER handler, handler_func

/*
 * u64 probed_fn(u64 x): its first instruction is a one-byte nop, where the
 * kprobe's int3 goes; the kprobe emulates it (a boosted nop).
 */
SYM_FUNC_START(probed_fn)
	nop
	leaq	0x3c(%rdi), %rax
	ret
SYM_FUNC_END(probed_fn)

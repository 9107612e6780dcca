/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site.S - an inline static_call() site and its two targets.
 *
 * u64 sc_caller_fn(u64 x): a one-byte nop (an ordinary instruction a kprobe
 * may sit on), then sc_site, the "call sc_func_a" that static_call_update()
 * rewrites to call whichever function the static call points at, as the
 * inline static calls of commit 6333e8f73b83's series are (the call site
 * itself is patched, not a trampoline).
 */
#include "entry.h"

	.text

SYM_FUNC_START(sc_caller_fn)
	nop
	.globl	sc_site
sc_site:
	call	sc_func_a
	ret
SYM_FUNC_END(sc_caller_fn)

SYM_FUNC_START(sc_func_a)
	leaq	0x11(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_a)

SYM_FUNC_START(sc_func_b)
	leaq	0x22(%rdi), %rax
	ret
SYM_FUNC_END(sc_func_b)

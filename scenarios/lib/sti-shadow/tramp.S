/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - ftrace-sti-shadow-nmi / ftrace-sti-shadow (seed 002): Linus's
 * push/jmp trampolines. The return address is pushed before the sti; the
 * target is read by the jmp, the one instruction the sti shadow covers.
 */
#include "entry.h"

	.text

/* IRQs were on when the int3 hit: the handler cleared IF in the frame. */
SYM_FUNC_START(bp_call_tramp_sti)
	pushq	%gs:bp_call_return
	sti
	jmp	*%gs:bp_call_target
SYM_FUNC_END(bp_call_tramp_sti)

/* IRQs were off. */
SYM_FUNC_START(bp_call_tramp)
	pushq	%gs:bp_call_return
	jmp	*%gs:bp_call_target
SYM_FUNC_END(bp_call_tramp)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - ftrace-double-int3 (seed 002, alternative 3): push the return
 * address from the slot, then trap again; the second int3's handler sets
 * the target and the flags (int3.c). The .rodata words give the C side the
 * address of each int3.
 */
#include "entry.h"

.macro BP_CALL_TRAMP name:req, slot:req
SYM_FUNC_START(bp_call_tramp_\name)
	pushq	%gs:\slot
.Lint3_\name:
	int3
SYM_FUNC_END(bp_call_tramp_\name)
	.pushsection .rodata
	.balign 8
	.globl	bp_tramp_int3_\name
	.type	bp_tramp_int3_\name, @object
	.size	bp_tramp_int3_\name, 8
bp_tramp_int3_\name:
	.quad	.Lint3_\name
	.popsection
.endm

	.text

/* IRQs were on: the first handler cleared IF; the second sets it again. */
BP_CALL_TRAMP irqs_on, bp_call_return

/* IRQs were off. */
BP_CALL_TRAMP irqs_off, bp_call_return

/* In an NMI: slots of its own. */
BP_CALL_TRAMP nmi, bp_nmi_call_return

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * head.S - where every CPU starts (docs/slice-abi.md "Boot").
 *
 * The emulator enters pt_start in 64-bit mode at CPL 0 with IF clear,
 * %rdi = CPU id, %rsi = CPU count, %rsp = the top of this CPU's boot stack
 * and the GS base on this CPU's per-CPU area. The boot stack becomes the
 * stack of the CPU's idle context (task id 0).
 */
#include "entry.h"

	.text

SYM_FUNC_START(pt_start)
	xorl	%ebp, %ebp		/* end of the frame-pointer chain */
	call	start_cpu		/* does not return */
1:	hlt
	jmp	1b
SYM_FUNC_END(pt_start)

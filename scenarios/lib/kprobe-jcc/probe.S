/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed functions, whose second instruction is a
 * conditional branch: jle with a 32-bit displacement (0f 8e: "jump if not
 * greater", taken when ZF = 1 or SF != OF, SDM Vol. 2A "Jcc") and jg with
 * an 8-bit one (7f: its inverse, JNLE). A kprobe sits on each branch; its
 * int3 handler emulates it.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(long a, long b): 1 when a <= b (signed), else 2. The cmp
 * sets the flags the jle reads; the kprobe's int3 replaces the jle's
 * first byte, so the branch is decided by the emulation while it is
 * armed. The jle is spelled out so that it is the 6-byte form whatever
 * the assembler would pick.
 */
SYM_FUNC_START(probed_fn)
	cmpq	%rsi, %rdi
	.byte	0x0f, 0x8e		/* jle 1f (rel32) */
	.long	1f - . - 4
	movl	$2, %eax
	ret
1:	movl	$1, %eax
	ret
SYM_FUNC_END(probed_fn)

/*
 * u64 probed_gt(long a, long b): 1 when a > b (signed), else 2. Its jg is
 * the short form (7f rel8) of the inverted condition of the pair, JNLE:
 * taken when ZF = 0 and SF = OF.
 */
SYM_FUNC_START(probed_gt)
	cmpq	%rsi, %rdi
	.byte	0x7f			/* jg 1f (rel8) */
	.byte	1f - . - 1
	movl	$2, %eax
	ret
1:	movl	$1, %eax
	ret
SYM_FUNC_END(probed_gt)

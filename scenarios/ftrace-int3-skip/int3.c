// SPDX-License-Identifier: GPL-2.0
/*
 * int3.c - ftrace-int3-skip (seed 000, the code before the fix): the int3
 * handler treats an int3 on a site being changed as if the site were a nop
 * and skips the 5-byte instruction. For nop <-> call that is right (the
 * CPU does what the old or the new code does); for "call A" -> "call B" it
 * is neither: the pass calls nothing. That is the window Nicolai Stange
 * found: with the livepatch on the function, the old code runs.
 */
#include "ftrace.h"

int int3_hook(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;

	if (!ftrace_rec_being_updated(ip))
		return 0;
	this_cpu_inc(bp_site_calls);
	/* regs->ip is past the int3: skip the rest of the call. */
	regs->ip += MCOUNT_INSN_SIZE - INT3_INSN_SIZE;
	return 1;
}

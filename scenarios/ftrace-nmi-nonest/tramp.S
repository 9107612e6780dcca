/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tramp.S - ftrace-emulate-percpu (seed 000): the call-emulation
 * trampolines the int3 handler sends a CPU to. Each pushes the return
 * address from its per-CPU slot, then the target, and "returns" into the
 * target: the target runs as if the site had called it, and returns to
 * site + 5.
 *
 * Both slot reads happen before the sti: from the int3 handler's write to
 * the push, IRQs are off, so no IRQ (and no preemption) can come between;
 * an NMI can, but an NMI that hits a site uses the NMI slot. Whatever
 * arrives after the sti - in its shadow or not - finds the call complete on
 * the stack.
 */
#include "entry.h"

	.text

/* IRQs were on when the int3 hit: the handler cleared IF in the frame. */
SYM_FUNC_START(ftrace_emulate_call_sti)
	pushq	%gs:ftrace_bp_call_return
	pushq	ftrace_caller_func(%rip)
	sti
	ret
SYM_FUNC_END(ftrace_emulate_call_sti)

/* IRQs were off. */
SYM_FUNC_START(ftrace_emulate_call)
	pushq	%gs:ftrace_bp_call_return
	pushq	ftrace_caller_func(%rip)
	ret
SYM_FUNC_END(ftrace_emulate_call)

/* In an NMI. */
SYM_FUNC_START(ftrace_emulate_call_nmi)
	pushq	%gs:ftrace_bp_call_nmi_return
	pushq	ftrace_caller_func(%rip)
	ret
SYM_FUNC_END(ftrace_emulate_call_nmi)

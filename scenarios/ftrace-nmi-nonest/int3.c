// SPDX-License-Identifier: GPL-2.0
/*
 * int3.c - ftrace-emulate-percpu (seed 000): the int3 handler emulates the
 * call the site is about to make, through per-CPU return slots and
 * trampolines, so that no pass through a site being changed misses a call.
 *
 * The emulated call always goes to ftrace_caller_func (the list caller):
 * whatever the site called before and will call after, the list caller
 * runs every ops registered for the function, the livepatch among them.
 *
 * Three cases, three trampolines (tramp.S):
 *  1) IRQs were on: clear IF in the frame, so the trampoline runs with IRQs
 *     off until it has pushed both words, then sti; ret.
 *  2) IRQs were off: the same without sti.
 *  3) In an NMI: a slot of its own, since the NMI may have arrived between
 *     another context's write of ftrace_bp_call_return and its push.
 */
#include "ftrace.h"

DEFINE_PER_CPU(unsigned long, ftrace_bp_call_return);
DEFINE_PER_CPU(unsigned long, ftrace_bp_call_nmi_return);
DEFINE_PER_CPU(unsigned long, emulate_sti_count);
DEFINE_PER_CPU(unsigned long, emulate_irqs_off_count);
DEFINE_PER_CPU(unsigned long, emulate_nmi_count);

/* What the trampolines push as the call target. */
void *ftrace_caller_func = (void *)ftrace_list_caller;

void ftrace_emulate_call_sti(void);	/* tramp.S */
void ftrace_emulate_call(void);
void ftrace_emulate_call_nmi(void);

int int3_hook(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;
	unsigned long ret = ip + MCOUNT_INSN_SIZE;

	if (!ftrace_rec_being_updated(ip))
		return 0;
	this_cpu_inc(bp_site_calls);
	/* Self-check bookkeeping only: the trampolines never read it. */
	ftrace_note_emulated_call(ret, (unsigned long)ftrace_caller_func);

	if (in_nmi()) {
		/* NMIs have their own slot and trampoline. */
		this_cpu_write(ftrace_bp_call_nmi_return, ret);
		regs->ip = (unsigned long)ftrace_emulate_call_nmi;
		this_cpu_inc(emulate_nmi_count);
		return 1;
	}
	this_cpu_write(ftrace_bp_call_return, ret);
	if (regs->flags & X86_EFLAGS_IF) {
		regs->flags &= ~X86_EFLAGS_IF;
		regs->ip = (unsigned long)ftrace_emulate_call_sti;
		this_cpu_inc(emulate_sti_count);
	} else {
		regs->ip = (unsigned long)ftrace_emulate_call;
		this_cpu_inc(emulate_irqs_off_count);
	}
	return 1;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * int3.c - ftrace-sti-shadow-nmi / ftrace-sti-shadow (seed 002, Linus's
 * proposal as Andy Lutomirski quotes it): the int3 handler does not emulate
 * the call itself; it fills two per-CPU slots, bp_call_return and
 * bp_call_target, and sends the CPU to a trampoline that does
 *
 *	push %gs:bp_call_return
 *	jmp *%gs:bp_call_target
 *
 * with an sti before the jmp when IRQs were on (IF cleared in the frame):
 * "because of the one-instruction sti shadow, interrupts won't actually be
 * enabled until after the jmp instruction has completed, and thus the
 * push/jmp is atomic wrt regular interrupts". The emulated call goes to the
 * site's new target.
 *
 * There is one pair of slots per CPU and nothing for NMIs: "it's not safe
 * wrt NMI, of course, but since NMI won't be rescheduling ... it's still
 * atomic wrt _another_ text_poke() attempt coming in and re-using the
 * bp_call_return/target slots". Andy's point 1 is the hole: if an NMI can
 * arrive in the sti shadow, its IRETQ re-enables IRQs before the jmp, a
 * pending IRQ is taken there, and its exit path may preempt to a task that
 * hits another site and rewrites both slots. The jmp then reads that
 * task's target. The two scenarios run this same code; only the machine's
 * nmi_in_sti_shadow quirk differs.
 */
#include "ftrace.h"

DEFINE_PER_CPU(unsigned long, bp_call_return);
DEFINE_PER_CPU(unsigned long, bp_call_target);
DEFINE_PER_CPU(unsigned long, emulate_sti_count);
DEFINE_PER_CPU(unsigned long, emulate_irqs_off_count);

void bp_call_tramp_sti(void);	/* tramp.S */
void bp_call_tramp(void);

int int3_hook(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;
	unsigned long ret = ip + MCOUNT_INSN_SIZE;
	struct dyn_ftrace *rec = ftrace_rec_being_updated(ip);

	if (!rec)
		return 0;
	this_cpu_inc(bp_site_calls);
	/* Self-check bookkeeping only: the trampolines never read it. */
	ftrace_note_emulated_call(ret, rec->new);

	this_cpu_write(bp_call_return, ret);
	this_cpu_write(bp_call_target, rec->new);
	if (regs->flags & X86_EFLAGS_IF) {
		regs->flags &= ~X86_EFLAGS_IF;
		regs->ip = (unsigned long)bp_call_tramp_sti;
		this_cpu_inc(emulate_sti_count);
	} else {
		regs->ip = (unsigned long)bp_call_tramp;
		this_cpu_inc(emulate_irqs_off_count);
	}
	return 1;
}

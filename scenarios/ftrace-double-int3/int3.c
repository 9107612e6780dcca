// SPDX-License-Identifier: GPL-2.0
/*
 * int3.c - ftrace-double-int3 (seed 002, Andy Lutomirski's alternative 3):
 * "use a different magic sequence: push %gs:bp_call_return [then int3] and
 * have the int3 handler adjust regs->ip and regs->flags as appropriate".
 *
 * The first int3 (on the site) fills the slots, clears IF in the frame and
 * sends the CPU to a trampoline that pushes the return address and hits a
 * second int3. Its handler sets regs->ip to the target and, when IRQs were
 * on, sets IF again in regs->flags: IRETQ loads RIP and RFLAGS together, so
 * IRQs come back on exactly as the emulated call lands on its target, and
 * nothing depends on the sti shadow. From the first handler's write to the
 * second handler's read, IRQs stay off on this CPU; only an NMI can come in
 * between, and an NMI that hits a site uses slots and a trampoline of its
 * own (as seed 000 does).
 *
 * Which trampoline's int3 it is tells the second handler everything: IRQs
 * on, IRQs off, or NMI.
 */
#include "ftrace.h"

DEFINE_PER_CPU(unsigned long, bp_call_return);
DEFINE_PER_CPU(unsigned long, bp_call_target);
DEFINE_PER_CPU(unsigned long, bp_nmi_call_return);
DEFINE_PER_CPU(unsigned long, bp_nmi_call_target);
DEFINE_PER_CPU(unsigned long, emulate_irqs_on_count);
DEFINE_PER_CPU(unsigned long, emulate_irqs_off_count);
DEFINE_PER_CPU(unsigned long, emulate_nmi_count);

void bp_call_tramp_irqs_on(void);	/* tramp.S */
void bp_call_tramp_irqs_off(void);
void bp_call_tramp_nmi(void);
/* The address of each trampoline's int3 (tramp.S). */
extern const unsigned long bp_tramp_int3_irqs_on;
extern const unsigned long bp_tramp_int3_irqs_off;
extern const unsigned long bp_tramp_int3_nmi;

int int3_hook(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;
	unsigned long ret = ip + MCOUNT_INSN_SIZE;
	struct dyn_ftrace *rec;

	/* The second int3: complete the call. */
	if (ip == bp_tramp_int3_irqs_on) {
		regs->ip = this_cpu_read(bp_call_target);
		regs->flags |= X86_EFLAGS_IF;
		return 1;
	}
	if (ip == bp_tramp_int3_irqs_off) {
		regs->ip = this_cpu_read(bp_call_target);
		return 1;
	}
	if (ip == bp_tramp_int3_nmi) {
		regs->ip = this_cpu_read(bp_nmi_call_target);
		return 1;
	}

	/* The first: an int3 on a site being changed. */
	rec = ftrace_rec_being_updated(ip);
	if (!rec)
		return 0;
	this_cpu_inc(bp_site_calls);
	/* Self-check bookkeeping only: the mechanism never reads it. */
	ftrace_note_emulated_call(ret, rec->new);

	if (in_nmi()) {
		this_cpu_write(bp_nmi_call_return, ret);
		this_cpu_write(bp_nmi_call_target, rec->new);
		regs->ip = (unsigned long)bp_call_tramp_nmi;
		this_cpu_inc(emulate_nmi_count);
		return 1;
	}
	this_cpu_write(bp_call_return, ret);
	this_cpu_write(bp_call_target, rec->new);
	if (regs->flags & X86_EFLAGS_IF) {
		/* Off until the second int3's IRETQ turns them back on. */
		regs->flags &= ~X86_EFLAGS_IF;
		regs->ip = (unsigned long)bp_call_tramp_irqs_on;
		this_cpu_inc(emulate_irqs_on_count);
	} else {
		regs->ip = (unsigned long)bp_call_tramp_irqs_off;
		this_cpu_inc(emulate_irqs_off_count);
	}
	return 1;
}

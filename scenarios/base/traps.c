// SPDX-License-Identifier: GPL-2.0
/*
 * traps.c - the C side of the entry stubs in entry.S.
 *
 * Scenarios plug in by defining int3_hook(), nmi_hook() or timer_hook();
 * the weak defaults here do nothing.
 */
#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(unsigned long, nmi_state);	/* see asm_exc_nmi */
DEFINE_PER_CPU(unsigned long, nmi_stack_top);
DEFINE_PER_CPU(unsigned long, nmi_count);
DEFINE_PER_CPU(unsigned long, timer_ticks);

void resched_curr(void);				/* sched.c */

__weak int int3_hook(struct pt_regs *regs)
{
	return 0;
}

__weak void nmi_hook(struct pt_regs *regs)
{
}

__weak void timer_hook(struct pt_regs *regs)
{
}

bool in_nmi(void)
{
	return this_cpu_read(nmi_state) != 0;
}

/*
 * An oops: leave the faulting ip in the trace, then end the run. The
 * analyzers report the panic as an unhandled trap.
 */
__noreturn void die(const char *msg, struct pt_regs *regs)
{
	pt_marker(MARKER_OOPS_IP, regs->ip);
	panic(msg);
}

/*
 * #BP. An int3 that text_poke_bp() planted belongs to it; anything else is
 * the scenario's (kprobes, ftrace's own int3 handler, ...). An int3 nobody
 * claims is a bug: the kernel would oops too.
 */
void do_int3(struct pt_regs *regs, unsigned long error_code)
{
	if (poke_int3_handler(regs))
		return;
	if (int3_hook(regs))
		return;
	die("unhandled int3", regs);
}

void do_nmi(struct pt_regs *regs)
{
	this_cpu_inc(nmi_count);
	nmi_hook(regs);
}

void do_invalid_op(struct pt_regs *regs, unsigned long error_code)
{
	die("invalid opcode", regs);
}

void do_general_protection(struct pt_regs *regs, unsigned long error_code)
{
	die("general protection fault", regs);
}

/* No fixups and no demand paging: every #PF is a bug. */
void do_page_fault(struct pt_regs *regs, unsigned long error_code)
{
	die("page fault", regs);
}

void do_double_fault(struct pt_regs *regs, unsigned long error_code)
{
	die("double fault", regs);
}

void do_timer_interrupt(struct pt_regs *regs)
{
	this_cpu_inc(timer_ticks);
	timer_hook(regs);
	resched_curr();
}

void do_reschedule_ipi(struct pt_regs *regs)
{
	resched_curr();
}

#ifdef __CET__
/*
 * #CP (an IBT kernel only, quirks.ibt; kept down here so that the lines
 * above stay where they were). Error code 3 (ENDBRANCH): an indirect
 * branch or a delivery landed on no ENDBR64. Linux's
 * exc_control_protection() prints "Missing ENDBR" and BUG()s (IBT is
 * fatal by default).
 */
void do_control_protection(struct pt_regs *regs, unsigned long error_code)
{
	die(error_code == 3 ? "Missing ENDBR (#CP ENDBRANCH)" : "control protection fault", regs);
}
#endif

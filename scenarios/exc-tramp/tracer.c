// SPDX-License-Identifier: GPL-2.0
/*
 * tracer.c - seed 004: ftrace through call_to_exception_trampoline.
 *
 * CPU 0 installs "call ftrace_regs_caller" at traced_fn's fentry site with
 * text_poke_bp() while CPUs 1-3 call traced_fn. Every call then goes
 * site -> ftrace_regs_caller -> call_to_exception_trampoline ->
 * ftrace_regs_handler(regs) -> tracer_func(ip, parent_ip, op, regs), and
 * back through the trampoline to regs->ip on regs->sp.
 *
 * ftrace_regs_handler() pops func off regs->sp ("Otherwise it stays on the
 * return stack and bad things happen") and moves regs->ip past the CALL.
 *
 * Markers: 1 = the call is in place on every CPU.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_INSTALLED	1

/* [params], written by the machine before boot. */
u64 calls = 600;

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
};

struct ftrace_regs_stack {
	ftrace_func_t func;
	unsigned long parent_ip;
};

DEFINE_PER_CPU(u64, tracer_calls);
DEFINE_PER_CPU(u64, tracer_bad_count);	/* tracer_func entered with the wrong ip/parent/op */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* traced.fentry.c */
void ftrace_regs_caller(void);		/* tramp.S */
void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs);

static struct ftrace_ops tracer_ops = { .func = tracer_func };
struct ftrace_ops *function_trace_op = &tracer_ops;

/* Is ret the return address of a "call fn" (e8 rel32)? */
static bool is_call_return(unsigned long ret, void *fn)
{
	const volatile u8 *p = (const volatile u8 *)(ret - CALL_INSN_SIZE);
	u32 rel = 0;
	int i;

	if (p[0] != CALL_INSN_OPCODE)
		return false;
	for (i = 0; i < 4; i++)
		rel |= (u32)p[1 + i] << (8 * i);
	return ret + (long)(s32)rel == (unsigned long)fn;
}

/* The ftrace callback. It must not trust its arguments blindly. */
void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs)
{
	this_cpu_inc(tracer_calls);
	if (ip != (unsigned long)traced_fn || op != &tracer_ops ||
	    !is_call_return(parent_ip, traced_fn))
		this_cpu_inc(tracer_bad_count);
}

/*
 * The trampoline's func: regs->sp points at struct ftrace_regs_stack and
 * regs->ip at the site's CALL.
 */
void ftrace_regs_handler(struct pt_regs *regs)
{
	struct ftrace_regs_stack *st = (void *)regs->sp;
	ftrace_func_t func = st->func;

	regs->sp += sizeof(long);	/* pop func */
	func(regs->ip, st->parent_ip, function_trace_op, regs);

	/* An int3 on a CALL must move ip: the call is done, continue after it. */
	regs->ip += CALL_INSN_SIZE;
}

void patcher_main(unsigned long arg)
{
	void *site = (void *)traced_fn;
	void *skip = (u8 *)site + MCOUNT_INSN_SIZE;
	long rel = (long)ftrace_regs_caller - (long)skip;
	u8 call[CALL_INSN_SIZE];
	int i;

	call[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		call[1 + i] = (u8)((unsigned long)rel >> (8 * i));

	text_poke_bp(site, call, CALL_INSN_SIZE, skip);
	pt_marker(MARKER_INSTALLED, 0);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += traced_fn(cpu << 32 | n);

	/* Keeps the calls live, and lets a reader check every call returned. */
	this_cpu_write(caller_sum, sum);
}

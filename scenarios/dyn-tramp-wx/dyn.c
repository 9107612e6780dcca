// SPDX-License-Identifier: GPL-2.0
/*
 * dyn.c - seed 001: a dynamically allocated ftrace trampoline, made
 * executable while it is still writable.
 *
 * CPU 0 builds a trampoline for tracer_ops (create_trampoline()), points
 * traced_fn's fentry site at it with text_poke_bp(), lets CPUs 1-3 call
 * traced_fn through it, then switches the trampoline to other_ops by
 * rewriting the ops pointer at its end with text_poke().
 *
 * create_trampoline() does what the arm64 RFC in seed 001 does:
 *
 *	module_alloc()			rw-
 *	copy the template, fill it in	(ordinary stores: not executable yet)
 *	set_memory_x()			rwx <- "The page is still writable,
 *					which is a security hazard, but anyhow
 *					ftrace breaks W^X completely."
 *
 * and Mark Rutland's review is the finding: "Why is the page still
 * writeable? Surely you can make it RO first? Please do not break W^X
 * restrictions". From set_memory_x() on, the page is writable and
 * executable, and every call through the trampoline executes from a
 * writable page. Later updates go through text_poke() anyway, as arm64's
 * ftrace_modify_code() does: they are not the problem here.
 *
 * Markers: 1 = the call to the trampoline is in place on every CPU,
 * 2 = the trampoline's ops pointer was switched to other_ops.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_INSTALLED	1
#define MARKER_OPS_SWITCHED	2

#define PAGE_SIZE		4096UL

/* [params], written by the machine before boot. */
u64 calls = 600;
u64 dwell = 4000;	/* pause loops between installing and switching ops */

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
	void *trampoline;
	unsigned long trampoline_size;
};

DEFINE_PER_CPU(u64, tracer_calls);	/* through tracer_ops */
DEFINE_PER_CPU(u64, other_calls);	/* through other_ops */
DEFINE_PER_CPU(u64, tracer_bad_count);	/* wrong ip or ops */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* traced.fentry.c */

/* template.S */
extern const u8 ftrace_tramp_template[], ftrace_tramp_call[], ftrace_tramp_op[], ftrace_tramp_end[];

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs);

static struct ftrace_ops tracer_ops = { .func = tracer_func };
static struct ftrace_ops other_ops = { .func = tracer_func };

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs)
{
	if (ip != (unsigned long)traced_fn)
		this_cpu_inc(tracer_bad_count);
	if (op == &tracer_ops)
		this_cpu_inc(tracer_calls);
	else if (op == &other_ops)
		this_cpu_inc(other_calls);
	else
		this_cpu_inc(tracer_bad_count);
}

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	long rel = (long)to - (long)from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)((unsigned long)rel >> (8 * i));
}

static void *create_trampoline(struct ftrace_ops *ops)
{
	unsigned long size = ftrace_tramp_end - ftrace_tramp_template;
	unsigned long call_off = ftrace_tramp_call - ftrace_tramp_template;
	unsigned long op_off = ftrace_tramp_op - ftrace_tramp_template;
	unsigned long npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	u8 *tramp;

	tramp = module_alloc(size);
	if (!tramp)
		pt_bug(1);

	/* Fill it in while it is only rw-: these are ordinary stores. */
	memcpy(tramp, ftrace_tramp_template, size);
	put_rel32(tramp + call_off + 1, (unsigned long)tramp + call_off + CALL_INSN_SIZE,
		  (unsigned long)ops->func);
	*(struct ftrace_ops **)(tramp + op_off) = ops;

	ops->trampoline = tramp;
	ops->trampoline_size = size;

	/*
	 * Module allocation needs to be completed by making the page
	 * executable. The page is still writable, which is a security hazard,
	 * but anyhow ftrace breaks W^X completely.
	 */
	set_memory_x((unsigned long)tramp, npages);

	return tramp;
}

/* Point the trampoline at other ops: through the alias, like any text. */
static void trampoline_set_ops(void *tramp, struct ftrace_ops *ops)
{
	unsigned long op_off = ftrace_tramp_op - ftrace_tramp_template;

	text_poke((u8 *)tramp + op_off, &ops, sizeof(ops));
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	void *site = (void *)traced_fn;
	void *skip = (u8 *)site + MCOUNT_INSN_SIZE;
	u8 call[CALL_INSN_SIZE];
	void *tramp;

	tramp = create_trampoline(&tracer_ops);

	call[0] = CALL_INSN_OPCODE;
	put_rel32(call + 1, (unsigned long)skip, (unsigned long)tramp);
	text_poke_bp(site, call, CALL_INSN_SIZE, skip);
	pt_marker(MARKER_INSTALLED, (unsigned long)tramp);

	spin(READ_ONCE(dwell));

	trampoline_set_ops(tramp, &other_ops);
	pt_marker(MARKER_OPS_SWITCHED, (unsigned long)tramp);
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

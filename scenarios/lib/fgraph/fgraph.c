// SPDX-License-Identifier: GPL-2.0
/*
 * fgraph.c - the function graph tracer's return hijack and its per-task
 * return stack, with a max_graph_depth filter.
 *
 * At a traced function's entry, prepare_ftrace_return() pushes an entry
 * (the original return address, the function) on the current task's
 * return stack, computing the call's depth from it, then asks the tracer's
 * entry callback whether to trace the call. If yes, it overwrites the
 * return address with return_to_handler, whose handler pops the newest
 * entry and returns to the address it saved. If the callback declines -
 * here because the call is deeper than max_graph_depth, as Linux's
 * ftrace_graph_ignore_func() declines with
 * /sys/kernel/tracing/max_graph_depth set - the return is left alone, and
 * the entry just pushed must be popped again: Linux's function_graph_enter()
 * (and every arch's prepare_ftrace_return() before it) does
 * "current->curr_ret_stack--" on that path. Otherwise the declined call's
 * entry stays on the stack after it has returned normally, and the next
 * hijacked return above it - the caller's - pops that stale entry and
 * returns to where the declined call would have: inside the caller, right
 * after its call, with the caller's frame already gone.
 *
 * pt_fgraph_nopop.h in the scenario selects the decline path without the
 * pop.
 *
 * CPU 0 turns graph tracing on (both fentry sites to "call
 * ftrace_graph_caller", with text_poke_bp()) and off again, `rounds`
 * times; the other CPUs call outer_fn() all along and check its result.
 *
 * Markers: 1 tracing on (value: round), 2 tracing off (value: round),
 * 4 outer_fn() returned a wrong result (value: it).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_fgraph_nopop.h")
#define FGRAPH_NOPOP 1
#else
#define FGRAPH_NOPOP 0
#endif

/*
 * pt_fgraph_irq.h in the scenario makes the timer interrupt call a traced
 * function (inner_fn) on the interrupted task's return stack, as any
 * traced interrupt handler does; pt_fgraph_early_pop.h makes the return
 * path give its entry back before it has read it (fgraph-irq-early-pop).
 */
#if __has_include("pt_fgraph_irq.h")
#define FGRAPH_IRQ 1
#else
#define FGRAPH_IRQ 0
#endif
#if __has_include("pt_fgraph_early_pop.h")
#define FGRAPH_EARLY_POP 1
#else
#define FGRAPH_EARLY_POP 0
#endif

#define MARKER_ON	1
#define MARKER_OFF	2
#define MARKER_WRONG	4

#define FTRACE_RETFUNC_DEPTH	16
#define MCOUNT_INSN_SIZE	5
#define CALL_INSN_OPCODE	0xe8

/* [params] */
u64 rounds = 6;
u64 dwell = 3000;		/* pause loops with tracing on, and off */
u64 max_graph_depth = 1;	/* trace only calls at depth < this */

DEFINE_PER_CPU(u64, graph_entries);	/* calls the tracer accepted */
DEFINE_PER_CPU(u64, graph_returns);	/* hijacked returns handled */
DEFINE_PER_CPU(u64, caller_sum);

u64 outer_fn(u64 x);
extern const u8 outer_site[], inner_site[];
void ftrace_graph_caller(void);
void return_to_handler(void);

struct ftrace_ret_stack {
	unsigned long ret;	/* the return address it replaced */
	unsigned long func;	/* the traced function's site */
};

struct graph_task {
	long curr;		/* index of the newest entry, -1: empty */
	long live;		/* curr is set up: the task runs caller_main */
	struct ftrace_ret_stack stack[FTRACE_RETFUNC_DEPTH];
};

static struct graph_task graph_tasks[PT_MAX_TASKS + 1];
static unsigned long workers_stop;

static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* The tracer's entry callback (trace_graph_entry()): 0 declines the call. */
static int graph_entry(unsigned long func, long depth)
{
	if (max_graph_depth && (u64)depth >= max_graph_depth)
		return 0;
	this_cpu_inc(graph_entries);
	return 1;
}

/*
 * Push an entry; its depth, or -1 when the stack is full (-EBUSY). The
 * index is taken before the entry is written, as Linux's push has done
 * since upstream 62d59d17a5f9 ("tracing/function-return-tracer: make the
 * function return tracer lockless") made the return stack lockless: "If
 * an interrupt is raised, it will increase the index of the return stack
 * storage and then execute until the end of the tracing to finally free
 * the index it used." A traced interrupt handler pushes above every entry
 * the interrupted context owns, and frees its own before it returns.
 */
static long push_return_trace(struct graph_task *gt, unsigned long ret,
			      unsigned long func)
{
	long i = gt->curr + 1;

	if (i >= FTRACE_RETFUNC_DEPTH)
		return -1;
	gt->curr = i;
	barrier();
	gt->stack[i].ret = ret;
	gt->stack[i].func = func;
	return i;
}

void prepare_ftrace_return(unsigned long *parent, unsigned long self_addr)
{
	struct graph_task *gt = &graph_tasks[current->id];
	unsigned long old = *parent;
	long depth;

	depth = push_return_trace(gt, old, self_addr);
	if (depth < 0)
		return;
	/* Only trace if the calling function expects to. */
	if (!graph_entry(self_addr, depth)) {
		if (!FGRAPH_NOPOP)
			gt->curr--;
		return;
	}
	*parent = (unsigned long)return_to_handler;
}

unsigned long ftrace_return_to_handler(void)
{
	struct graph_task *gt = &graph_tasks[current->id];
	unsigned long ret;
	long i = gt->curr;

	if (i < 0)
		pt_bug(3);	/* a hijacked return with nothing pushed */
#if FGRAPH_EARLY_POP
	/*
	 * The bug: the entry is given back before it is read. A traced
	 * interrupt that comes in between pushes its own entry in that slot.
	 */
	gt->curr = i - 1;
	barrier();
	ret = gt->stack[i].ret;
#else
	/* Read the entry, then give it back (Linux's ftrace_pop_return_trace()). */
	ret = gt->stack[i].ret;
	barrier();
	gt->curr = i - 1;
#endif
	this_cpu_inc(graph_returns);
	return ret;
}

#if FGRAPH_IRQ
DEFINE_PER_CPU(u64, irq_sum);
u64 inner_fn(u64 x);

/* The timer interrupt's handler calls a traced function. */
void timer_hook(struct pt_regs *regs)
{
	if (!READ_ONCE(graph_tasks[current->id].live))
		return;
	this_cpu_add(irq_sum, inner_fn(regs->ip));
}
#endif

static void make_call(u8 *insn, const u8 *site)
{
	int rel = (int)((unsigned long)ftrace_graph_caller -
			((unsigned long)site + MCOUNT_INSN_SIZE));

	insn[0] = CALL_INSN_OPCODE;
	memcpy(&insn[1], &rel, sizeof(rel));
}

static void set_site(const u8 *site, bool on)
{
	u8 call[MCOUNT_INSN_SIZE];

	make_call(call, site);
	/* A CPU on the int3 continues as if the old nop had been there. */
	text_poke_bp((void *)site, on ? call : nop5, MCOUNT_INSN_SIZE,
		     (void *)(site + MCOUNT_INSN_SIZE));
}

void patcher_main(unsigned long arg)
{
	u64 r, i;

	for (r = 0; r < rounds; r++) {
		set_site(inner_site, true);
		set_site(outer_site, true);
		pt_marker(MARKER_ON, r);
		for (i = 0; i < dwell; i++)
			cpu_relax();
		set_site(outer_site, false);
		set_site(inner_site, false);
		pt_marker(MARKER_OFF, r);
		for (i = 0; i < dwell; i++)
			cpu_relax();
	}
	WRITE_ONCE(workers_stop, 1);
}

void caller_main(unsigned long arg)
{
	struct graph_task *gt = &graph_tasks[current->id];
	u64 x = 0;

	gt->curr = -1;
	barrier();
	WRITE_ONCE(gt->live, 1);
	while (!READ_ONCE(workers_stop)) {
		u64 v = outer_fn(x);

		if (v != 2 * x + 0x11)
			pt_marker(MARKER_WRONG, v);
		this_cpu_add(caller_sum, v);
		x++;
	}
}

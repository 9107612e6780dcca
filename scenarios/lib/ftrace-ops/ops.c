// SPDX-License-Identifier: GPL-2.0
/*
 * ops.c - the library "ftrace-ops": two ftrace_ops with a filter of one
 * function each (ops_a traces fn_a, ops_b traces fn_b), both called
 * through ftrace_caller, and the switch of ftrace_caller's call between
 * the list function (two ops: it calls each ops whose filter holds the
 * function) and ops_a's func directly (one ops left), as ops_b is
 * unregistered and registered again.
 *
 * Upstream commit 59338f754a55 ("ftrace: Fix a slight race in modifying
 * what function callback gets traced"): "There's a slight race when going
 * from a list function to a non list function. That is, when only one
 * callback is registered to the function tracer, it gets called directly
 * by the mcount trampoline. But if this function has filters, it may be
 * called by the wrong functions." The fix keeps the list function while
 * the call sites change and points the trampoline at the one ops' func
 * only after every site is final. pt_ftrace_ops_early.h in the scenario
 * selects the order before the fix: ftrace_call goes to tracer_a before
 * fn_b's site is turned back into a nop (and, registering ops_b again,
 * fn_b's site is enabled before ftrace_call goes back to the list
 * function). Without it: the list function stays while fn_b's site
 * changes, and ftrace_call goes to tracer_a only once no task can still be
 * inside ftrace_caller from fn_b (synchronize_rcu_tasks(), the wait
 * ftrace_shutdown() has for ops it is about to stop calling).
 *
 * Markers: 1 = both ops registered, every site final (value: 0),
 * 2 = ftrace_call is about to change (value: the new func), 3 = it has
 * changed, 4 = ops_b unregistered and fn_b's site a nop (value: round),
 * 5 = ops_b registered again (value: round).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_ftrace_ops_early.h")
#define FTRACE_OPS_EARLY 1
#else
#define FTRACE_OPS_EARLY 0
#endif

#define MARKER_READY		1
#define MARKER_FUNC_BEGIN	2
#define MARKER_FUNC_DONE	3
#define MARKER_B_OFF		4
#define MARKER_B_ON		5

/* [params] */
u64 rounds = 4;
u64 dwell = 600;
u64 calls = 500;

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
	unsigned long filter;		/* the one function it traces */
	struct ftrace_ops *next;
};

DEFINE_PER_CPU(u64, a_calls);
DEFINE_PER_CPU(u64, b_calls);
DEFINE_PER_CPU(u64, caller_sum);

u64 fn_a(u64 x);
u64 fn_b(u64 x);
extern u8 ftrace_call[];		/* caller.S */
void ftrace_stub(void);
void ftrace_caller(void);

void tracer_a(unsigned long ip, unsigned long parent_ip,
	      struct ftrace_ops *op, struct pt_regs *regs)
{
	this_cpu_inc(a_calls);
}

void tracer_b(unsigned long ip, unsigned long parent_ip,
	      struct ftrace_ops *op, struct pt_regs *regs)
{
	this_cpu_inc(b_calls);
}

static struct ftrace_ops ops_a = { .func = tracer_a, .filter = (unsigned long)fn_a };
static struct ftrace_ops ops_b = { .func = tracer_b, .filter = (unsigned long)fn_b };
static struct ftrace_ops *ftrace_ops_list;
struct ftrace_ops *function_trace_op;	/* what ftrace_caller passes as op */

/* The list function: every registered ops whose filter holds ip. */
void ftrace_ops_list_func(unsigned long ip, unsigned long parent_ip,
			  struct ftrace_ops *unused, struct pt_regs *regs)
{
	struct ftrace_ops *op;

	for (op = READ_ONCE(ftrace_ops_list); op; op = READ_ONCE(op->next))
		if (op->filter == ip)
			op->func(ip, parent_ip, op, regs);
}

static unsigned long task_qs[PT_MAX_TASKS + 1];
static unsigned long task_gone[PT_MAX_TASKS + 1];

/* A point where the task is inside no traced function or trampoline. */
static void rcu_tasks_qs(void)
{
	atomic_long_inc(&task_qs[current->id]);
}

/* Wait until every other task has passed rcu_tasks_qs(), or exited. */
static void synchronize_rcu_tasks(void)
{
	static unsigned long snap[PT_MAX_TASKS + 1];
	unsigned long i, n = pt_boot_ntasks, self = current->id;

	for (i = 1; i <= n; i++)
		snap[i] = READ_ONCE(task_qs[i]);
	for (i = 1; i <= n; i++) {
		if (i == self)
			continue;
		while (READ_ONCE(task_qs[i]) == snap[i] && !READ_ONCE(task_gone[i]))
			cpu_relax();
	}
}

static void make_call(u8 *insn, const u8 *at, const void *to)
{
	int rel = (int)((unsigned long)to - ((unsigned long)at + CALL_INSN_SIZE));

	insn[0] = CALL_INSN_OPCODE;
	memcpy(&insn[1], &rel, sizeof(rel));
}

static const u8 nop5[CALL_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* Turn a function's fentry site into "call ftrace_caller", or the nop. */
static void set_site(void *fn, bool on)
{
	u8 call[CALL_INSN_SIZE];

	make_call(call, fn, ftrace_caller);
	text_poke_bp(fn, on ? call : nop5, CALL_INSN_SIZE, (u8 *)fn + CALL_INSN_SIZE);
}

/*
 * ftrace_update_ftrace_func(): ftrace_caller's call goes to func, through
 * the int3 protocol (8a4d0a687a59); a CPU on the int3 skips the call.
 */
static void __update_ftrace_func(ftrace_func_t func, struct ftrace_ops *op)
{
	u8 call[CALL_INSN_SIZE];

	WRITE_ONCE(function_trace_op, op);
	make_call(call, ftrace_call, func);
	text_poke_bp(ftrace_call, call, CALL_INSN_SIZE, ftrace_call + CALL_INSN_SIZE);
}

static void update_ftrace_func(ftrace_func_t func, struct ftrace_ops *op)
{
	pt_marker(MARKER_FUNC_BEGIN, (unsigned long)func);
	__update_ftrace_func(func, op);
	pt_marker(MARKER_FUNC_DONE, (unsigned long)func);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

static void unregister_b(void)
{
	WRITE_ONCE(ops_a.next, NULL);	/* the list is ops_a alone */
	if (FTRACE_OPS_EARLY) {
		/* The bug: one ops left, so call it directly, now. */
		update_ftrace_func(tracer_a, &ops_a);
		set_site(fn_b, false);
	} else {
		set_site(fn_b, false);
		synchronize_rcu_tasks();
		update_ftrace_func(tracer_a, &ops_a);
	}
}

static void register_b(void)
{
	WRITE_ONCE(ops_a.next, &ops_b);
	if (FTRACE_OPS_EARLY) {
		set_site(fn_b, true);
		update_ftrace_func((ftrace_func_t)ftrace_ops_list_func, NULL);
	} else {
		update_ftrace_func((ftrace_func_t)ftrace_ops_list_func, NULL);
		set_site(fn_b, true);
	}
}

void patcher_main(unsigned long arg)
{
	u64 r;

	/* Both ops registered: the list function, both sites enabled. */
	ftrace_ops_list = &ops_a;
	ops_a.next = &ops_b;
	__update_ftrace_func((ftrace_func_t)ftrace_ops_list_func, NULL);
	set_site(fn_a, true);
	set_site(fn_b, true);
	pt_marker(MARKER_READY, 0);

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));
		unregister_b();
		pt_marker(MARKER_B_OFF, r);
		spin(READ_ONCE(dwell));
		register_b();
		pt_marker(MARKER_B_ON, r);
	}
	WRITE_ONCE(task_gone[current->id], 1);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		sum += fn_a(cpu << 32 | n);
		sum += fn_b(cpu << 32 | n);
		rcu_tasks_qs();
	}
	this_cpu_write(caller_sum, sum);
	WRITE_ONCE(task_gone[current->id], 1);
}

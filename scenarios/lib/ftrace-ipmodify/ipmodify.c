// SPDX-License-Identifier: GPL-2.0
/*
 * ipmodify.c - two ftrace_ops on one function that both write regs->ip:
 * a kprobe on the function's fentry site (KPROBES_ON_FTRACE) and a
 * livepatch that sends the CPU to the new function.
 *
 * ftrace_regs_caller returns to regs->ip after calling every ops whose
 * filter holds the site, newest first. The livepatch's callback sets
 * regs->ip to the new function; the kprobe's (kprobe_ftrace_handler() as
 * Linux had it in 2014) sets regs->ip to ip + 1 for its pre-handler, as
 * if an int3 had hit, and then to ip + 5, the single step over the nop it
 * emulates: called after the livepatch's, it sends the CPU back into the
 * old function, and the patch is silently not applied ("The kernel
 * kprobe_ftrace_handler function changes regs->ip, which overwrites the
 * value which kpatch had written", https://github.com/dynup/kpatch/issues/47).
 * Linux commit f8b8be8a310a ("ftrace, kprobes: Support IPMODIFY flag to
 * find IP modify conflict", 2014) marks every ops that may change regs->ip
 * with FTRACE_OPS_FL_IPMODIFY and refuses to register a second one on a
 * function that has one (-EBUSY): the conflict is an error at
 * registration instead of a lost redirect. A scenario that ships
 * pt_ftrace_ipmodify_nocheck.h registers both.
 *
 * CPU 0 registers the kprobe's ops on traced_fn (the site is enabled:
 * "call ftrace_regs_caller", through text_poke_bp()), then the livepatch's;
 * refused, it removes the kprobe first (as the user who applies the patch
 * would) and registers the livepatch again. Then the patch is applied
 * (marker 1) and stays so while CPUs 1-3 call traced_fn and count the
 * answers of the old function they get after it (old_results); in the
 * end the kprobe, if still there, is removed (marker 2).
 *
 * Markers: 1 = the livepatch is applied (value: whether the kprobe is
 * still registered), 2 = the kprobe is gone.
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_ftrace_ipmodify_nocheck.h")
#define FTRACE_IPMODIFY_NOCHECK 1
#else
#define FTRACE_IPMODIFY_NOCHECK 0
#endif

#define MARKER_PATCHED		1
#define MARKER_KPROBE_GONE	2

#define FTRACE_OPS_FL_IPMODIFY	1
#define EBUSY			16

/* [params] */
u64 dwell = 2000;
u64 calls = 300;

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
	unsigned long filter;		/* the one function it traces */
	unsigned long flags;
	struct ftrace_ops *next;
};

DEFINE_PER_CPU(u64, kprobe_hits);
DEFINE_PER_CPU(u64, klp_redirects);
DEFINE_PER_CPU(u64, old_results);	/* traced_fn's answer after the patch */

u64 traced_fn(u64 x);
u64 new_fn(u64 x);
void ftrace_regs_caller(void);

/* kprobe_ftrace_handler(): a kprobe on the site, with a pre-handler. */
static void kprobe_ftrace_handler(unsigned long ip, unsigned long parent_ip,
				  struct ftrace_ops *op, struct pt_regs *regs)
{
	regs->ip = ip + INT3_INSN_SIZE;		/* as if the int3 had hit */
	this_cpu_inc(kprobe_hits);		/* the pre-handler */
	regs->ip = ip + MCOUNT_INSN_SIZE;	/* the single step over the nop */
}

/* klp_ftrace_handler(): the livepatch sends the CPU to the new function. */
static void klp_ftrace_handler(unsigned long ip, unsigned long parent_ip,
			       struct ftrace_ops *op, struct pt_regs *regs)
{
	this_cpu_inc(klp_redirects);
	regs->ip = (unsigned long)new_fn;
}

static struct ftrace_ops kprobe_ops = {
	.func = kprobe_ftrace_handler, .filter = (unsigned long)traced_fn,
	.flags = FTRACE_OPS_FL_IPMODIFY,
};
static struct ftrace_ops klp_ops = {
	.func = klp_ftrace_handler, .filter = (unsigned long)traced_fn,
	.flags = FTRACE_OPS_FL_IPMODIFY,
};
static struct ftrace_ops *ftrace_ops_list;

/* The list function: every registered ops whose filter holds ip. */
void ftrace_ops_list_func(unsigned long ip, unsigned long parent_ip,
			  struct ftrace_ops *unused, struct pt_regs *regs)
{
	struct ftrace_ops *op;

	for (op = READ_ONCE(ftrace_ops_list); op; op = READ_ONCE(op->next))
		if (op->filter == ip)
			op->func(ip, parent_ip, op, regs);
}

static void make_call(u8 *insn, const u8 *at, const void *to)
{
	int rel = (int)((unsigned long)to - ((unsigned long)at + CALL_INSN_SIZE));

	insn[0] = CALL_INSN_OPCODE;
	memcpy(&insn[1], &rel, sizeof(rel));
}

static const u8 nop5[CALL_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* Turn the fentry site into "call ftrace_regs_caller", or the nop. */
static void set_site(void *fn, bool on)
{
	u8 call[CALL_INSN_SIZE];

	make_call(call, fn, ftrace_regs_caller);
	text_poke_bp(fn, on ? call : nop5, CALL_INSN_SIZE, (u8 *)fn + CALL_INSN_SIZE);
}

static bool site_traced(unsigned long ip)
{
	struct ftrace_ops *op;

	for (op = ftrace_ops_list; op; op = op->next)
		if (op->filter == ip)
			return true;
	return false;
}

static int register_ftrace_function(struct ftrace_ops *ops)
{
	struct ftrace_ops *op;
	bool enable = !site_traced(ops->filter);

	/* ftrace_hash_ipmodify_enable(): one ops that changes regs->ip per function */
	for (op = ftrace_ops_list; op && !FTRACE_IPMODIFY_NOCHECK; op = op->next)
		if (op->filter == ops->filter && (op->flags & ops->flags & FTRACE_OPS_FL_IPMODIFY))
			return -EBUSY;
	ops->next = ftrace_ops_list;
	WRITE_ONCE(ftrace_ops_list, ops);	/* newest first */
	if (enable)
		set_site((void *)ops->filter, true);
	return 0;
}

static void unregister_ftrace_function(struct ftrace_ops *ops)
{
	struct ftrace_ops **p;

	for (p = &ftrace_ops_list; *p; p = &(*p)->next) {
		if (*p == ops) {
			WRITE_ONCE(*p, ops->next);
			break;
		}
	}
	if (!site_traced(ops->filter))
		set_site((void *)ops->filter, false);
	/* the ops objects are static: a CPU still on the list may go on */
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

static bool kprobe_registered;
static unsigned long patched, done;	/* markers 1 and 2, for the callers */

void patcher_main(unsigned long arg)
{
	if (register_ftrace_function(&kprobe_ops))
		pt_bug(1);
	kprobe_registered = true;
	spin(READ_ONCE(dwell));

	if (register_ftrace_function(&klp_ops) == -EBUSY) {
		/* The conflict is reported; the kprobe gives way. */
		unregister_ftrace_function(&kprobe_ops);
		kprobe_registered = false;
		if (register_ftrace_function(&klp_ops))
			pt_bug(2);
	}
	pt_marker(MARKER_PATCHED, kprobe_registered);
	WRITE_ONCE(patched, 1);
	spin(READ_ONCE(dwell));

	if (kprobe_registered) {
		unregister_ftrace_function(&kprobe_ops);
		kprobe_registered = false;
	}
	pt_marker(MARKER_KPROBE_GONE, 0);
	WRITE_ONCE(done, 1);
}

void caller_main(unsigned long arg)
{
	u64 n;

	/* at least `calls` calls, and on until the kprobe is gone */
	for (n = 0; n < READ_ONCE(calls) || !READ_ONCE(done); n++) {
		bool after = READ_ONCE(patched);
		u64 r = traced_fn(n);

		if (after && r != n + 2)
			this_cpu_inc(old_results);
	}
}

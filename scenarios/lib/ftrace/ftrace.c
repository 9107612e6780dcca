// SPDX-License-Identifier: GPL-2.0
/*
 * ftrace.c - the ftrace/livepatch model shared by the ftrace-* scenarios:
 * the patcher (a batch call-site update in the style of
 * ftrace_replace_code(): int3 on every site, sync, the tails, sync, the
 * first bytes, sync), the C half of the two handlers, the livepatch and
 * tracer callbacks, the workload, and the self-checks whose per-CPU
 * counters `patchtrace run` prints.
 *
 * The scenario's int3.c says what a CPU that hits one of the int3s does.
 *
 * Self-checks. Every context that can pass through a site - a task, the
 * timer hook on a CPU, the NMI hook on a CPU - has its own struct pass
 * (tasks do not migrate; IRQ and NMI handlers never nest on one CPU), so the
 * checks cannot be fooled by the very interleavings the scenarios provoke:
 *  - klp_ftrace_func() notes the site in this context's pass; the site's
 *    function body takes the note: no note means no handler ran in this
 *    pass (missed_calls; the old function body ran with the livepatch in
 *    force - what Nicolai Stange found);
 *  - an int3 handler that emulates a call notes the return address and
 *    target it set up for this context (ftrace_note_emulated_call(); the
 *    note is bookkeeping only, the mechanism never reads it); the handler
 *    entered next in the same context checks that it is that target and
 *    that its return address is that one (wrong_target_calls,
 *    wrong_return_calls).
 */
#include "ftrace.h"

/* [params], written by the machine before boot. */
u64 rounds = 40;		/* batch updates after the initial install */
u64 dwell = 64;			/* pause loops between the update's phases */
u64 irqs_off_every = 0;		/* every Nth task call with IRQs off (0: none) */
u64 call_from_irq = 0;		/* the timer hook calls lp_fn1 */
u64 call_from_nmi = 0;		/* the NMI hook calls lp_fn2 */

DEFINE_PER_CPU(unsigned long, lp_handler_calls);	/* lp_handler entered */
DEFINE_PER_CPU(unsigned long, list_caller_calls);	/* ftrace_list_caller entered */
DEFINE_PER_CPU(unsigned long, lp_calls);		/* klp_ftrace_func() */
DEFINE_PER_CPU(unsigned long, tracer_calls);		/* the function tracer */
DEFINE_PER_CPU(unsigned long, missed_calls);		/* a pass with no handler */
DEFINE_PER_CPU(unsigned long, bp_site_calls);		/* int3 hits on a site */
DEFINE_PER_CPU(unsigned long, bp_emulate_count);	/* emulated calls set up */
DEFINE_PER_CPU(unsigned long, emulated_calls);		/* ...that reached a handler */
DEFINE_PER_CPU(unsigned long, wrong_target_calls);	/* ...not the one set up */
DEFINE_PER_CPU(unsigned long, wrong_return_calls);	/* ...returning elsewhere */
DEFINE_PER_CPU(unsigned long, irqs_off_site_calls);	/* task calls with IRQs off */
DEFINE_PER_CPU(unsigned long, irq_site_calls);		/* calls from the timer hook */
DEFINE_PER_CPU(unsigned long, nmi_site_calls);		/* calls from the NMI hook */
DEFINE_PER_CPU(unsigned long, in_irq_hook);
DEFINE_PER_CPU(u64, caller_sum);

struct dyn_ftrace ftrace_recs[NR_SITES] = {
	{ .ip = (unsigned long)lp_fn1 },
	{ .ip = (unsigned long)lp_fn2 },
};

static unsigned long ftrace_update_in_progress;
static unsigned long ftrace_ready, ftrace_done;
static unsigned long callers_started;

static const u8 int3_insn = INT3_INSN_OPCODE;
static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/*
 * The record of the site at @ip if an update of it is in progress: the int3
 * there is ftrace's. #BP is an interrupt gate, so a CPU in its handler holds
 * off the update's final sync: the answer cannot go stale under it.
 */
struct dyn_ftrace *ftrace_rec_being_updated(unsigned long ip)
{
	int i;

	smp_rmb();	/* pairs with smp_wmb() in ftrace_replace_code() */
	if (!READ_ONCE(ftrace_update_in_progress))
		return NULL;
	for (i = 0; i < NR_SITES; i++)
		if (ftrace_recs[i].ip == ip)
			return &ftrace_recs[i];
	return NULL;
}

/* ---- self-check bookkeeping (not part of any mechanism) ---- */

struct pass {
	unsigned long seen;	/* site whose livepatch handler ran */
	unsigned long pending;	/* an emulated call is set up */
	unsigned long ret;	/* ...with this return address */
	unsigned long target;	/* ...to this handler */
};

#define KEY_IRQ		256	/* + cpu */
#define KEY_NMI		384	/* + cpu */
#define NR_KEYS		512

static struct pass passes[NR_KEYS];

static struct pass *this_pass(void)
{
	unsigned long cpu = smp_processor_id();

	if (in_nmi())
		return &passes[KEY_NMI + cpu];
	if (this_cpu_read(in_irq_hook))
		return &passes[KEY_IRQ + cpu];
	return &passes[current->id];
}

void ftrace_note_emulated_call(unsigned long ret, unsigned long target)
{
	struct pass *p = this_pass();

	p->ret = ret;
	p->target = target;
	p->pending = 1;
	this_cpu_inc(bp_emulate_count);
}

static void ftrace_handler_enter(unsigned long ip, unsigned long handler)
{
	struct pass *p = this_pass();

	if (!p->pending)
		return;
	p->pending = 0;
	this_cpu_inc(emulated_calls);
	if (handler != p->target) {
		this_cpu_inc(wrong_target_calls);
		pt_marker(MARKER_WRONG_TARGET, handler);
	}
	if (ip + MCOUNT_INSN_SIZE != p->ret) {
		this_cpu_inc(wrong_return_calls);
		pt_marker(MARKER_WRONG_RETURN, ip + MCOUNT_INSN_SIZE);
	}
}

/*
 * Called from the top of a livepatched function's body: did a handler run
 * for this pass? (klp_ftrace_handler() would have rewritten regs->ip to the
 * new function; this model leaves a note instead, so every pass reaches
 * site+5 and the body chooses: the new code, or the old one on a miss.)
 */
bool klp_redirected(void *fn)
{
	struct pass *p = this_pass();
	unsigned long seen = p->seen;

	p->seen = 0;
	if (seen == (unsigned long)fn)
		return true;
	this_cpu_inc(missed_calls);
	pt_marker(MARKER_MISSED, (unsigned long)fn);
	return false;
}

/* ---- the ftrace_ops callbacks and the C half of the handlers ---- */

/* The livepatch ops (klp_ftrace_handler): on every livepatched function. */
static void klp_ftrace_func(unsigned long ip, unsigned long parent_ip)
{
	this_pass()->seen = ip;
	this_cpu_inc(lp_calls);
}

/* The function tracer's ops. */
static void tracer_func(unsigned long ip, unsigned long parent_ip)
{
	this_cpu_inc(tracer_calls);
}

/* lp_handler: the livepatch ops is the only one on this function. */
void lp_handler_func(unsigned long ip, unsigned long parent_ip)
{
	ftrace_handler_enter(ip, (unsigned long)lp_handler);
	this_cpu_inc(lp_handler_calls);
	klp_ftrace_func(ip, parent_ip);
}

/* ftrace_list_caller: every ops (ftrace_ops_list_func()). */
void ftrace_list_func(unsigned long ip, unsigned long parent_ip)
{
	ftrace_handler_enter(ip, (unsigned long)ftrace_list_caller);
	this_cpu_inc(list_caller_calls);
	klp_ftrace_func(ip, parent_ip);
	tracer_func(ip, parent_ip);
}

/* The livepatch's replacement functions. */
u64 lp_fn1_new(u64 x)
{
	return (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9UL;
}

u64 lp_fn2_new(u64 x)
{
	return (x ^ (x >> 31)) * 0x94d049bb133111ebUL;
}

/* ---- the patcher ---- */

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

static void ftrace_make_call(unsigned long ip, unsigned long target, u8 *insn)
{
	long rel = (long)target - (long)(ip + CALL_INSN_SIZE);
	int i;

	insn[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		insn[1 + i] = (u8)((unsigned long)rel >> (8 * i));
}

static bool site_is(unsigned long ip, const u8 *insn)
{
	const volatile u8 *site = (const volatile u8 *)ip;
	int i;

	for (i = 0; i < MCOUNT_INSN_SIZE; i++)
		if (site[i] != insn[i])
			return false;
	return true;
}

/*
 * Change every site's call target at once, as ftrace_replace_code() does
 * through add_breakpoints / update / finish: int3 on every site, sync;
 * the last four bytes of every site, sync; the first byte of every site,
 * sync. A CPU that reaches a site between the first and the last sync hits
 * the int3 and is the int3 handler's problem (int3.c).
 */
static void ftrace_replace_code(const unsigned long *targets)
{
	u8 insn[NR_SITES][CALL_INSN_SIZE];
	int i;

	for (i = 0; i < NR_SITES; i++) {
		ftrace_recs[i].new = targets[i];
		ftrace_make_call(ftrace_recs[i].ip, targets[i], insn[i]);
	}
	WRITE_ONCE(ftrace_update_in_progress, 1);
	/* The records must be visible before an int3 is. */
	smp_wmb();

	for (i = 0; i < NR_SITES; i++)
		text_poke((void *)ftrace_recs[i].ip, &int3_insn, INT3_INSN_SIZE);
	sync_core_all();
	spin(READ_ONCE(dwell));

	for (i = 0; i < NR_SITES; i++)
		text_poke((u8 *)ftrace_recs[i].ip + INT3_INSN_SIZE,
			  insn[i] + INT3_INSN_SIZE, CALL_INSN_SIZE - INT3_INSN_SIZE);
	sync_core_all();
	spin(READ_ONCE(dwell));

	for (i = 0; i < NR_SITES; i++)
		text_poke((void *)ftrace_recs[i].ip, insn[i], INT3_INSN_SIZE);
	sync_core_all();

	/* No CPU can still see an int3 (or be in the int3 handler). */
	WRITE_ONCE(ftrace_update_in_progress, 0);
	smp_wmb();

	for (i = 0; i < NR_SITES; i++) {
		ftrace_recs[i].cur = targets[i];
		if (!site_is(ftrace_recs[i].ip, insn[i]))
			pt_bug(2);
	}
}

/*
 * CPU 0. Install the livepatch (lp_fn1 -> lp_handler) with the tracer
 * already on lp_fn2 (-> ftrace_list_caller), then move the tracer between
 * the two functions: each round is one batch update in which one site goes
 * lp_handler -> ftrace_list_caller and the other the opposite way.
 */
void patcher_main(unsigned long arg)
{
	const unsigned long a[NR_SITES] = {
		(unsigned long)lp_handler, (unsigned long)ftrace_list_caller };
	const unsigned long b[NR_SITES] = {
		(unsigned long)ftrace_list_caller, (unsigned long)lp_handler };
	u64 r;
	int i;

	for (i = 0; i < NR_SITES; i++)
		if (!site_is(ftrace_recs[i].ip, nop5))
			pt_bug(1);	/* not built with -mnop-mcount? */
	ftrace_replace_code(a);

	/* From here on, every pass through either site must call a handler. */
	pt_marker(MARKER_READY, 0);
	WRITE_ONCE(ftrace_ready, 1);
	/* Every other task is a caller: let them all get going first. */
	while (READ_ONCE(callers_started) < pt_boot_ntasks - 1)
		cpu_relax();

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));
		pt_marker(MARKER_ROUND, r);
		ftrace_replace_code((r & 1) ? a : b);
		pt_marker(MARKER_ROUND_DONE, r);
	}
	spin(READ_ONCE(dwell));
	pt_marker(MARKER_DONE, r);
	WRITE_ONCE(ftrace_done, 1);
}

/* ---- the workload ---- */

static u64 call_site(unsigned long site, u64 x)
{
	return site ? lp_fn2(x) : lp_fn1(x);
}

/*
 * A caller task: arg 0 calls lp_fn1, 1 calls lp_fn2, 2 alternates and makes
 * every irqs_off_every-th call with IRQs off (the int3 handler's
 * "interrupts were disabled" case). Runs while the patcher does.
 */
void caller_main(unsigned long arg)
{
	u64 countdown = arg == 2 ? READ_ONCE(irqs_off_every) : 0;
	u64 sum = 0, n = 0;

	while (!READ_ONCE(ftrace_ready))
		cpu_relax();
	atomic_long_inc(&callers_started);
	while (!READ_ONCE(ftrace_done)) {
		unsigned long site = arg == 2 ? (n & 1) : arg;

		if (countdown && --countdown == 0) {
			unsigned long flags = local_irq_save();

			sum += call_site(site, n);
			this_cpu_inc(irqs_off_site_calls);
			local_irq_restore(flags);
			countdown = READ_ONCE(irqs_off_every);
		} else {
			sum += call_site(site, n);
		}
		n++;
	}
	this_cpu_add(caller_sum, sum);
}

static bool hooks_active(void)
{
	return READ_ONCE(ftrace_ready) && !READ_ONCE(ftrace_done);
}

/* From do_timer_interrupt(): IRQ context, IRQs off. */
void timer_hook(struct pt_regs *regs)
{
	if (!READ_ONCE(call_from_irq) || !hooks_active())
		return;
	this_cpu_write(in_irq_hook, 1);
	this_cpu_add(caller_sum, lp_fn1(regs->ip));
	this_cpu_inc(irq_site_calls);
	this_cpu_write(in_irq_hook, 0);
}

/* From do_nmi(): NMI context. */
void nmi_hook(struct pt_regs *regs)
{
	if (!READ_ONCE(call_from_nmi) || !hooks_active())
		return;
	this_cpu_add(caller_sum, lp_fn2(regs->ip));
	this_cpu_inc(nmi_site_calls);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe re-entered from its own single-step #DB handler, with
 * #DB on an IST stack.
 *
 * As kprobe-singlestep: CPU 0 fills the instruction slot with probed_fn's
 * first instruction, then arms and disarms a kprobe on probed_fn for a
 * number of rounds while CPUs 1 and 2 call probed_fn. A hit runs the
 * pre-handler count and single-steps the copy in the slot (TF set, IF
 * clear); the #DB after it moves the CPU back into probed_fn and runs the
 * post-handler. Here #DB is taken on an IST stack (Linux's DEBUG_STACK),
 * and the post-handler calls probed_fn itself, as a tracer's handler may
 * call a function that is kprobed too. Linux re-enters the kprobe then
 * (reenter_kprobe(): the nested hit is counted as missed and its
 * instruction is still single-stepped), so a second #DB is raised while
 * the first #DB handler runs: the nesting the #DB entry's IST shift was for.
 *
 * Markers: 1 = the slot is filled, 2 = armed (value: the round),
 * 3 = disarmed (value: the round).
 */
#include "slice.h"
#include "percpu.h"
#include "entry.h"

#define MARKER_SLOT		1
#define MARKER_ARMED		2
#define MARKER_DISARMED		3

#define IST_DB			3
#define IST_DB_STACKS		2	/* the handler's and one nested #DB's */

#define X86_EFLAGS_TF		0x100UL
#define DR6_BS			(1UL << 14)

/* [params], written by the machine before boot. */
u64 rounds = 40;
u64 calls = 300;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_posts);	/* post-handler runs */
DEFINE_PER_CPU(u64, kprobe_reentered);	/* hits in the post-handler */
DEFINE_PER_CPU(u64, kprobe_ss);		/* 1: single-stepping the copy */
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, kprobe_in_post);
DEFINE_PER_CPU(u64, post_sum);
DEFINE_PER_CPU(u64, caller_sum);

static u8 db_stacks[NR_CPUS][IST_DB_STACKS * IST_STACK_SIZE] __aligned(4096);

u64 probed_fn(u64 x);			/* probe.S */
extern u8 kprobe_insn_slot[];		/* probe.S */

static unsigned long read_dr6(void)
{
	unsigned long v;

	asm volatile("mov %%dr6, %0" : "=r"(v));
	return v;
}

static void write_dr6(unsigned long v)
{
	asm volatile("mov %0, %%dr6" : : "r"(v));
}

/* do_int3() -> int3_hook(): kprobe_int3_handler(), reenter_kprobe(). */
int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	this_cpu_inc(kprobe_hits);
	if (this_cpu_read(kprobe_in_post))
		this_cpu_inc(kprobe_reentered);	/* no handler: single-step only */
	this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
	this_cpu_write(kprobe_ss, 1);
	regs->flags |= X86_EFLAGS_TF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)kprobe_insn_slot;
	return 1;
}

/* The kprobe's post-handler: it calls a function that is kprobed too. */
static void post_handler(void)
{
	this_cpu_write(kprobe_in_post, 1);
	this_cpu_write(post_sum, this_cpu_read(post_sum) + probed_fn(this_cpu_read(kprobe_posts)));
	this_cpu_write(kprobe_in_post, 0);
}

/* #DB (probe.S): kprobe_debug_handler() and resume_execution(). */
void do_debug(struct pt_regs *regs, unsigned long error_code)
{
	unsigned long dr6 = read_dr6();

	write_dr6(0);
	if (!(dr6 & DR6_BS) || !this_cpu_read(kprobe_ss))
		die("unexpected #DB", regs);
	regs->ip = (unsigned long)probed_fn + (regs->ip - (unsigned long)kprobe_insn_slot);
	regs->flags &= ~X86_EFLAGS_TF;
	regs->flags |= this_cpu_read(kprobe_saved_if);
	this_cpu_write(kprobe_ss, 0);
	this_cpu_inc(kprobe_posts);
	if (!this_cpu_read(kprobe_in_post))
		post_handler();
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 int3 = INT3_INSN_OPCODE;
	u8 orig = *(volatile u8 *)probed_fn;
	u64 round;

	text_poke(kprobe_insn_slot, &orig, 1);
	sync_core_all();
	pt_marker(MARKER_SLOT, 0);

	for (round = 0; round < READ_ONCE(rounds); round++) {
		text_poke((void *)probed_fn, &int3, 1);
		sync_core_all();
		pt_marker(MARKER_ARMED, round);
		spin(READ_ONCE(dwell));
		text_poke((void *)probed_fn, &orig, 1);
		sync_core_all();
		pt_marker(MARKER_DISARMED, round);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	unsigned long cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	/* This CPU's #DB stack (IST3), before the first call can hit the kprobe. */
	this_cpu_write(cpu_tss_ist[IST_DB], (unsigned long)(db_stacks[cpu] + IST_DB_STACKS * IST_STACK_SIZE));
	for (n = 0; n < READ_ONCE(calls); n++)
		sum += probed_fn(n);
	this_cpu_write(caller_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe's single-step path: int3, then TF.
 *
 * CPU 0 copies probed_fn's first instruction into the instruction slot,
 * then arms and disarms a kprobe on probed_fn (an int3 over that first
 * byte) for a number of rounds while CPUs 1 and 2 call probed_fn. A CPU
 * that hits the int3 does what Linux's kprobe_int3_handler() and
 * setup_singlestep() do: it runs the pre-handler (a count), then returns
 * from #BP to the copy in the slot with TF set and IF clear in the frame
 * (prepare_singlestep()). IRETQ loads TF: the copy executes, and the CPU
 * takes a single-step #DB right after it (SDM Vol. 3 §17.3.1.4). The #DB
 * handler, as kprobe_debug_handler() and resume_execution() do, checks
 * DR6.BS, moves regs->ip from the slot back into probed_fn after the
 * original instruction, clears TF, restores IF and runs the post-handler
 * (a count). Each hit is one pre and one post on the same CPU.
 *
 * Markers: 1 = the slot is filled, 2 = armed (value: the round),
 * 3 = disarmed (value: the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_SLOT		1
#define MARKER_ARMED		2
#define MARKER_DISARMED		3

#define X86_EFLAGS_TF		0x100UL
#define DR6_BS			(1UL << 14)
#define DR6_RESERVED		0xffff0ff0UL	/* what writing 0 leaves */

/* [params], written by the machine before boot. */
u64 rounds = 40;
u64 calls = 300;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_posts);	/* post-handler runs */
DEFINE_PER_CPU(u64, kprobe_ss);		/* 1: single-stepping the copy */
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, caller_sum);

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

/* do_int3() -> int3_hook(): the kprobe's int3 (kprobe_int3_handler()). */
int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	this_cpu_inc(kprobe_hits);
	/* setup_singlestep() / prepare_singlestep() */
	this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
	this_cpu_write(kprobe_ss, 1);
	regs->flags |= X86_EFLAGS_TF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)kprobe_insn_slot;
	return 1;
}

/* #DB (probe.S): kprobe_debug_handler() and resume_execution(). */
void do_debug(struct pt_regs *regs, unsigned long error_code)
{
	unsigned long dr6 = read_dr6();

	write_dr6(0);
	if (!(dr6 & DR6_BS) || !this_cpu_read(kprobe_ss))
		die("unexpected #DB", regs);
	/* The copy is not a branch: continue after the original. */
	regs->ip = (unsigned long)probed_fn + (regs->ip - (unsigned long)kprobe_insn_slot);
	regs->flags &= ~X86_EFLAGS_TF;
	regs->flags |= this_cpu_read(kprobe_saved_if);
	this_cpu_write(kprobe_ss, 0);
	this_cpu_inc(kprobe_posts);
	if (read_dr6() != DR6_RESERVED)
		die("DR6 not cleared", regs);
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
		/* arm_kprobe() / disarm_kprobe(): one byte, then sync */
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
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += probed_fn(n);
	this_cpu_write(caller_sum, sum);
}

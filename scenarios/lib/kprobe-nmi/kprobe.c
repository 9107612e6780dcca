// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe hit again in an NMI while the CPU single-steps it.
 *
 * The single-step path of kprobe-singlestep (kprobe_int3_handler(),
 * setup_singlestep(), kprobe_debug_handler()), with the per-CPU state
 * Linux keeps in its kprobe control block: the status (KPROBE_HIT_SS while
 * the copy is being single-stepped, KPROBE_REENTER for a probe hit while
 * another runs) and the interrupted context's IF. Between the IRETQ that
 * sends the CPU to the copy with TF set and the copy itself an NMI may be
 * taken, and an NMI handler may run the probed function (perf, a
 * watchdog, ftrace's NMI-safe tracers): the kprobe is hit again, on the
 * same CPU, in KPROBE_HIT_SS. reenter_kprobe() used to treat that as
 * unrecoverable and BUG(); upstream commit "kprobes/x86: Allow to handle
 * reentered kprobe on single-stepping" (Masami Hiramatsu, 2018) handles
 * it as any reentry: save the running probe's state, single-step the
 * nested hit without its handlers (counted as missed), and restore the
 * saved state at its #DB. A scenario that ships pt_kprobe_ss_bug.h builds
 * reenter_kprobe() as before that commit.
 *
 * CPU 0 copies probed_fn's first instruction into the slot, then arms and
 * disarms the kprobe for some rounds; CPUs 1 and 2 call probed_fn, and
 * every NMI's handler calls it once.
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

/* kprobe_ctlblk's status */
#define KPROBE_NONE		0
#define KPROBE_HIT_SS		1
#define KPROBE_REENTER		2

#define BUG_UNRECOVERABLE	1	/* pt_bug() id: "Unrecoverable kprobe detected" */

/* [params], written by the machine before boot. */
u64 rounds = 40;
u64 calls = 300;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_posts);	/* post-handler runs */
DEFINE_PER_CPU(u64, kprobe_missed);	/* reentered hits, handlers skipped */
DEFINE_PER_CPU(u64, kprobe_status);
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, kprobe_prev_status);	/* save_previous_kprobe() */
DEFINE_PER_CPU(u64, kprobe_prev_if);
DEFINE_PER_CPU(u64, caller_sum);
DEFINE_PER_CPU(u64, nmi_sum);

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

/* setup_singlestep(): run the copy in the slot with TF set, IF clear. */
static void setup_singlestep(struct pt_regs *regs)
{
	this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
	regs->flags |= X86_EFLAGS_TF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)kprobe_insn_slot;
}

/* reenter_kprobe(): the probe is hit while this CPU already runs it. */
static void reenter_kprobe(struct pt_regs *regs)
{
#if __has_include("pt_kprobe_ss_bug.h")
	if (this_cpu_read(kprobe_status) == KPROBE_HIT_SS)
		pt_bug(BUG_UNRECOVERABLE);	/* "Unrecoverable kprobe detected." */
#endif
	this_cpu_write(kprobe_prev_status, this_cpu_read(kprobe_status));
	this_cpu_write(kprobe_prev_if, this_cpu_read(kprobe_saved_if));
	this_cpu_inc(kprobe_missed);
	this_cpu_write(kprobe_status, KPROBE_REENTER);
	setup_singlestep(regs);
}

int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	if (this_cpu_read(kprobe_status) != KPROBE_NONE) {
		reenter_kprobe(regs);
		return 1;
	}
	this_cpu_inc(kprobe_hits);
	this_cpu_write(kprobe_status, KPROBE_HIT_SS);
	setup_singlestep(regs);
	return 1;
}

void do_debug(struct pt_regs *regs, unsigned long error_code)
{
	unsigned long dr6 = read_dr6();
	u64 status = this_cpu_read(kprobe_status);

	write_dr6(0);
	/*
	 * The copy's single-step stops right after it. DR6.BS says so too,
	 * unless an NMI taken on this entry's first instructions hit the
	 * probe again: the nested #DB's handler has cleared DR6 by the time
	 * this one reads it. Where the CPU stopped is what counts.
	 */
	if (status == KPROBE_NONE ||
	    (!(dr6 & DR6_BS) && regs->ip != (unsigned long)kprobe_insn_slot + 1))
		die("unexpected #DB", regs);
	/* resume_execution(): the copy is not a branch. */
	regs->ip = (unsigned long)probed_fn + (regs->ip - (unsigned long)kprobe_insn_slot);
	regs->flags &= ~X86_EFLAGS_TF;
	regs->flags |= this_cpu_read(kprobe_saved_if);
	if (status == KPROBE_REENTER) {
		/* restore_previous_kprobe() */
		this_cpu_write(kprobe_status, this_cpu_read(kprobe_prev_status));
		this_cpu_write(kprobe_saved_if, this_cpu_read(kprobe_prev_if));
		return;
	}
	this_cpu_write(kprobe_status, KPROBE_NONE);
	this_cpu_inc(kprobe_posts);
}

/* An NMI handler that runs the probed function (a perf-like consumer). */
void nmi_hook(struct pt_regs *regs)
{
	this_cpu_write(nmi_sum, this_cpu_read(nmi_sum) + probed_fn(regs->ip));
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
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += probed_fn(n);
	this_cpu_write(caller_sum, sum);
}

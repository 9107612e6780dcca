// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe's single-step path over a RIP-relative instruction.
 *
 * A kprobe runs the probed instruction out of line: a copy in an
 * instruction slot, single-stepped (TF), after which the #DB handler moves
 * the CPU back behind the original (kprobe-singlestep has the path). An
 * instruction whose memory operand is RIP-relative addresses memory
 * relative to its own end, so the copy in the slot must get a displacement
 * adjusted by the distance between the slot and the original, or it reads
 * whatever lies that far from the variable (Linux's __copy_instruction()
 * fixes it; upstream commit "kprobes/x86: Fix to copy RIP relative
 * instruction correctly" (Masami Hiramatsu, 2017) fixed a copy that
 * adjusted the displacement for the wrong address). A scenario that ships
 * pt_kprobe_riprel_nofix.h builds the copy without the adjustment.
 *
 * CPU 0 copies probed_fn's first instruction (mov probe_base(%rip), %rax)
 * into the slot, then arms and disarms the kprobe on probed_fn (one int3
 * byte, then a sync) for a number of rounds while CPUs 1 and 2 call
 * probed_fn. A CPU that hits the int3 counts the pre-handler and returns
 * from #BP to the slot with TF set and IF clear; the single-step #DB after
 * the copy moves it to probed_fn + the instruction's length, clears TF,
 * restores IF and counts the post-handler.
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

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 200;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_posts);	/* post-handler runs */
DEFINE_PER_CPU(u64, kprobe_ss);		/* 1: single-stepping the copy */
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */
extern u8 kprobe_insn_slot[];		/* probe.S */

static unsigned long insn_len;		/* the copied instruction's length */

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

int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	this_cpu_inc(kprobe_hits);
	this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
	this_cpu_write(kprobe_ss, 1);
	regs->flags |= X86_EFLAGS_TF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)kprobe_insn_slot;
	return 1;
}

void do_debug(struct pt_regs *regs, unsigned long error_code)
{
	unsigned long dr6 = read_dr6();

	write_dr6(0);
	if (!(dr6 & DR6_BS) || !this_cpu_read(kprobe_ss))
		die("unexpected #DB", regs);
	/* resume_execution(): not a branch, continue after the original. */
	regs->ip = (unsigned long)probed_fn + (regs->ip - (unsigned long)kprobe_insn_slot);
	regs->flags &= ~X86_EFLAGS_TF;
	regs->flags |= this_cpu_read(kprobe_saved_if);
	this_cpu_write(kprobe_ss, 0);
	this_cpu_inc(kprobe_posts);
}

/*
 * __copy_instruction() for the instruction this slice probes, a REX.W mov
 * load with a RIP-relative operand (ModRM mod 00, r/m 101: a disp32 from
 * the instruction's end): copy it from src into buf, for the slot at dest,
 * giving the copy the displacement that reaches the same address from
 * dest. Returns the length, 0 for what this slice does not copy.
 */
static int copy_instruction(u8 *buf, const u8 *src, unsigned long dest)
{
	const int disp_at = 3, len = 7;
	int disp;

	if ((src[0] & 0xf8) != 0x48 || src[1] != 0x8b || (src[2] & 0xc7) != 0x05)
		return 0;
	memcpy(buf, src, len);
	disp = (int)(src[disp_at] | src[disp_at + 1] << 8 | src[disp_at + 2] << 16 |
		     (u32)src[disp_at + 3] << 24);
#if !__has_include("pt_kprobe_riprel_nofix.h")
	/* the same target from the copy's end as from the original's */
	disp += (long)((unsigned long)src - dest);
#endif
	buf[disp_at] = (u8)disp;
	buf[disp_at + 1] = (u8)(disp >> 8);
	buf[disp_at + 2] = (u8)(disp >> 16);
	buf[disp_at + 3] = (u8)(disp >> 24);
	return len;
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
	u8 buf[16];
	u64 round;

	insn_len = copy_instruction(buf, (const u8 *)probed_fn, (unsigned long)kprobe_insn_slot);
	if (!insn_len)
		return;		/* register_kprobe() refuses */
	text_poke(kprobe_insn_slot, buf, insn_len);
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

// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe on a conditional branch, emulated by its int3
 * handler.
 *
 * Since Linux commit 6256e668b7af ("x86/kprobes: Use int3 instead of
 * debug trap for single-step", 2021) a kprobe on an instruction that
 * changes the instruction pointer is not single-stepped out of line: the
 * int3 handler decodes the probed instruction once, when the probe is
 * prepared, and emulates it after the pre-handler - for a Jcc, it tests
 * the interrupted context's flags as the condition says (SDM Vol. 2A
 * "Jcc") and sets regs->ip to the branch target or to the instruction
 * after the branch. Commit 8924779df820 ("x86/kprobes: Fix JNG/JNLE
 * emulation", 2022) fixed the condition of the JNG/JNLE pair (0x?e/0x?f),
 * "ZF = 1 or SF != OF", which the emulation tested with "and": a probed
 * jle was never taken (ZF = 1 means a zero result, so SF = OF = 0), and
 * the probed function silently took the other path. A scenario that
 * ships pt_kprobe_jcc_and.h builds the condition with "and", which makes
 * a probed jle never taken and a probed jg (its inverse) always.
 *
 * CPU 0 prepares a probe on probed_fn's jle and one on probed_gt's jg (the
 * condition type, length and target of each), then arms and disarms both
 * (one int3 byte each, then a sync) for a number of rounds while CPUs 1
 * and 2 call both functions with a below, equal to and above b. Each
 * caller compares the results with what the branches mean and counts the
 * wrong ones (wrong_results).
 *
 * Markers: 1 = the probes are prepared, 2 = armed (value: the round),
 * 3 = disarmed (value: the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_PREPARED		1
#define MARKER_ARMED		2
#define MARKER_DISARMED		3

#define X86_EFLAGS_CF		0x0001UL
#define X86_EFLAGS_PF		0x0004UL
#define X86_EFLAGS_ZF		0x0040UL
#define X86_EFLAGS_SF		0x0080UL
#define X86_EFLAGS_OF		0x0800UL

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 200;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, jcc_taken);		/* emulated branches taken */
DEFINE_PER_CPU(u64, wrong_results);	/* probed_fn said the other thing */

u64 probed_fn(long a, long b);		/* probe.S */
u64 probed_gt(long a, long b);

/* What prepare_emulation() keeps of a probed Jcc. */
struct jcc_probe {
	unsigned long addr;	/* the probed instruction */
	unsigned long len;	/* its length */
	long rel;		/* its displacement */
	unsigned int type;	/* the condition: the opcode's low nibble */
};

#define NR_PROBES	2
static struct jcc_probe probes[NR_PROBES];

static bool flag(unsigned long flags, unsigned long bit)
{
	return (flags & bit) != 0;
}

/*
 * The condition of a Jcc (SDM Vol. 2A, "Jcc"): the low nibble of the
 * opcode, its upper three bits a test of the flags, its low bit the
 * inverted test.
 */
static bool jcc_condition(unsigned int type, unsigned long flags)
{
	bool match;

	switch (type >> 1) {
	case 0:				/* jo */
		match = flag(flags, X86_EFLAGS_OF);
		break;
	case 1:				/* jb */
		match = flag(flags, X86_EFLAGS_CF);
		break;
	case 2:				/* je */
		match = flag(flags, X86_EFLAGS_ZF);
		break;
	case 3:				/* jbe */
		match = flag(flags, X86_EFLAGS_CF) || flag(flags, X86_EFLAGS_ZF);
		break;
	case 4:				/* js */
		match = flag(flags, X86_EFLAGS_SF);
		break;
	case 5:				/* jp */
		match = flag(flags, X86_EFLAGS_PF);
		break;
	case 6:				/* jl */
		match = flag(flags, X86_EFLAGS_SF) != flag(flags, X86_EFLAGS_OF);
		break;
	default:			/* jle */
		match = flag(flags, X86_EFLAGS_SF) != flag(flags, X86_EFLAGS_OF);
#if __has_include("pt_kprobe_jcc_and.h")
		match = match && flag(flags, X86_EFLAGS_ZF);
#else
		match = match || flag(flags, X86_EFLAGS_ZF);
#endif
		break;
	}
	return match != (type & 1);
}

/*
 * Decode the probed instruction once, when the probe is prepared: a Jcc
 * with an 8-bit (0x7?) or a 32-bit (0x0f 0x8?) displacement. Returns 0 for
 * anything else (this slice emulates nothing but a Jcc).
 */
static int prepare_emulation(struct jcc_probe *p, const u8 *insn)
{
	if ((insn[0] & 0xf0) == 0x70) {
		p->type = insn[0] & 0xf;
		p->rel = (s8)insn[1];
		p->len = 2;
	} else if (insn[0] == 0x0f && (insn[1] & 0xf0) == 0x80) {
		p->type = insn[1] & 0xf;
		p->rel = (int)(insn[2] | insn[3] << 8 | insn[4] << 16 | (u32)insn[5] << 24);
		p->len = 6;
	} else {
		return 0;
	}
	WRITE_ONCE(p->addr, (unsigned long)insn);
	return 1;
}

int int3_hook(struct pt_regs *regs)
{
	struct jcc_probe *p;

	for (p = probes; p < probes + NR_PROBES; p++) {
		unsigned long addr = READ_ONCE(p->addr);

		if (!addr || regs->ip - INT3_INSN_SIZE != addr)
			continue;
		this_cpu_inc(kprobe_hits);	/* the pre-handler */
		/* the emulation: the target or the next instruction */
		regs->ip = addr + p->len;
		if (jcc_condition(p->type, regs->flags)) {
			regs->ip += p->rel;
			this_cpu_inc(jcc_taken);
		}
		return 1;
	}
	return 0;
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	/* each function's Jcc, right after its 3-byte cmp */
	u8 *sites[NR_PROBES] = { (u8 *)probed_fn + 3, (u8 *)probed_gt + 3 };
	u8 orig[NR_PROBES];
	u8 int3 = INT3_INSN_OPCODE;
	u64 round;
	int i;

	for (i = 0; i < NR_PROBES; i++) {
		orig[i] = *(volatile u8 *)sites[i];
		if (!prepare_emulation(&probes[i], sites[i]))
			return;		/* register_kprobe() refuses */
	}
	pt_marker(MARKER_PREPARED, 0);

	for (round = 0; round < READ_ONCE(rounds); round++) {
		for (i = 0; i < NR_PROBES; i++)
			text_poke(sites[i], &int3, 1);
		sync_core_all();
		pt_marker(MARKER_ARMED, round);
		spin(READ_ONCE(dwell));
		for (i = 0; i < NR_PROBES; i++)
			text_poke(sites[i], &orig[i], 1);
		sync_core_all();
		pt_marker(MARKER_DISARMED, round);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		long a = (long)(n % 3) - 1;	/* -1, 0, 1 against 0 */

		if (probed_fn(a, 0) != (a <= 0 ? 1 : 2))
			this_cpu_inc(wrong_results);
		if (probed_gt(a, 0) != (a > 0 ? 1 : 2))
			this_cpu_inc(wrong_results);
	}
}

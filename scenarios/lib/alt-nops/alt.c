// SPDX-License-Identifier: GPL-2.0
/*
 * alt.c - apply_alternatives()'s in-place NOP optimization and commit
 * 6778977590da ("x86/alternatives: Disable interrupts and sync when
 * optimizing NOPs in place", Thomas Gleixner, 2023).
 *
 * An alternative whose original instruction is shorter than its
 * replacement is padded with single-byte nops. When the replacement is
 * not applied (an ALT_FLAG_NOT alternative on a CPU with the feature) the
 * original stays, and apply_alternatives() only rewrites the padding in
 * place into one long nop (optimize_nops_inplace()): live text, changed by
 * a plain copy. Before the fix that copy ran with interrupts on and nothing
 * serialized the CPU after it: an interrupt taken right after the copy
 * runs the site from what the CPU had prefetched and decoded of the old
 * bytes (SDM Vol. 3 §8.1.3: code that modifies itself must serialize, or
 * at least jump, before it runs the new bytes; an interrupt delivery does
 * neither, §9.3), and one taken in the middle of the copy would run a mix
 * of one-byte and long nops whose instruction boundaries do not match.
 * The fix disables interrupts around the copy and calls sync_core()
 * before it enables them again, as commit 3ea1704a9296 did for
 * text_poke_early(). A scenario that ships pt_nops_irqon.h builds the
 * version before the fix.
 *
 * One CPU, as when the boot CPU applies alternatives. Its boot task runs
 * nops_fn() (so the CPU has decoded the padding), optimizes the padding
 * (text_poke() stands for the memcpy, which the machine's read-only text
 * does not allow), and runs on; the timer handler calls nops_fn() on every
 * tick and counts a tick that saw the padding already rewritten
 * (optimized_ticks).
 *
 * Markers: 1 = the padding is optimized.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_OPTIMIZED	1

/* [params], written by the machine before boot. */
u64 warm = 50;
u64 dwell = 2000;

DEFINE_PER_CPU(u64, nops_ticks);
DEFINE_PER_CPU(u64, optimized_ticks);	/* ticks that ran after the rewrite */
DEFINE_PER_CPU(u64, bad_ticks);		/* nops_fn() did not return 8 */
DEFINE_PER_CPU(u64, boot_sum);

static u64 nops_optimized;

u64 nops_fn(void);			/* site.S */
extern u8 alt_site[], alt_pad[];

/* One entry of .altinstructions, as it was with an explicit padlen. */
struct alt_instr {
	u8 *instr;
	u8 instrlen;	/* the original with its padding */
	u8 padlen;	/* the single-byte nops at its end */
};

void timer_hook(struct pt_regs *regs)
{
	this_cpu_inc(nops_ticks);
	if (READ_ONCE(alt_pad[0]) != 0x90)
		this_cpu_inc(optimized_ticks);
	if (nops_fn() != 8)
		this_cpu_inc(bad_ticks);
}

/* The long nops by length (the kernel's x86_nops[]). */
static const u8 nop6[6] = { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* Rewrite the padding's one-byte nops into one long nop. */
static void optimize_nops(struct alt_instr *a)
{
	u8 *pad = a->instr + a->instrlen - a->padlen;
	int i;

	for (i = 0; i < a->padlen; i++)
		if (pad[i] != 0x90)
			return;		/* not a run of one-byte nops */
	if (a->padlen != sizeof(nop6))
		return;
	text_poke(pad, nop6, sizeof(nop6));	/* memcpy(pad, nop6, 6) */
	WRITE_ONCE(nops_optimized, 1);
}

static void optimize_nops_inplace(struct alt_instr *a)
{
#if __has_include("pt_nops_irqon.h")
	optimize_nops(a);
#else
	unsigned long flags;

	flags = local_irq_save();
	optimize_nops(a);
	sync_core();
	local_irq_restore(flags);
#endif
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void boot_main(unsigned long arg)
{
	struct alt_instr a = { .instr = alt_site, .instrlen = 11, .padlen = 6 };
	u64 sum = 0;
	u64 i;

	for (i = 0; i < READ_ONCE(warm); i++)
		sum += nops_fn();

	/* The feature is there: keep the original, optimize its padding. */
	optimize_nops_inplace(&a);
	pt_marker(MARKER_OPTIMIZED, 0);

	for (i = 0; i < READ_ONCE(warm); i++)
		sum += nops_fn();
	spin(READ_ONCE(dwell));
	this_cpu_write(boot_sum, sum);
}

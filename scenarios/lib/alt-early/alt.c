// SPDX-License-Identifier: GPL-2.0
/*
 * alt.c - text_poke_early() and the ordering of commit 3ea1704a9296
 * ("x86/alternatives: Sync core before enabling interrupts", Thomas
 * Gleixner, 2023).
 *
 * text_poke_early() patches alternatives in place while the kernel text is
 * live (at boot, on the CPU that applies them): interrupts off, copy the
 * replacement over the site, interrupts back on, then sync_core(). An
 * interrupt that became pending during the copy is taken as soon as
 * interrupts are on, before the sync_core(), and its handler may run the
 * code just patched: nothing has serialized the CPU since the copy, and
 * interrupt delivery is not serializing (SDM Vol. 3 §9.3 lists the
 * serializing instructions; a delivery is none), so the CPU may execute
 * what it had prefetched and decoded of the old bytes (SDM Vol. 3 §8.1.3:
 * self-modifying code must jump or serialize before it runs the new
 * code). The fix moves sync_core() before local_irq_restore(). A scenario
 * that ships pt_sync_after_irq.h builds the version before the fix.
 *
 * The machine has one CPU, as at boot when alternatives are applied. Its
 * boot task runs feature_fn() (so the CPU has decoded the site), applies
 * the alternative with text_poke_early() (text_poke() stands for the
 * memcpy, which the machine's read-only text does not allow), and runs on;
 * the timer handler calls feature_fn() on every tick and counts a tick
 * that ran the old code while memory already held the new (stale_ticks).
 *
 * Markers: 1 = the alternative is applied.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_APPLIED		1

/* [params], written by the machine before boot. */
u64 warm = 50;
u64 dwell = 4000;

DEFINE_PER_CPU(u64, feature_on_ticks);
DEFINE_PER_CPU(u64, feature_off_ticks);
DEFINE_PER_CPU(u64, stale_ticks);	/* the old code after the alternative was applied */
DEFINE_PER_CPU(u64, boot_sum);

u64 feature_fn(void);			/* site.S */
extern u8 alt_site[];

/* A tick that ran the old code while memory already held the new. */
void timer_hook(struct pt_regs *regs)
{
	if (feature_fn()) {
		this_cpu_inc(feature_on_ticks);
	} else {
		this_cpu_inc(feature_off_ticks);
		if (READ_ONCE(alt_site[1]) == 0x01)
			this_cpu_inc(stale_ticks);
	}
}

static void text_poke_early(void *addr, const void *opcode, size_t len)
{
	unsigned long flags;

	flags = local_irq_save();
	text_poke(addr, opcode, len);		/* memcpy(addr, opcode, len) */
#if __has_include("pt_sync_after_irq.h")
	local_irq_restore(flags);
	sync_core();
#else
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
	static const u8 repl[5] = { 0xb8, 0x01, 0x00, 0x00, 0x00 };	/* movl $1, %eax */
	u64 sum = 0;
	u64 i;

	for (i = 0; i < READ_ONCE(warm); i++)
		sum += feature_fn();

	text_poke_early(alt_site, repl, sizeof(repl));
	pt_marker(MARKER_APPLIED, 0);

	for (i = 0; i < READ_ONCE(warm); i++)
		sum += feature_fn();
	spin(READ_ONCE(dwell));
	this_cpu_write(boot_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - seed 003: CPU 0 flips traced_fn's fentry site between the nop
 * gcc emitted and "call handler" with text_poke_bp(), while the other CPUs
 * keep calling traced_fn.
 *
 * Markers: 1 = a round starts, 2 = the call is in place on every CPU,
 * 3 = the nop is back on every CPU, 4 = text_poke_bp() is about to put the
 * nop back (value: the round). Between 2 and 4 every pass must call
 * handler; from 4 on, a CPU that hits the int3 skips the site, as intended.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ROUND		1
#define MARKER_PATCHED		2
#define MARKER_UNPATCHED	3
#define MARKER_UNPATCHING	4

/* [params], written by the machine before boot. */
u64 patch_rounds = 150;
u64 calls = 3500;
u64 dwell = 64;		/* pause loops after each flip, so callers see each state */

DEFINE_PER_CPU(u64, handler_calls);
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);	/* traced.fentry.c */
void handler(void);	/* handler.S */

static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* The C half of handler: count, and check the call came from the site. */
notrace void handler_func(unsigned long ip, unsigned long parent_ip)
{
	if (ip != (unsigned long)traced_fn)
		pt_bug(1);
	this_cpu_inc(handler_calls);
}

static bool site_is(const u8 *insn)
{
	const volatile u8 *site = (const volatile u8 *)traced_fn;
	int i;

	for (i = 0; i < MCOUNT_INSN_SIZE; i++)
		if (site[i] != insn[i])
			return false;
	return true;
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	void *site = (void *)traced_fn;
	void *skip = (u8 *)site + MCOUNT_INSN_SIZE;
	long rel = (long)handler - (long)skip;
	u8 call[CALL_INSN_SIZE];
	u64 round;
	int i;

	/* e8 rel32: relative to the end of the call. */
	call[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		call[1 + i] = (u8)((unsigned long)rel >> (8 * i));

	if (!site_is(nop5))
		pt_bug(2);	/* not built with -mnop-mcount? */

	for (round = 0; round < READ_ONCE(patch_rounds); round++) {
		pt_marker(MARKER_ROUND, round);

		text_poke_bp(site, call, CALL_INSN_SIZE, skip);
		pt_marker(MARKER_PATCHED, round);
		spin(READ_ONCE(dwell));

		pt_marker(MARKER_UNPATCHING, round);
		text_poke_bp(site, nop5, MCOUNT_INSN_SIZE, skip);
		pt_marker(MARKER_UNPATCHED, round);
		spin(READ_ONCE(dwell));
	}

	if (!site_is(nop5))
		pt_bug(3);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += traced_fn(cpu << 32 | n);

	/* Keeps the calls live, and lets a reader check the work was done. */
	this_cpu_write(caller_sum, sum);
}

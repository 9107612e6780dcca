// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - seed 003, broken two ways: CPU 0 flips traced_fn's fentry site
 * between the nop gcc emitted and "call handler" while CPUs 1-3 keep calling
 * traced_fn, on a machine whose CPUs go on executing their cached decode of
 * changed bytes until they serialize (quirks.fetch = "stale").
 *
 * mode 0, text_poke_bp_nosync(): the int3 protocol with the sync after the
 *   int3 write left out. A CPU that decoded the old instruction before the
 *   int3 went in has no reason to refetch, so it never sees the int3: it
 *   keeps running its decode of the old 5 bytes while the other four are
 *   rewritten under it. The first sync_core_all() that is left (after the
 *   tail) is the first time it looks at memory again.
 *
 * mode 1, text_poke_plain(): no int3 at all, the 5 bytes written with one
 *   text_poke() and then a sync, as a naive "just write the new instruction
 *   and IPI everybody" would. Between the write and the sync a CPU runs the
 *   old instruction while memory holds the new one (and one that had never
 *   decoded the site would see the new one: the CPUs disagree).
 *
 * mode 2, text_poke_bp_early_clear(): all three syncs, but
 *   bp_patching_in_progress is cleared right after the first byte is
 *   restored, before the last sync -- the order seed 003's code is careful
 *   not to use ("bp_patching_in_progress = false; smp_wmb();" comes after the
 *   last on_each_cpu()). A CPU that is between taking the int3 and asking
 *   the int3 notifier, or that still runs its decode of the int3, finds
 *   nobody claiming it: an unhandled int3, an oops.
 *
 * Markers: 1 = a round starts, 2 = the call is in place on every CPU,
 * 3 = the nop is back on every CPU, 4 = about to put the nop back
 * (value: the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ROUND		1
#define MARKER_PATCHED		2
#define MARKER_UNPATCHED	3
#define MARKER_UNPATCHING	4

#define MODE_NOSYNC		0
#define MODE_PLAIN		1
#define MODE_EARLY_CLEAR	2

/* [params], written by the machine before boot. */
u64 patch_rounds = 60;
u64 calls = 1500;
u64 dwell = 64;		/* pause loops after each flip, so callers see each state */
u64 mode = MODE_NOSYNC;

DEFINE_PER_CPU(u64, handler_calls);
DEFINE_PER_CPU(u64, bp_skip_count);	/* int3s this slice's handler claimed */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);	/* traced.fentry.c */
void handler(void);	/* handler.S */

static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* text_poke_bp_nosync()'s int3 state (base's text_poke_bp() is not used). */
static void *bp_addr, *bp_handler;
static bool bp_in_progress;
static unsigned long text_mutex;

static void spin_lock(unsigned long *lock)
{
	while (xchg(lock, 1))
		cpu_relax();
}

static void spin_unlock(unsigned long *lock)
{
	barrier();
	WRITE_ONCE(*lock, 0);
}

/* The C half of handler: count, and check the call came from the site. */
notrace void handler_func(unsigned long ip, unsigned long parent_ip)
{
	if (ip != (unsigned long)traced_fn)
		pt_bug(1);
	this_cpu_inc(handler_calls);
}

/* do_int3() -> int3_hook(): our int3, if any, sends the CPU past the site. */
int int3_hook(struct pt_regs *regs)
{
	smp_rmb();
	if (!READ_ONCE(bp_in_progress))
		return 0;
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)READ_ONCE(bp_addr))
		return 0;
	regs->ip = (unsigned long)READ_ONCE(bp_handler);
	this_cpu_inc(bp_skip_count);
	return 1;
}

/*
 * text_poke_bp() as in seed 003, minus the first of its three syncs:
 *
 *	int3 on the first byte
 *	(no sync: "the int3 is in memory, every CPU will see it")
 *	the other bytes, sync cores
 *	the first byte, sync cores
 *
 * Wrong on any CPU that may keep a decoded copy of the site: nothing made
 * it look at the int3 before its tail changed.
 */
static void text_poke_bp_nosync(void *addr, const void *opcode, size_t len, void *handler)
{
	unsigned char int3 = INT3_INSN_OPCODE;

	spin_lock(&text_mutex);
	WRITE_ONCE(bp_handler, handler);
	WRITE_ONCE(bp_addr, addr);
	WRITE_ONCE(bp_in_progress, true);
	smp_wmb();

	text_poke(addr, &int3, INT3_INSN_SIZE);
	/* on_each_cpu(do_sync_core, NULL, 1) was here. */

	text_poke((u8 *)addr + INT3_INSN_SIZE, (const u8 *)opcode + INT3_INSN_SIZE,
		  len - INT3_INSN_SIZE);
	sync_core_all();

	text_poke(addr, opcode, INT3_INSN_SIZE);
	sync_core_all();

	WRITE_ONCE(bp_in_progress, false);
	smp_wmb();
	spin_unlock(&text_mutex);
}

/*
 * text_poke_bp() with its three syncs, but the in-progress flag cleared
 * before the last one: an int3 still in flight on another CPU is orphaned.
 */
static void text_poke_bp_early_clear(void *addr, const void *opcode, size_t len, void *handler)
{
	unsigned char int3 = INT3_INSN_OPCODE;

	spin_lock(&text_mutex);
	WRITE_ONCE(bp_handler, handler);
	WRITE_ONCE(bp_addr, addr);
	WRITE_ONCE(bp_in_progress, true);
	smp_wmb();

	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	text_poke((u8 *)addr + INT3_INSN_SIZE, (const u8 *)opcode + INT3_INSN_SIZE,
		  len - INT3_INSN_SIZE);
	sync_core_all();

	text_poke(addr, opcode, INT3_INSN_SIZE);
	WRITE_ONCE(bp_in_progress, false);	/* too early: before the sync */
	smp_wmb();
	sync_core_all();

	spin_unlock(&text_mutex);
}

/* No int3 at all: write the whole instruction, then sync. */
static void text_poke_plain(void *addr, const void *opcode, size_t len)
{
	spin_lock(&text_mutex);
	text_poke(addr, opcode, len);
	sync_core_all();
	spin_unlock(&text_mutex);
}

static void patch(void *addr, const void *opcode, size_t len, void *handler)
{
	switch (READ_ONCE(mode)) {
	case MODE_PLAIN:
		text_poke_plain(addr, opcode, len);
		break;
	case MODE_EARLY_CLEAR:
		text_poke_bp_early_clear(addr, opcode, len, handler);
		break;
	default:
		text_poke_bp_nosync(addr, opcode, len, handler);
	}
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

	call[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		call[1 + i] = (u8)((unsigned long)rel >> (8 * i));

	if (!site_is(nop5))
		pt_bug(2);

	for (round = 0; round < READ_ONCE(patch_rounds); round++) {
		pt_marker(MARKER_ROUND, round);

		patch(site, call, CALL_INSN_SIZE, skip);
		pt_marker(MARKER_PATCHED, round);
		spin(READ_ONCE(dwell));

		pt_marker(MARKER_UNPATCHING, round);
		patch(site, nop5, MCOUNT_INSN_SIZE, skip);
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

	this_cpu_write(caller_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - text_poke_bp() over text_poke_bp_batch() as in v5.5, before
 * the refcounted descriptor: the int3 handler finds the batch through a
 * global pair, bp_patching.nr_entries and bp_patching.vec, and the race
 * of commit 285a54efe386 ("x86/alternatives: Sync bp_patching update for
 * avoiding NULL pointer exception", Masami Hiramatsu, 2019).
 *
 * Every int3 goes through the batch's handler first, a kprobe's too, and
 * the kprobe's int3 has nothing to do with the batch: no sync keeps it
 * from arriving while the batch ends. The handler tests nr_entries, then
 * reads vec. Before the fix the batch's end cleared both at once, after its
 * last sync:
 *
 *	handler (kprobe int3)			patcher
 *	nr = bp_patching.nr_entries: 1
 *						bp_patching.vec = NULL
 *						bp_patching.nr_entries = 0
 *	tp = bp_patching.vec: NULL
 *	tp->addr				#PF: oops
 *
 * The fix clears nr_entries, syncs every CPU (an int3 handler runs with
 * interrupts off, so the sync's IPI waits until every handler that could
 * have seen nr_entries != 0 has returned), and only then clears vec. A
 * scenario that ships pt_vec_nosync.h builds the version before the fix.
 *
 * CPU 0 flips traced_fn's fentry nop5 to "call handler" and back with
 * text_poke_bp(); CPUs 1 and 2 call traced_fn and probed_fn, whose first
 * byte carries a kprobe's int3 for the whole run. The kprobe's handler
 * emulates the nop under it.
 *
 * Markers: 1 = the kprobe is armed, 2 = the call is in place, 3 = about to
 * put the nop back, 4 = the nop is back (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define noinline		__attribute__((noinline))

#define MARKER_ARMED		1
#define MARKER_CALL_IN		2
#define MARKER_NOP_NEXT		3
#define MARKER_NOP_IN		4

/* [params], written by the machine before boot. */
u64 rounds = 60;
u64 calls = 400;
u64 dwell = 300;

DEFINE_PER_CPU(u64, handler_calls);
DEFINE_PER_CPU(u64, kprobe_hits);
DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* lib/traced */
u64 probed_fn(u64 x);			/* probe.S */
void handler(void);			/* probe.S */

void handler_func(unsigned long ip, unsigned long parent_ip)
{
	this_cpu_inc(handler_calls);
}

struct text_poke_loc {
	unsigned long addr;
	int len;
	u8 opcode;
	u8 text[8];
};

/* What the int3 handler reads: the batch being patched, while nr != 0. */
static struct {
	struct text_poke_loc *vec;
	int nr_entries;
} bp_patching;

/* The text_poke_bp() half of do_int3(), run before the kprobe's. */
static int poke_int3_handler_batch(struct pt_regs *regs)
{
	struct text_poke_loc *tp;
	unsigned long ip;
	int nr;

	/* Having seen the int3, see the batch that planted it. */
	smp_rmb();
	nr = READ_ONCE(bp_patching.nr_entries);
	if (!nr)
		return 0;
	smp_rmb();
	ip = regs->ip - INT3_INSN_SIZE;
	tp = READ_ONCE(bp_patching.vec);
	if (nr == 1) {
		if (tp->addr != ip)
			return 0;
	} else {
		int i;

		for (i = 0; i < nr && tp[i].addr != ip; i++)
			;
		if (i == nr)
			return 0;
		tp += i;
	}

	if (tp->opcode == CALL_INSN_OPCODE)
		int3_emulate_call(regs, ip + CALL_INSN_SIZE + *(int *)(tp->text + 1));
	else
		int3_emulate_jmp(regs, ip + tp->len);	/* the nop */
	this_cpu_inc(poke_hits);
	return 1;
}

/* The kprobe on probed_fn: emulate the one-byte nop under its int3. */
static int kprobe_int3_handler(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	this_cpu_inc(kprobe_hits);
	int3_emulate_jmp(regs, (unsigned long)probed_fn + 1);
	return 1;
}

int int3_hook(struct pt_regs *regs)
{
	if (poke_int3_handler_batch(regs))
		return 1;
	return kprobe_int3_handler(regs);
}

/* text_poke_bp_batch(): int3s, sync, tails, sync, first bytes, sync. */
static noinline void text_poke_bp_batch(struct text_poke_loc *tp, int nr_entries)
{
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	WRITE_ONCE(bp_patching.vec, tp);
	smp_wmb();
	WRITE_ONCE(bp_patching.nr_entries, nr_entries);
	smp_wmb();

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((u8 *)tp[i].addr + 1, tp[i].text + 1, tp[i].len - 1);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, tp[i].text, INT3_INSN_SIZE);
	sync_core_all();

#if __has_include("pt_vec_nosync.h")
	/* Before 285a54efe386: both cleared, no handler waited for. */
	WRITE_ONCE(bp_patching.vec, NULL);
	WRITE_ONCE(bp_patching.nr_entries, 0);
#else
	/*
	 * 285a54efe386: no new handler uses vec once nr_entries is 0, and
	 * the sync waits for those that read it before (each runs with
	 * interrupts off and acks the IPI only when it returns).
	 */
	WRITE_ONCE(bp_patching.nr_entries, 0);
	sync_core_all();
	WRITE_ONCE(bp_patching.vec, NULL);
#endif
}

static noinline void text_poke_bp_one(void *addr, const u8 *opcode, int len)
{
	struct text_poke_loc tp = { .addr = (unsigned long)addr, .len = len, .opcode = opcode[0] };
	int i;

	for (i = 0; i < len; i++)
		tp.text[i] = opcode[i];
	text_poke_bp_batch(&tp, 1);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	static const u8 nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	u8 *site = (u8 *)traced_fn;
	u8 int3 = INT3_INSN_OPCODE;
	u8 call[5];
	long rel = (long)handler - (long)(site + CALL_INSN_SIZE);
	u64 r;
	int i;

	/* Arm the kprobe for the whole run: one int3 over probed_fn's nop. */
	text_poke(probed_fn, &int3, INT3_INSN_SIZE);
	sync_core_all();
	pt_marker(MARKER_ARMED, 0);

	call[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		call[1 + i] = (u8)((unsigned long)rel >> (8 * i));

	for (r = 0; r < READ_ONCE(rounds); r++) {
		text_poke_bp_one(site, call, 5);
		pt_marker(MARKER_CALL_IN, r);
		spin(READ_ONCE(dwell));
		pt_marker(MARKER_NOP_NEXT, r);
		text_poke_bp_one(site, nop5, 5);
		pt_marker(MARKER_NOP_IN, r);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		sum += traced_fn(n);
		sum += probed_fn(n);
	}
	this_cpu_write(caller_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - text_poke_queue()/text_poke_finish() over text_poke_bp_batch(),
 * whose int3 handler finds the site it was hit at by a binary search of the
 * batch's vector, as x86 does since the batching of jump labels (commit
 * 0f133021b8ad, "jump_label: Sort entries of the same key by the code":
 * "the binary search relies on the order of the entries") and text_poke_bp()
 * over text_poke_bp_batch() (Peter Zijlstra, v5.5, "x86/alternatives: Add
 * and use text_poke_addr_ordered()": "We hard rely on tp_vec being ordered;
 * ensure this is so by flushing early if needed").
 *
 * text_poke_queue() appends a site to the vector; a caller that queues its
 * sites in any order other than by address (ftrace's records, static calls
 * and jump entries of different keys are each sorted only among
 * themselves) builds a vector the handler's search cannot walk: a CPU that
 * hits the int3 of a site the search misses finds nobody claiming it, and
 * the kernel oopses ("unhandled int3"). The fix flushes the vector before
 * queuing an address lower than its last one (text_poke_addr_ordered()),
 * so every batch is sorted. A scenario that ships pt_queue_unordered.h
 * builds the version without that check.
 *
 * CPU 0 flips both sites between the nop and "call handler", queuing the
 * higher address first; CPUs 1 and 2 call both functions all along.
 *
 * Markers: 1 = a round starts, 2 = both calls are in place, 3 = about to
 * put the nops back, 4 = the nops are back (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ROUND		1
#define MARKER_CALL_IN		2
#define MARKER_NOP_NEXT		3
#define MARKER_NOP_IN		4

#define TP_VEC_MAX		4

/* [params], written by the machine before boot. */
u64 rounds = 40;
u64 calls = 400;
u64 dwell = 200;

DEFINE_PER_CPU(u64, handler_calls);
DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, caller_sum);

u64 site_a_fn(u64 x);		/* sites.fentry.c */
u64 site_b_fn(u64 x);
void handler(void);		/* probe.S */

void handler_func(unsigned long ip, unsigned long parent_ip)
{
	if (ip != (unsigned long)site_a_fn && ip != (unsigned long)site_b_fn)
		pt_bug(1);
	this_cpu_inc(handler_calls);
}

struct text_poke_loc {
	unsigned long addr;
	int len;
	u8 opcode;
	u8 text[8];
};

static struct text_poke_loc tp_vec[TP_VEC_MAX];
static int tp_vec_nr;

/* What the int3 handler reads: the vector being patched, while nr != 0. */
static struct text_poke_loc *bp_vec;
static int bp_nr;
static int bp_refs;

static inline void atomic_dec(int *p)
{
	asm volatile("lock decl %0" : "+m"(*p) :: "memory", "cc");
}

static inline int atomic_cmpxchg(int *p, int old, int new)
{
	asm volatile("lock cmpxchgl %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory", "cc");
	return old;
}

static bool get_desc(void)
{
	int c = READ_ONCE(bp_refs);

	for (;;) {
		int old;

		if (!c)
			return false;
		old = atomic_cmpxchg(&bp_refs, c, c + 1);
		if (old == c)
			return true;
		c = old;
	}
}

static void put_desc(void)
{
	smp_mb();
	atomic_dec(&bp_refs);
}

/* lib/bsearch.c's loop: halve the range around a pivot, lower half first. */
static struct text_poke_loc *tp_bsearch(unsigned long ip, struct text_poke_loc *base, int num)
{
	while (num > 0) {
		struct text_poke_loc *pivot = base + (num >> 1);

		if (ip == pivot->addr)
			return pivot;
		if (ip > pivot->addr) {
			base = pivot + 1;
			num--;
		}
		num >>= 1;
	}
	return NULL;
}

/* poke_int3_handler(): emulate the instruction being written, if ours. */
int int3_hook(struct pt_regs *regs)
{
	struct text_poke_loc *tp;
	unsigned long ip;
	int ret = 0;

	smp_rmb();
	if (!get_desc())
		return 0;

	ip = regs->ip - INT3_INSN_SIZE;
	tp = tp_bsearch(ip, READ_ONCE(bp_vec), READ_ONCE(bp_nr));
	if (!tp)
		goto out_put;

	if (tp->opcode == CALL_INSN_OPCODE)
		int3_emulate_call(regs, ip + CALL_INSN_SIZE + *(int *)(tp->text + 1));
	else
		int3_emulate_jmp(regs, ip + tp->len);	/* the nop */
	this_cpu_inc(poke_hits);
	ret = 1;
out_put:
	put_desc();
	return ret;
}

/* int3s, sync, tails, sync, first bytes, sync; then wait for the handlers. */
static void text_poke_bp_batch(struct text_poke_loc *tp, int nr)
{
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	WRITE_ONCE(bp_vec, tp);
	WRITE_ONCE(bp_nr, nr);
	smp_wmb();
	WRITE_ONCE(bp_refs, 1);
	smp_wmb();

	for (i = 0; i < nr; i++)
		text_poke((void *)tp[i].addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	for (i = 0; i < nr; i++)
		text_poke((u8 *)tp[i].addr + 1, tp[i].text + 1, tp[i].len - 1);
	sync_core_all();

	for (i = 0; i < nr; i++)
		text_poke((void *)tp[i].addr, tp[i].text, INT3_INSN_SIZE);
	sync_core_all();

	atomic_dec(&bp_refs);
	while (READ_ONCE(bp_refs))
		cpu_relax();
}

static void text_poke_flush(void)
{
	if (tp_vec_nr) {
		text_poke_bp_batch(tp_vec, tp_vec_nr);
		tp_vec_nr = 0;
	}
}

#if __has_include("pt_queue_unordered.h")
static bool text_poke_addr_ordered(unsigned long addr)
{
	return true;	/* before the fix: the vector is taken as it comes */
}
#else
static bool text_poke_addr_ordered(unsigned long addr)
{
	/* A lower address than the last one queued: flush first. */
	return !tp_vec_nr || tp_vec[tp_vec_nr - 1].addr <= addr;
}
#endif

static void text_poke_queue(void *addr, const u8 *opcode, int len)
{
	struct text_poke_loc *tp;
	int i;

	if (tp_vec_nr == TP_VEC_MAX || !text_poke_addr_ordered((unsigned long)addr))
		text_poke_flush();

	tp = &tp_vec[tp_vec_nr++];
	tp->addr = (unsigned long)addr;
	tp->len = len;
	tp->opcode = opcode[0];
	for (i = 0; i < len; i++)
		tp->text[i] = opcode[i];
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

static void make_call(u8 *insn, void *site)
{
	long rel = (long)handler - ((long)site + CALL_INSN_SIZE);
	int i;

	insn[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		insn[1 + i] = (u8)((unsigned long)rel >> (8 * i));
}

void patcher_main(unsigned long arg)
{
	static const u8 nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	u8 *lo = (u8 *)site_a_fn, *hi = (u8 *)site_b_fn;
	u8 call_lo[5], call_hi[5];
	u64 r;

	if (lo > hi) {
		u8 *t = lo;

		lo = hi;
		hi = t;
	}
	make_call(call_lo, lo);
	make_call(call_hi, hi);

	/* Queue the higher address first, as a caller walking its own list would. */
	for (r = 0; r < READ_ONCE(rounds); r++) {
		pt_marker(MARKER_ROUND, r);
		text_poke_queue(hi, call_hi, 5);
		text_poke_queue(lo, call_lo, 5);
		text_poke_flush();
		pt_marker(MARKER_CALL_IN, r);
		spin(READ_ONCE(dwell));

		pt_marker(MARKER_NOP_NEXT, r);
		text_poke_queue(hi, nop5, 5);
		text_poke_queue(lo, nop5, 5);
		text_poke_flush();
		pt_marker(MARKER_NOP_IN, r);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		sum += site_a_fn(n);
		sum += site_b_fn(n);
	}
	this_cpu_write(caller_sum, sum);
}

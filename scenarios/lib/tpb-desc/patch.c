// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - text_poke_bp() over text_poke_bp_batch() with the refcounted
 * descriptor of commit 1f676247f36a ("x86/alternatives: Implement a better
 * poke_int3_handler() completion scheme"), and the race of commit
 * efd608fa7403 ("x86/alternative: Fix race in try_get_desc()", Nadav Amit;
 * https://lore.kernel.org/all/20220920224743.3089-1-namit@vmware.com/).
 *
 * text_poke_bp_batch() publishes a descriptor of the sites it patches
 * (vec, nr_entries, refs = 1) for the int3 handler, and at the end takes
 * its reference back and waits until no handler holds one. Every int3 goes
 * through the handler first, the kprobe's too, and the kprobe's int3 has
 * nothing to do with the batch: no sync keeps it from arriving at any
 * time. Before the fix the descriptor lived on text_poke_bp_batch()'s
 * stack and the handler found it through a pointer, bp_desc:
 *
 *	handler					patcher
 *	desc = READ_ONCE(bp_desc)
 *						WRITE_ONCE(bp_desc, NULL)
 *						atomic_dec_and_test(&desc.refs): 0
 *						return: desc's frame is dead
 *	atomic_inc_not_zero(&desc->refs)	(its stack is reused)
 *
 * and the handler's increment (and the reads of desc->vec after it) land
 * in the patcher's dead frame. The fix makes the descriptor a static
 * object, so a handler that comes late finds refs == 0 in live memory. A
 * scenario that ships pt_desc_on_stack.h builds the version before the
 * fix.
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

#define __always_inline		inline __attribute__((always_inline))
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
	void *addr;
	int len;
	u8 opcode;
	u8 text[8];
};

struct bp_patching_desc {
	struct text_poke_loc *vec;
	int nr_entries;
	int refs;
};

static inline void atomic_inc(int *p)
{
	asm volatile("lock incl %0" : "+m"(*p) :: "memory", "cc");
}

static inline void atomic_dec(int *p)
{
	asm volatile("lock decl %0" : "+m"(*p) :: "memory", "cc");
}

static inline bool atomic_dec_and_test(int *p)
{
	bool zero;

	asm volatile("lock decl %0; sete %1" : "+m"(*p), "=qm"(zero) :: "memory", "cc");
	return zero;
}

static inline int atomic_cmpxchg(int *p, int old, int new)
{
	asm volatile("lock cmpxchgl %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory", "cc");
	return old;
}

static inline bool atomic_inc_not_zero(int *p)
{
	int c = READ_ONCE(*p);

	for (;;) {
		int old;

		if (!c)
			return false;
		old = atomic_cmpxchg(p, c, c + 1);
		if (old == c)
			return true;
		c = old;
	}
}

#if __has_include("pt_desc_on_stack.h")

/* Before efd608fa7403: the descriptor is on the patcher's stack. */
static struct bp_patching_desc *bp_desc;

static __always_inline struct bp_patching_desc *try_get_desc(void)
{
	struct bp_patching_desc *desc = READ_ONCE(bp_desc);	/* rcu_dereference */

	if (!desc || !atomic_inc_not_zero(&desc->refs))
		return NULL;
	return desc;
}


#else

/* efd608fa7403: one static descriptor; refs says whether it is in use. */
static struct bp_patching_desc bp_desc;

static __always_inline struct bp_patching_desc *try_get_desc(void)
{
	if (!atomic_inc_not_zero(&bp_desc.refs))
		return NULL;
	return &bp_desc;
}


#endif

static __always_inline void put_desc(struct bp_patching_desc *desc)
{
	smp_mb();
	atomic_dec(&desc->refs);
}

/* The text_poke_bp() half of do_int3(), run before the kprobe's. */
static int poke_int3_handler_batch(struct pt_regs *regs)
{
	struct bp_patching_desc *desc;
	struct text_poke_loc *tp;
	unsigned long ip;
	int i, ret = 0;

	smp_rmb();
	desc = try_get_desc();
	if (!desc)
		return 0;

	ip = regs->ip - INT3_INSN_SIZE;
	tp = NULL;
	for (i = 0; i < READ_ONCE(desc->nr_entries); i++) {
		if ((unsigned long)desc->vec[i].addr == ip) {
			tp = &desc->vec[i];
			break;
		}
	}
	if (!tp)
		goto out_put;

	if (tp->opcode == CALL_INSN_OPCODE) {
		long rel = *(int *)(tp->text + 1);

		int3_emulate_call(regs, ip + CALL_INSN_SIZE + rel);
	} else {
		int3_emulate_jmp(regs, ip + tp->len);	/* the nop */
	}
	this_cpu_inc(poke_hits);
	ret = 1;
out_put:
	put_desc(desc);
	return ret;
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
#if __has_include("pt_desc_on_stack.h")
	struct bp_patching_desc desc = { .vec = tp, .nr_entries = nr_entries, .refs = 1 };

	WRITE_ONCE(bp_desc, &desc);		/* smp_store_release() */
#else
	struct bp_patching_desc *d = &bp_desc;

	bp_desc.vec = tp;
	bp_desc.nr_entries = nr_entries;
	WRITE_ONCE(bp_desc.refs, 1);		/* atomic_set_release() */
#endif
	smp_wmb();

	for (i = 0; i < nr_entries; i++)
		text_poke(tp[i].addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((u8 *)tp[i].addr + 1, tp[i].text + 1, tp[i].len - 1);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke(tp[i].addr, tp[i].text, INT3_INSN_SIZE);
	sync_core_all();

	/* Remove, and wait for the handlers that hold a reference. */
#if __has_include("pt_desc_on_stack.h")
	WRITE_ONCE(bp_desc, NULL);		/* RCU_INIT_POINTER() */
	if (!atomic_dec_and_test(&desc.refs))
		while (READ_ONCE(desc.refs))
			cpu_relax();
#else
	if (!atomic_dec_and_test(&d->refs))
		while (READ_ONCE(d->refs))
			cpu_relax();
#endif
}

static noinline void text_poke_bp_one(void *addr, const u8 *opcode, int len)
{
	struct text_poke_loc tp = { .addr = addr, .len = len, .opcode = opcode[0] };
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

// SPDX-License-Identifier: GPL-2.0
/*
 * key.c - static_key_slow_inc()/static_key_slow_dec() on a key with one
 * jump label site, and the race of commit 4c5ea0a9cd02
 * ("locking/static_key: Fix concurrent static_key_slow_inc()", Paolo
 * Bonzini, 2016).
 *
 * key->enabled counts the users. A user whose static_key_slow_inc() has
 * returned may rely on the branch being taken: KVM, the fix's reporter,
 * enables a key and then runs code that is only correct with the branch
 * in. Before the fix static_key_slow_inc() took a fast path for any
 * enabled != 0:
 *
 *	CPU 0 (first user)			CPU 1 (second user)
 *	atomic_inc_not_zero(&enabled): 0, no
 *	lock; atomic_inc_return(): 1
 *	jump_label_update(): text_poke_bp()...
 *						atomic_inc_not_zero(&enabled): yes
 *						returns: the site is still a nop
 *
 * The fix lets the fast path increment only a positive count, and the
 * first user holds enabled at -1 while it patches: the second takes the
 * mutex and waits until the jmp is in. A scenario that ships
 * pt_inc_not_zero.h builds the version before the fix.
 *
 * CPUs 0 and 1 each take a reference, call sk_fn() (the branch must be
 * in), and drop it, over and over; jump_label_update() patches the site
 * with text_poke_bp(), whose int3 handler sends a CPU on after the site
 * (the jump label code of the time: the old nop's behaviour).
 *
 * Markers: 2 = this CPU's static_key_slow_inc() returned (value: CPU),
 * 3 = this CPU is about to static_key_slow_dec().
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_KEY_HELD		2
#define MARKER_KEY_DROP		3

#define JMP32_INSN_OPCODE	0xe9

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 4;
u64 dwell = 300;

DEFINE_PER_CPU(u64, branch_off_calls);	/* sk_fn() without the branch while holding the key */
DEFINE_PER_CPU(u64, key_rounds);

u64 sk_fn(u64 x);		/* site.S */
extern u8 sk_site[], sk_yes[];

struct static_key {
	int enabled;
};

static struct static_key sk_key;
static unsigned long jump_label_mutex;

static inline int atomic_read(const int *p)
{
	return READ_ONCE(*p);
}

static inline void atomic_set(int *p, int v)
{
	WRITE_ONCE(*p, v);
}

static inline int atomic_cmpxchg(int *p, int old, int new)
{
	asm volatile("lock cmpxchgl %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory", "cc");
	return old;
}

static inline int atomic_add_return(int *p, int i)
{
	int old = i;

	asm volatile("lock xaddl %0, %1" : "+r"(old), "+m"(*p) :: "memory", "cc");
	return old + i;
}

/* Add i unless the count is u; true if it added. */
static bool atomic_add_unless(int *p, int i, int u)
{
	int c = atomic_read(p);

	while (c != u) {
		int old = atomic_cmpxchg(p, c, c + i);

		if (old == c)
			return true;
		c = old;
	}
	return false;
}

static void jump_label_lock(void)
{
	while (xchg(&jump_label_mutex, 1))
		cpu_relax();
}

static void jump_label_unlock(void)
{
	barrier();
	WRITE_ONCE(jump_label_mutex, 0);
}

/* The arch transform: a jmp to the other branch, or the nop back. */
static void jump_label_update(bool enable)
{
	static const u8 nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	long rel = (long)sk_yes - (long)(sk_site + 5);
	u8 jmp[5];
	int i;

	jmp[0] = JMP32_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		jmp[1 + i] = (u8)((unsigned long)rel >> (8 * i));
	text_poke_bp(sk_site, enable ? jmp : nop5, 5, sk_site + 5);
}

#if __has_include("pt_inc_not_zero.h")
/* Before 4c5ea0a9cd02: any user after the first takes the fast path. */
static void static_key_slow_inc(struct static_key *key)
{
	if (atomic_add_unless(&key->enabled, 1, 0))
		return;		/* atomic_inc_not_zero() */
	jump_label_lock();
	if (atomic_add_return(&key->enabled, 1) == 1)
		jump_label_update(true);
	jump_label_unlock();
}
#else
/*
 * 4c5ea0a9cd02: the fast path only for a positive count; the first user
 * holds the count at -1 until the branch is in.
 */
static void static_key_slow_inc(struct static_key *key)
{
	int v, v1;

	for (v = atomic_read(&key->enabled); v > 0; v = v1) {
		v1 = atomic_cmpxchg(&key->enabled, v, v + 1);
		if (v1 == v)
			return;
	}
	jump_label_lock();
	if (atomic_read(&key->enabled) == 0) {
		atomic_set(&key->enabled, -1);
		jump_label_update(true);
		atomic_set(&key->enabled, 1);
	} else {
		atomic_add_return(&key->enabled, 1);
	}
	jump_label_unlock();
}
#endif

/* atomic_dec_and_mutex_lock(): the last user patches the nop back. */
static void static_key_slow_dec(struct static_key *key)
{
	if (atomic_add_unless(&key->enabled, -1, 1))
		return;
	jump_label_lock();
	if (atomic_add_return(&key->enabled, -1) == 0)
		jump_label_update(false);
	jump_label_unlock();
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

/* A user of the key: enable, rely on the branch, disable. */
void user_main(unsigned long arg)
{
	u64 r, n;

	for (r = 0; r < READ_ONCE(rounds); r++) {
		static_key_slow_inc(&sk_key);
		pt_marker(MARKER_KEY_HELD, arg);
		for (n = 0; n < READ_ONCE(calls); n++)
			if (sk_fn(n) != n + 0x22)
				this_cpu_inc(branch_off_calls);
		pt_marker(MARKER_KEY_DROP, arg);
		static_key_slow_dec(&sk_key);
		this_cpu_inc(key_rounds);
		spin(READ_ONCE(dwell) * (arg + 1));
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * selftest.c - an int3 that stands for a call the compiler never saw.
 *
 * Modelled on Linux's int3_emulate_call() selftest (commit 7457c0da024b,
 * 2019): a function executes an asm statement holding an int3 padded with
 * nops to the length of a CALL, and the #BP handler emulates "call
 * int3_magic" there (int3_emulate_call() of slice.h: push site + 5, go to
 * the target), so the target runs and returns to the asm's end. The
 * compiler saw only the asm: no call, no register clobbered. It may keep
 * any value live in any register across it.
 *
 * int3_magic() is C, and instrumented as KASAN's outline mode instruments
 * a store: a call to a check function (__asan_store4 here) before it. Its
 * code then uses caller-saved registers the asm's caller kept values in;
 * the kernel's selftest corrupted its caller's stack that way under KASAN
 * (commit ecc606103837, "x86/alternatives: Fix int3_emulate_call()
 * selftest stack corruption", https://lkml.kernel.org/r/20190709125744.GB3402@hirez.programming.kicks-ass.net).
 *
 * A scenario that ships pt_int3_preserve.h has the handler emulate a call
 * to int3_magic_thunk (thunk.S) instead, which saves and restores the
 * caller-saved registers around int3_magic(): the fixed twin.
 *
 * Each task calls int3_selftest() `calls` times; a result that is not what
 * the same arithmetic gives without the int3 counts in selftest_bad.
 */
#include "slice.h"
#include "percpu.h"

#define noinline	__attribute__((noinline))

/* [params], written by the machine before boot. */
u64 calls = 200;

DEFINE_PER_CPU(u64, selftest_calls);
DEFINE_PER_CPU(u64, selftest_bad);	/* results the clobber changed */
DEFINE_PER_CPU(u64, selftest_sum);
DEFINE_PER_CPU(u64, kasan_reports);

void int3_magic(unsigned int *ptr);
void int3_magic_thunk(unsigned int *ptr);	/* thunk.S */
extern const char int3_selftest_ip[];		/* the asm label below */

/*
 * A folded shadow: one byte for each 8-byte granule, indexed by the
 * address's granule number modulo its size (the slice maps no shadow
 * region; the check's shape is what matters here: address arithmetic, a
 * shadow load, a compare, a report on poison).
 */
#define KASAN_SHADOW_SLOTS	4096
static s8 kasan_shadow[KASAN_SHADOW_SLOTS];

static noinline void kasan_report(unsigned long addr, size_t size, bool write, unsigned long ip)
{
	this_cpu_inc(kasan_reports);
	pt_marker(0x6b61, addr);
}

/*
 * Whether the size bytes at addr are addressable: every granule they touch
 * has a zero shadow byte, or a partial one covering the bytes used.
 */
static noinline bool kasan_check_range(unsigned long addr, size_t size, bool write, unsigned long ip)
{
	unsigned long last = addr + size - 1;
	unsigned long g;

	for (g = addr >> 3; g <= last >> 3; g++) {
		s8 shadow = READ_ONCE(kasan_shadow[g & (KASAN_SHADOW_SLOTS - 1)]);

		if (unlikely(shadow != 0) && (g != last >> 3 || (s8)(last & 7) >= shadow)) {
			kasan_report(addr, size, write, ip);
			return false;
		}
	}
	return true;
}

/* The check KASAN's outline instrumentation calls before a 4-byte store. */
noinline notrace void __asan_store4(unsigned long addr)
{
	kasan_check_range(addr, 4, true, (unsigned long)__builtin_return_address(0));
}

/* *ptr = 1, as the compiler instruments it under KASAN. */
notrace void int3_magic(unsigned int *ptr)
{
	__asan_store4((unsigned long)ptr);
	*ptr = 1;
}

static unsigned long int3_target(void)
{
#if __has_include("pt_int3_preserve.h")
	return (unsigned long)int3_magic_thunk;
#else
	return (unsigned long)int3_magic;
#endif
}

/* do_int3() -> int3_hook(): the selftest's int3 emulates the call. */
int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)int3_selftest_ip)
		return 0;
	int3_emulate_call(regs, int3_target());
	return 1;
}

/* Mixes x into two values the compiler cannot fold into the asm. */
static inline void mix(u64 x, u64 *a, u64 *b, u64 *c)
{
	*a = x * 0x9e3779b97f4a7c15UL;
	*b = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9UL;
	*c = x + 0x632be59bd9b4e019UL;
	/* Opaque from here: the values exist before the asm and are used after. */
	asm volatile("" : "+r"(*a), "+r"(*b), "+r"(*c));
}

/*
 * int3_magic(&val), really complicated: the int3 padded with nops to a
 * CALL's length. The asm names no register clobber, so a, b and c may live
 * in any register across it.
 */
static noinline u64 int3_selftest(u64 x)
{
	unsigned int val = 0;
	u64 a, b, c;

	mix(x, &a, &b, &c);
	asm volatile("int3_selftest_ip: int3; nop; nop; nop; nop\n\t"
		     : : "D" (&val) : "memory");
	return (a + b) ^ c ^ val;
}

/* What int3_selftest(x) returns when the call kept the registers. */
static noinline u64 int3_selftest_expected(u64 x)
{
	u64 a, b, c;

	mix(x, &a, &b, &c);
	return (a + b) ^ c ^ 1;
}

void selftest_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		u64 x = cpu << 32 | arg << 16 | n;
		u64 got = int3_selftest(x);

		if (got != int3_selftest_expected(x))
			this_cpu_inc(selftest_bad);
		this_cpu_inc(selftest_calls);
		sum += got;
	}
	this_cpu_write(selftest_sum, sum);
}

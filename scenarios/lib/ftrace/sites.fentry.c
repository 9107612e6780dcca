// SPDX-License-Identifier: GPL-2.0
/*
 * sites.fentry.c - the two livepatched functions (shared by the ftrace-*
 * scenarios). build.sh compiles *.fentry.c with -pg -mfentry -mnop-mcount
 * -mrecord-mcount: gcc puts the 5-byte nop at each function's entry, and
 * that is the call site the patcher rewrites.
 *
 * The body stands for the old, buggy code. With the livepatch in force a
 * handler has always run by the time the body starts (klp_redirected()),
 * and the call goes to the replacement; if no handler ran in this pass the
 * old code runs - the bug a livepatch exists to prevent.
 */
#include "ftrace.h"

DEFINE_PER_CPU(unsigned long, fn1_calls);
DEFINE_PER_CPU(unsigned long, fn2_calls);

u64 lp_fn1_new(u64 x);
u64 lp_fn2_new(u64 x);

u64 lp_fn1(u64 x)
{
	this_cpu_inc(fn1_calls);
	if (klp_redirected(lp_fn1))
		return lp_fn1_new(x);
	return x * 0x9e3779b97f4a7c15UL;	/* the old code */
}

u64 lp_fn2(u64 x)
{
	this_cpu_inc(fn2_calls);
	if (klp_redirected(lp_fn2))
		return lp_fn2_new(x);
	return x * 0xc2b2ae3d27d4eb4fUL;	/* the old code */
}

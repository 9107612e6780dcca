// SPDX-License-Identifier: GPL-2.0
/*
 * sites.fentry.c - the two traced functions (gcc puts the 5-byte fentry
 * nop before each prologue): fn_a is in ops_a's filter, fn_b in ops_b's.
 */
#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(u64, fn_a_calls);
DEFINE_PER_CPU(u64, fn_b_calls);

u64 fn_a(u64 x)
{
	this_cpu_inc(fn_a_calls);
	return x * 3 + 1;
}

u64 fn_b(u64 x)
{
	this_cpu_inc(fn_b_calls);
	return x ^ 0x5a5a;
}

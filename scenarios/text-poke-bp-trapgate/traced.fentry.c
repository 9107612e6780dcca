// SPDX-License-Identifier: GPL-2.0
/*
 * traced.fentry.c - the patched site. build.sh compiles *.fentry.c with
 * -pg -mfentry -mnop-mcount -mrecord-mcount: gcc itself puts the 5-byte
 * nop (0f 1f 44 00 00) before traced_fn's prologue and records its address
 * in __mcount_loc, as for any ftrace-able kernel function.
 */
#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(u64, traced_calls);

u64 traced_fn(u64 x)
{
	this_cpu_inc(traced_calls);

	/* A little real work: mix the argument's bits (splitmix64's finalizer). */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9UL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebUL;
	x ^= x >> 31;
	return x;
}

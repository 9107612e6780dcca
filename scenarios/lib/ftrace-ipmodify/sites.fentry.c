// SPDX-License-Identifier: GPL-2.0
/*
 * sites.fentry.c - the traced function (gcc puts the 5-byte fentry nop
 * before its prologue) and the livepatch's replacement for it.
 */
#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(u64, old_fn_calls);
DEFINE_PER_CPU(u64, new_fn_calls);

u64 traced_fn(u64 x)
{
	this_cpu_inc(old_fn_calls);
	return x + 1;
}

/* The livepatched version: what every caller must get once it is applied. */
u64 new_fn(u64 x)
{
	this_cpu_inc(new_fn_calls);
	return x + 2;
}

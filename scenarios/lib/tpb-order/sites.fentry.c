// SPDX-License-Identifier: GPL-2.0
/*
 * sites.fentry.c - two ftrace-able functions (gcc puts a 5-byte nop before
 * each prologue, -mfentry): the two sites one text_poke_bp batch patches.
 */
#include "slice.h"
#include "percpu.h"

u64 site_a_fn(u64 x)
{
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9UL;
	return x ^ (x >> 32);
}

u64 site_b_fn(u64 x)
{
	x += 0x9e3779b97f4a7c15UL;
	x ^= x >> 31;
	return x * 0x94d049bb133111ebUL;
}

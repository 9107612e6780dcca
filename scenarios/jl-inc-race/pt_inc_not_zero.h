/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_inc_not_zero.h - its presence makes lib/jl-inc build
 * static_key_slow_inc() as it was before commit 4c5ea0a9cd02: a fast path
 * for any key->enabled != 0, taken while the first user is still patching.
 */

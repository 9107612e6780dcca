/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_optprobe_range_disabled.h - its presence makes lib/optprobe-range's
 * arch_check_optimized_kprobe() let an optprobe be optimized when the
 * kprobes in its range are disabled, not disarmed (the bug fixed by commit
 * f1c97a1b4ef7, "x86/kprobes: Fix arch_check_optimized_kprobe check within
 * optimized_kprobe range").
 */

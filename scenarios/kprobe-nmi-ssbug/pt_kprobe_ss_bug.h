/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_ss_bug.h - its presence makes lib/kprobe-nmi's reenter_kprobe()
 * BUG() on a probe hit while the CPU single-steps one (KPROBE_HIT_SS), as
 * before upstream commit "kprobes/x86: Allow to handle reentered kprobe on
 * single-stepping".
 */

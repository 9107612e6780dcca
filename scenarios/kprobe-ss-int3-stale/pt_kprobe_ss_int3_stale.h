/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_ss_int3_stale.h - its presence makes lib/kprobe-ss-int3's
 * kprobe_post_process() set KPROBE_HIT_SSDONE only for a kprobe with a
 * post-handler, as Linux did before commit dec8784c9088 ("x86/kprobes:
 * Update kcb status flag after singlestepping").
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_no_sc_reserved.h - its presence makes lib/kprobe-sc build
 * register_kprobe() without static_call_text_reserved(), as it was between
 * the merge that lost it and commit fa68bd09fc62.
 */

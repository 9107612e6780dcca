/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_optprobe_nowait.h - its presence makes lib/optprobe build the
 * optimizer as on CONFIG_PREEMPT kernels without commit a30b85df7d59: no
 * synchronize_rcu_tasks() between marking the probe optimized and writing
 * the jump.
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_boost_nowait.h - its presence makes lib/kprobe-boost-free free
 * the boost slot right after disarming the probe and syncing every CPU,
 * without waiting for tasks preempted in it.
 */

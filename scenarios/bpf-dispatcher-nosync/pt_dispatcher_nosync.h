/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_dispatcher_nosync.h - its presence makes lib/bpf-dispatcher build
 * bpf_dispatcher_update() as it was before commit 4121d4481b72: no
 * synchronize_rcu() after the entry is switched to the new half.
 */

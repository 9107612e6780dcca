/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_bpf_tramp_noref.h - its presence makes lib/bpf-tramp-sleep build the
 * trampoline image without the reference around the call to the original
 * function and free it after one synchronize_rcu_tasks(), as Linux did
 * before commit e21aa341785c ("bpf: Fix fexit trampoline.").
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_sym0.h - its presence makes lib/kprobe-endbr probe sym+0 as
 * given, on the ENDBR64, as Linux did on an IBT kernel before commit
 * cc66bb914578 ("x86/ibt,kprobes: Cure sym+0 equals fentry woes").
 */

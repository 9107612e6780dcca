/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_dyn_tramp_boot_ro.h - its presence makes lib/dyn-tramp-boot's
 * create_trampoline() make the trampoline read-only at creation even while
 * the system is booting, as before upstream commit 59566b0b622e
 * ("x86/ftrace: Have ftrace trampolines turn read-only at the end of
 * system boot up"): boot's text_poke_early() memcpy() into it faults.
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_jcc_and.h - its presence makes lib/kprobe-jcc test the
 * JNG/JNLE condition as "ZF = 1 and SF != OF", as Linux did before commit
 * 8924779df820 ("x86/kprobes: Fix JNG/JNLE emulation").
 */

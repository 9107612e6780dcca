/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_optprobe_range_norecover.h - its presence makes lib/optprobe-range's
 * recover_insn() skip an optprobe queued for unoptimizing, whose jump is
 * still in the text, and return the live bytes of that jump (the bug fixed
 * by commit 868a6fc0ca24, "x86/kprobes: Fix __recover_optprobed_insn check
 * optimizing logic").
 */

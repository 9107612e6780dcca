/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_optprobe_riprel_start.h - its presence makes lib/optprobe-riprel
 * adjust the RIP-relative displacement of every instruction it copies into
 * the detour as if the copy ran at the start of the copies (the bug of
 * upstream "kprobes/x86: Fix to copy RIP relative instruction correctly").
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_optprobe_nothunk.h - its presence makes lib/optprobe-jt build
 * can_optimize() as before upstream commit "kprobes/x86: Disable
 * optimizing on the function jumps to indirect thunk": a jump to the retpoline
 * thunk is a direct jump out of the function, not an indirect jump.
 */

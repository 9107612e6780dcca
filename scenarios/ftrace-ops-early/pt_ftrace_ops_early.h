/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/ftrace-ops/ops.c, the order before upstream 59338f754a55: ftrace_call goes to the one ops left before the other ops' site is final. */
#define PT_FTRACE_OPS_EARLY 1

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * func_a, func_b - the two targets traced_fn's fentry site calls, as the
 * ftrace trampolines a site switches between (ftrace_caller and
 * ftrace_regs_caller, or a livepatch's old and new handler).
 *
 * Each runs before traced_fn's prologue, so traced_fn's arguments are live
 * in the argument registers: save them around the C part. On entry 0(%rsp)
 * is the return address, traced_fn + 5, pushed by the site's own CALL (in
 * this scenario do_int3() never emulates the call), and 8(%rsp) is
 * traced_fn's return address into its caller.
 */
#include "entry.h"

	.text

FENTRY_HANDLER func_a, func_a_c
FENTRY_HANDLER func_b, func_b_c

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ftrace_64.S - the two handlers a livepatched function's fentry site can
 * call (shared by the ftrace-* scenarios).
 *
 * Like ftrace_caller, each runs before the traced function's prologue, so
 * that function's arguments are still live in the argument registers (and
 * %rax): save them around the C part. On entry (%rsp) is the return address,
 * site + 5, and 8(%rsp) the traced function's own return address.
 */
#include "entry.h"

	.text

/* The livepatch ops' own trampoline: the only ops on the function. */
FENTRY_HANDLER lp_handler, lp_handler_func

/* The list caller: the function has more than one ops (livepatch + tracer). */
FENTRY_HANDLER ftrace_list_caller, ftrace_list_func

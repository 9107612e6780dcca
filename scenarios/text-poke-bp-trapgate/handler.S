/* SPDX-License-Identifier: GPL-2.0 */
/*
 * handler - what traced_fn's fentry site calls once patched.
 *
 * Like ftrace_caller, it runs before traced_fn's prologue, so traced_fn's
 * arguments are still live in the argument registers (and %rax, which a
 * varargs caller uses): save them around the C part. The stack holds our
 * return address (traced_fn + 5) with traced_fn's own return address just
 * above it.
 */
#include "entry.h"

	.text

FENTRY_HANDLER handler, handler_func

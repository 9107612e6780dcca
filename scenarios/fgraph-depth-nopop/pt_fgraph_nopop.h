/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/fgraph/fgraph.c, the declined entry left on the return stack (no curr_ret_stack--). */

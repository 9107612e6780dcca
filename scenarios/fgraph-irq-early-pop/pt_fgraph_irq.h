/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/fgraph/fgraph.c, a timer interrupt handler that calls the traced inner_fn. */

/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/fgraph/fgraph.c, the return path that gives its entry back before reading it. */

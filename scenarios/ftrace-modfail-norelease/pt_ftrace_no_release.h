/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/ftrace-modfail/modfail.c, do_init_module()'s error path without ftrace_release_mod(). */

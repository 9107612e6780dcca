/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_ftrace_ipmodify_nocheck.h - its presence makes lib/ftrace-ipmodify
 * register a second ftrace_ops that changes regs->ip on a function that
 * has one, as Linux did before commit f8b8be8a310a ("ftrace, kprobes:
 * Support IPMODIFY flag to find IP modify conflict").
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kretprobe_oldest.h - its presence makes lib/kretprobe's trampoline
 * handler take the task's oldest pending instance instead of the one of the
 * frame it was entered from.
 */

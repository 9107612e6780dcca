/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_nops_irqon.h - its presence makes lib/alt-nops build
 * optimize_nops_inplace() as it was before commit 6778977590da:
 * interrupts on during the copy, and no sync_core() after it.
 */

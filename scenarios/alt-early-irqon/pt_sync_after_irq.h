/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_sync_after_irq.h - its presence makes lib/alt-early build
 * text_poke_early() as it was before commit 3ea1704a9296: interrupts back
 * on before sync_core().
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_ibt_on_while_sealing.h - its presence makes lib/ibt-seal patch with
 * IBT left on, as Linux did before commit ebebe30794d3 ("x86/ibt: Keep
 * IBT disabled during alternative patching").
 */

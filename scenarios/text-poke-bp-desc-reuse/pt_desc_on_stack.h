/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_desc_on_stack.h - its presence makes lib/tpb-desc build
 * text_poke_bp_batch() as it was before commit efd608fa7403: the
 * descriptor on the patcher's stack, found through the bp_desc pointer.
 */

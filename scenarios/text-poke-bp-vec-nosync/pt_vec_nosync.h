/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_vec_nosync.h - its presence makes lib/tpb-vec build
 * text_poke_bp_batch()'s end as it was before commit 285a54efe386:
 * bp_patching.vec and nr_entries cleared together, with no sync between.
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_fixup_nolock.h - its presence makes lib/sc-fixup build
 * __static_call_fixup() as it was before commit c27c753ea6fd:
 * text_poke_bp() on the module's trampoline without text_mutex.
 */

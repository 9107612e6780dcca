/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_key_fixup_rel.h - its presence makes lib/sc-tail build the module key
 * fixup as it was before commit 50bf8080a94d: the site's flags taken from,
 * and or-ed into, the relative key word.
 */

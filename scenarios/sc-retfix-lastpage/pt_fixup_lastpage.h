/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/sc-retfix/load.c, __static_call_fixup() without the page check of 54097309620e: it reads the three bytes after every return site. */

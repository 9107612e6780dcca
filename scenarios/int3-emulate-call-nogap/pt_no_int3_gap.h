/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_no_int3_gap.h - its presence makes base/entry.S build asm_exc_int3
 * without the call-emulation gap (create_gap=0), as Linux's int3 entry was
 * before commit 2700fefdb2d9 ("x86_64: Add gap to int3 to allow for call
 * emulation").
 */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_int3_trap_gate.h - its presence makes base/entry.S install #BP through
 * a trap gate, which leaves IF as the int3 found it: do_int3() can take an
 * interrupt, the patcher's sync IPI among them, before poke_int3_handler()
 * has looked at the patch state.
 */

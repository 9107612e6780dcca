/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Present: lib/int3-selftest's #BP handler emulates a call to
 * int3_magic_thunk, which keeps the caller-saved registers (the fix).
 */

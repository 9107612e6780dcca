/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/dyn-tramp-func/func.c, the direct write of the live call (before upstream 8a4d0a687a59). */
#define PT_DYN_TRAMP_DIRECT 1

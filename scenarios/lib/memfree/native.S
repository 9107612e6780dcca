/* SPDX-License-Identifier: GPL-2.0 */
/*
 * native.S - the freeing native services of docs/slice-abi.md, vfree() and
 * module_memfree(), as base/native.S defines the others: ud2 bodies the
 * emulator never runs (it performs the service at the symbol). A library
 * of their own so that a slice that does not free keeps the base's layout.
 */
#include "entry.h"

	.text

SYM_FUNC_START(vfree)			/* void vfree(const void *addr) */
	ud2
SYM_FUNC_END(vfree)

SYM_FUNC_START(module_memfree)		/* void module_memfree(void *addr) */
	ud2
SYM_FUNC_END(module_memfree)

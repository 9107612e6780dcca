/* SPDX-License-Identifier: GPL-2.0 */
/*
 * native.S - the native services of docs/slice-abi.md.
 *
 * The emulator performs each service when a CPU reaches its symbol, and
 * returns to the caller as "ret" would, so these bodies never run: ud2
 * makes sure that a machine that does not provide a service stops with a
 * #UD at the service's own address instead of running into the next one.
 * patchtrace build allows ud2 nowhere else.
 */
#include "entry.h"

#define NATIVE(name)		\
	SYM_FUNC_START(name)	\
	ud2;			\
	SYM_FUNC_END(name)

	.text

NATIVE(text_poke)		/* void *text_poke(void *addr, const void *src, size_t len) */
NATIVE(set_memory_ro)		/* int set_memory_ro(unsigned long addr, int numpages) */
NATIVE(set_memory_rw)
NATIVE(set_memory_x)
NATIVE(set_memory_nx)
NATIVE(module_alloc)		/* void *module_alloc(unsigned long size) */
NATIVE(pt_send_ipi)		/* void pt_send_ipi(long cpu, unsigned long vector) */
NATIVE(panic)			/* void panic(const char *msg) */
NATIVE(pt_bug)			/* void pt_bug(unsigned long id) */
NATIVE(pt_marker)		/* void pt_marker(unsigned long id, unsigned long value) */
NATIVE(pt_switch)		/* void pt_switch(unsigned long prev, unsigned long next) */
NATIVE(pt_cpu_done)		/* void pt_cpu_done(void) */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lib.S - memcpy and memset. gcc may call them for struct copies and
 * initializers even in freestanding code; rep movsb/stosb keep each call a
 * single instruction in the trace.
 */
#include "entry.h"

	.text

/* void *memcpy(void *dst, const void *src, size_t n) */
SYM_FUNC_START(memcpy)
	movq	%rdi, %rax
	movq	%rdx, %rcx
	rep movsb
	ret
SYM_FUNC_END(memcpy)

/* void *memset(void *dst, int c, size_t n) */
SYM_FUNC_START(memset)
	movq	%rdi, %r9
	movl	%esi, %eax
	movq	%rdx, %rcx
	rep stosb
	movq	%r9, %rax
	ret
SYM_FUNC_END(memset)

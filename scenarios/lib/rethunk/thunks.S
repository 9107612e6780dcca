/* SPDX-License-Identifier: GPL-2.0 */
/*
 * thunks.S - the return thunks apply_returns() chooses between.
 *
 * Built with -mfunction-return=thunk-extern, every return of the kernel
 * is a "jmp __x86_return_thunk"; apply_returns() rewrites each into a
 * plain "ret" or a jmp to the thunk the mitigation selected
 * (x86_return_thunk). AMD's SRSO mitigation selects srso_return_thunk:
 * a call to srso_safe_ret, which drops the return address that call
 * pushed and returns through the caller's own one. A thunk stands for a
 * RET, so it must leave every register but RIP and RSP as a RET does:
 * commit ba5ca5e5e6a1 ("x86/retpoline: Don't clobber RFLAGS during
 * srso_safe_ret()", Sean Christopherson, 2023) replaced the "add $8,%rsp"
 * that dropped the word with "lea 8(%rsp),%rsp", because the add changed
 * RFLAGS under code that returns its result in them (KVM's fastops). A
 * scenario that ships pt_srso_add.h builds the version before the fix.
 */
#include "entry.h"

	.text

/* The thunk as built: a return. */
SYM_FUNC_START(__x86_return_thunk)
	ret
	int3
SYM_FUNC_END(__x86_return_thunk)

SYM_FUNC_START(srso_return_thunk)
	call	srso_safe_ret
	int3				/* never reached (the kernel has ud2) */
SYM_FUNC_END(srso_return_thunk)

SYM_FUNC_START(srso_safe_ret)
#if __has_include("pt_srso_add.h")
	add	$8, %rsp		/* drop srso_return_thunk's return address */
#else
	lea	8(%rsp), %rsp		/* the same, flags untouched */
#endif
	ret
	int3
SYM_FUNC_END(srso_safe_ret)

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the probed function, the kprobe's instruction slot, and a
 * function with an int3 of another int3 user in it.
 */
#include "entry.h"

	.text

/*
 * u64 probed_fn(u64 x): x + 1. Its first instruction, the 3-byte
 * mov %rdi, %rax, is what the kprobe copies to the slot.
 */
SYM_FUNC_START(probed_fn)
	movq	%rdi, %rax
	addq	$1, %rax
	ret
SYM_FUNC_END(probed_fn)

/*
 * The instruction slot (get_insn_slot()): the patcher fills it with the
 * copy of the probed instruction followed by an int3, through text_poke(),
 * before arming. The CPU runs the copy and stops at the int3 after it: the
 * single step, without TF.
 */
SYM_FUNC_START(kprobe_insn_slot)
	.fill	16, 1, 0xcc
SYM_FUNC_END(kprobe_insn_slot)

/*
 * void other_int3_fn(void): an int3 that belongs to another int3 user (a
 * debugger's breakpoint, a die notifier's self-test): do_int3() offers it
 * to kprobes first, which must leave it alone, and then to its owner,
 * which lets the CPU go on after it.
 */
SYM_FUNC_START(other_int3_fn)
	.globl	other_int3_ip
other_int3_ip:
	int3
	ret
SYM_FUNC_END(other_int3_fn)

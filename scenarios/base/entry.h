/* SPDX-License-Identifier: GPL-2.0 */
/*
 * entry.h - constants shared by C and assembly, and the assembler macros
 * that build the vector table and the entry stubs.
 */
#ifndef PT_ENTRY_H
#define PT_ENTRY_H

/* Vectors, numbered as the SDM and arch/x86/include/asm/irq_vectors.h. */
#define X86_TRAP_NMI		2
#define X86_TRAP_BP		3
#define X86_TRAP_UD		6
#define X86_TRAP_DF		8
#define X86_TRAP_GP		13
#define X86_TRAP_PF		14
#define LOCAL_TIMER_VECTOR	0xec
#define CALL_FUNCTION_VECTOR	0xfb
#define RESCHEDULE_VECTOR	0xfd

/* struct pt_vector.type */
#define GATE_INTERRUPT		0	/* clears IF on delivery */
#define GATE_TRAP		1

/*
 * IST slots, as Linux assigns them (ESTACK_DF = 0, ESTACK_NMI = 1, and the
 * TSS field is the index + 1): #DF gets IST1 and NMI IST2. #BP is on the
 * interrupted stack, as it has been since the int3 call emulation work of
 * 2019, so that a handler can push onto that stack.
 */
#define IST_DF			1
#define IST_NMI			2
#define N_IST			8	/* cpu_tss_ist[0..7]; slot 0 unused */

#define IST_STACK_SIZE		8192
/*
 * Top of the NMI stack reserved for the hardware frame of a nested NMI
 * (5 words) and the two scratch registers its stub saves: the outer NMI
 * keeps its own frame below this.
 */
#define NMI_HEADER		64
/* Where the outermost NMI's pt_regs start: its frame copy, then 16 words. */
#define NMI_REGS		(NMI_HEADER + 5 * 8 + 16 * 8)

#define X86_EFLAGS_IF		0x200

#define INT3_INSN_SIZE		1
#define INT3_INSN_OPCODE	0xcc
#define CALL_INSN_SIZE		5
#define CALL_INSN_OPCODE	0xe8
#define JMP32_INSN_OPCODE	0xe9
#define MCOUNT_INSN_SIZE	5

/* struct pt_regs offsets (slice.h has the C struct and checks them). */
#define PT_R15			(0 * 8)
#define PT_RBX			(5 * 8)
#define PT_RAX			(10 * 8)
#define PT_RDI			(14 * 8)
#define PT_ORIG_RAX		(15 * 8)
#define PT_RIP			(16 * 8)
#define PT_CS			(17 * 8)
#define PT_EFLAGS		(18 * 8)
#define PT_RSP			(19 * 8)
#define PT_SS			(20 * 8)
#define PT_REGS_SIZE		(21 * 8)

/* struct task */
#define TASK_SP			0

#ifdef __ASSEMBLY__

#define SYM_FUNC_START(name)	\
	.globl name;		\
	.type name, @function;	\
	.balign 16;		\
	name:

#define SYM_FUNC_END(name)	\
	.size name, . - name

/*
 * One entry of .pt.vectors (docs/slice-abi.md):
 *	struct pt_vector { u8 vector; u8 type; u8 ist; u8 pad[5]; u64 handler; };
 */
.macro PT_VECTOR vec:req, handler:req, type=GATE_INTERRUPT, ist=0
	.pushsection .pt.vectors, "a"
	.balign 16
	.byte	\vec, \type, \ist
	.fill	5, 1, 0
	.quad	\handler
	.popsection
.endm

/*
 * Save the general registers below orig_ax so that %rsp is a struct
 * pt_regs. Pushed in the kernel's order: %rdi lands just under orig_ax,
 * %r15 at the bottom.
 */
.macro PUSH_REGS
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%rax
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
.endm

/* Restore them: %rsp is left on orig_ax. */
.macro POP_REGS
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rax
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
.endm

/* Restore them and drop orig_ax: %rsp is left on the IRETQ frame. */
.macro POP_REGS_AND_ORIG_AX
	POP_REGS
	addq	$8, %rsp
.endm

/*
 * What an fentry handler (ftrace_caller's part in Linux's
 * arch/x86/kernel/ftrace_64.S, save_mcount_regs/restore_mcount_regs) keeps
 * around its C part: it runs before the traced function's prologue, so that
 * function's arguments are still live in the argument registers, and %rax
 * (which a varargs caller uses). 7 words.
 */
.macro SAVE_MCOUNT_REGS
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
.endm

.macro RESTORE_MCOUNT_REGS
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
.endm

/*
 * Right after SAVE_MCOUNT_REGS: the C part's arguments. 7*8(%rsp) is the
 * handler's return address, site + 5 (pushed by the site's CALL or by
 * int3_emulate_call()), 8*8(%rsp) the traced function's own return address.
 */
.macro MCOUNT_ARGS
	movq	7*8(%rsp), %rdi			/* ip: the site... */
	subq	$MCOUNT_INSN_SIZE, %rdi		/* ...not the return address */
	movq	8*8(%rsp), %rsi			/* parent_ip */
.endm

/* An fentry handler: cfunc(ip, parent_ip) with the arguments kept. */
.macro FENTRY_HANDLER name:req, cfunc:req
SYM_FUNC_START(\name)
	SAVE_MCOUNT_REGS
	MCOUNT_ARGS
	call	\cfunc
	RESTORE_MCOUNT_REGS
	ret
SYM_FUNC_END(\name)
.endm

/*
 * An exception entry: build pt_regs, call handler(regs, error_code),
 * return with IRETQ. With create_gap=1 the hardware frame is copied six
 * words down first (as Linux's int3 entry did from 5.2 to 5.7): the
 * original copy becomes dead space between the frame IRETQ will use and the
 * interrupted stack, so int3_emulate_push() can write below regs->sp
 * without hitting the frame.
 */
.macro IDTENTRY name:req, handler:req, has_error_code=0, create_gap=0
SYM_FUNC_START(\name); ENDBR
	.if \has_error_code == 0
	pushq	$-1			/* orig_ax: no error code */
	.endif
	.if \create_gap == 1
	.rept 6				/* orig_ax, ip, cs, flags, sp, ss */
	pushq	5*8(%rsp)
	.endr
	.endif
	PUSH_REGS
	movq	%rsp, %rdi
	movq	PT_ORIG_RAX(%rsp), %rsi
	call	\handler
	POP_REGS_AND_ORIG_AX
	iretq
SYM_FUNC_END(\name)
.endm

/*
 * A maskable interrupt entry. orig_ax holds ~vector as in Linux. On the way
 * out irqentry_exit() may schedule another task (kernel preemption); this
 * task's state stays in this frame on its own stack until it runs again.
 */
.macro IRQENTRY name:req, vector:req, handler:req
SYM_FUNC_START(\name); ENDBR
	pushq	$~\vector
	PUSH_REGS
	movq	%rsp, %rdi
	call	\handler
	movq	%rsp, %rdi
	call	irqentry_exit
	POP_REGS_AND_ORIG_AX
	iretq
SYM_FUNC_END(\name)
.endm

/*
 * ENDBR (an assembler macro, defined down here so that the lines above,
 * and the line tables of every slice, stay where they were): an IBT
 * kernel (quirks.ibt: built with -fcf-protection=branch, which defines
 * __CET__) starts every entry stub with ENDBR64, as Linux's IDT entries
 * do, since delivery through the vector table is an indirect branch.
 * Otherwise it is nothing.
 */
.macro ENDBR
#ifdef __CET__
	endbr64
#endif
.endm

#endif /* __ASSEMBLY__ */
#endif /* PT_ENTRY_H */

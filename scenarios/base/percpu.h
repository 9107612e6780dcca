/* SPDX-License-Identifier: GPL-2.0 */
/*
 * percpu.h - per-CPU variables, x86-64 style.
 *
 * DEFINE_PER_CPU puts a variable in .data..percpu, which the linker script
 * links at address 0. Each CPU's GS base points at its own copy of that
 * section, so the variable's symbol value is its offset and every access is
 * a single %gs:sym instruction. The accessors pass &var as an "i" operand and
 * print it with %c, giving an absolute %gs:disp32 operand, never a
 * RIP-relative one (which would add the instruction's address).
 *
 * A single instruction is atomic with respect to interrupts and NMIs on the
 * same CPU, which is all per-CPU data needs: this_cpu_inc() is one
 * "incq %gs:var" and takes no lock prefix.
 *
 * Every accessor is also a compiler barrier, so per-CPU accesses keep their
 * program order relative to ordinary memory accesses (the trace shows them
 * in the order the C reads).
 */
#ifndef PT_PERCPU_H
#define PT_PERCPU_H

#define __percpu_section	__attribute__((section(".data..percpu")))

#define DEFINE_PER_CPU(type, name)	__percpu_section __typeof__(type) name
#define DECLARE_PER_CPU(type, name)	extern __percpu_section __typeof__(type) name

/* Unsupported sizes fail at link time. */
extern void __bad_percpu_size(void);

#define this_cpu_read(var)						\
({									\
	__typeof__(var) __ret;						\
	switch (sizeof(var)) {						\
	case 1: {							\
		unsigned char __v;					\
		asm volatile("movb %%gs:%c1, %0"			\
			     : "=q"(__v) : "i"(&(var)) : "memory");	\
		__ret = (__typeof__(var))(unsigned long)__v;		\
		break;							\
	}								\
	case 2: {							\
		unsigned short __v;					\
		asm volatile("movw %%gs:%c1, %0"			\
			     : "=r"(__v) : "i"(&(var)) : "memory");	\
		__ret = (__typeof__(var))(unsigned long)__v;		\
		break;							\
	}								\
	case 4: {							\
		unsigned int __v;					\
		asm volatile("movl %%gs:%c1, %0"			\
			     : "=r"(__v) : "i"(&(var)) : "memory");	\
		__ret = (__typeof__(var))(unsigned long)__v;		\
		break;							\
	}								\
	case 8: {							\
		unsigned long __v;					\
		asm volatile("movq %%gs:%c1, %0"			\
			     : "=r"(__v) : "i"(&(var)) : "memory");	\
		__ret = (__typeof__(var))__v;				\
		break;							\
	}								\
	default:							\
		__bad_percpu_size();					\
		__ret = (__typeof__(var))0;				\
	}								\
	__ret;								\
})

/*
 * this_cpu_<op>(var, val) for a two-operand instruction "op val, %gs:var".
 * 64-bit immediates must fit a sign-extended 32 bits ("e"), as in the
 * instruction encoding.
 */
#define __this_cpu_op2(insn, var, val)					\
do {									\
	switch (sizeof(var)) {						\
	case 1:								\
		asm volatile(insn "b %1, %%gs:%c0"			\
			     :: "i"(&(var)),				\
				"qi"((unsigned char)(unsigned long)(val)) \
			     : "memory", "cc");				\
		break;							\
	case 2:								\
		asm volatile(insn "w %1, %%gs:%c0"			\
			     :: "i"(&(var)),				\
				"ri"((unsigned short)(unsigned long)(val)) \
			     : "memory", "cc");				\
		break;							\
	case 4:								\
		asm volatile(insn "l %1, %%gs:%c0"			\
			     :: "i"(&(var)),				\
				"ri"((unsigned int)(unsigned long)(val)) \
			     : "memory", "cc");				\
		break;							\
	case 8:								\
		asm volatile(insn "q %1, %%gs:%c0"			\
			     :: "i"(&(var)),				\
				"re"((unsigned long)(val))		\
			     : "memory", "cc");				\
		break;							\
	default:							\
		__bad_percpu_size();					\
	}								\
} while (0)

/* this_cpu_<op>(var) for a one-operand instruction "op %gs:var". */
#define __this_cpu_op1(insn, var)					\
do {									\
	switch (sizeof(var)) {						\
	case 1:								\
		asm volatile(insn "b %%gs:%c0" :: "i"(&(var)) : "memory", "cc"); \
		break;							\
	case 2:								\
		asm volatile(insn "w %%gs:%c0" :: "i"(&(var)) : "memory", "cc"); \
		break;							\
	case 4:								\
		asm volatile(insn "l %%gs:%c0" :: "i"(&(var)) : "memory", "cc"); \
		break;							\
	case 8:								\
		asm volatile(insn "q %%gs:%c0" :: "i"(&(var)) : "memory", "cc"); \
		break;							\
	default:							\
		__bad_percpu_size();					\
	}								\
} while (0)

#define this_cpu_write(var, val)	__this_cpu_op2("mov", var, val)
#define this_cpu_add(var, val)		__this_cpu_op2("add", var, val)
#define this_cpu_sub(var, val)		__this_cpu_op2("sub", var, val)
#define this_cpu_inc(var)		__this_cpu_op1("inc", var)
#define this_cpu_dec(var)		__this_cpu_op1("dec", var)

/* Per-CPU variables the base defines. */
DECLARE_PER_CPU(unsigned long, cpu_number);
DECLARE_PER_CPU(unsigned long, cpu_tss_ist[8]);
DECLARE_PER_CPU(void *, current_task);
DECLARE_PER_CPU(int, preempt_count);
DECLARE_PER_CPU(unsigned long, need_resched);
DECLARE_PER_CPU(unsigned long, nmi_state);
DECLARE_PER_CPU(unsigned long, nmi_stack_top);
DECLARE_PER_CPU(unsigned long, nmi_count);
DECLARE_PER_CPU(unsigned long, timer_ticks);

/*
 * Another CPU's copy (docs/slice-abi.md, Memory layout): CPU n's per-CPU
 * area is at PT_PERCPU_BASE + n * per_cpu_stride(), the stride being the
 * per-CPU section rounded up to 4 KiB plus a guard page (the machine's
 * layout, slice.PercpuStride in Go; the linker script's __per_cpu_end is
 * the section's size). per_cpu(var, cpu) is an lvalue, like Linux's:
 *
 *	per_cpu(pcpu_peer, (cpu + 1) % pt_ncpus) = cpu;
 *
 * An access through it is an ordinary load or store of that CPU's memory,
 * not one %gs: instruction: it is not atomic against the other CPU (use
 * the atomics of slice.h for that). this_cpu_ptr(&var) is the running
 * CPU's copy as a pointer (from this_cpu_off, which the machine fills).
 */
#define PT_PERCPU_BASE		0xffff888000000000UL
#define PT_PAGE_SIZE		4096UL

#define per_cpu_stride()						\
({									\
	extern char __per_cpu_end[];	/* slice.lds: the section's size */ \
	(((unsigned long)__per_cpu_end + PT_PAGE_SIZE - 1) &		\
	 ~(PT_PAGE_SIZE - 1)) + PT_PAGE_SIZE;				\
})

#define per_cpu_ptr(ptr, cpu)						\
	((__typeof__(ptr))(PT_PERCPU_BASE +				\
			   (unsigned long)(cpu) * per_cpu_stride() +	\
			   (unsigned long)(ptr)))

#define per_cpu(var, cpu)	(*per_cpu_ptr(&(var), cpu))

#define this_cpu_ptr(ptr)						\
({									\
	extern unsigned long this_cpu_off;	/* per-CPU, sched.c */	\
	(__typeof__(ptr))(this_cpu_read(this_cpu_off) + (unsigned long)(ptr)); \
})

#endif /* PT_PERCPU_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * slice.h - what every kernel slice's C code sees: types, barriers, IRQ
 * flag helpers, struct pt_regs, the native services of docs/slice-abi.md,
 * the little scheduler and the patching API.
 *
 * Slices are built -nostdinc, so nothing here comes from libc.
 */
#ifndef PT_SLICE_H
#define PT_SLICE_H

#include "entry.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long s64;
typedef unsigned long size_t;
typedef _Bool bool;

#define true	1
#define false	0
#define NULL	((void *)0)

#define NR_CPUS		64	/* the machine has 1..64 CPUs */
#define PT_MAX_TASKS	128	/* boot tasks over all CPUs */
#define TASKS_PER_CPU	8	/* boot tasks on one CPU */
#define THREAD_SIZE	16384	/* a task's stack */

#define __noreturn	__attribute__((noreturn))
#define __weak		__attribute__((weak))
#define __aligned(x)	__attribute__((aligned(x)))
#define __used		__attribute__((used))
/* Never an fentry site, even in a file built with -pg. */
#define notrace		__attribute__((no_instrument_function))
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define offsetof(t, m)	__builtin_offsetof(t, m)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/*
 * x86 is TSO: smp_wmb()/smp_rmb() only have to stop the compiler, exactly
 * as in the kernel. The machine may model weaker fetch (stale decodes), never
 * weaker data ordering.
 */
#define barrier()	asm volatile("" ::: "memory")
#define smp_wmb()	barrier()
#define smp_rmb()	barrier()
#define smp_mb()	asm volatile("lock addl $0, -4(%%rsp)" ::: "memory", "cc")

#define READ_ONCE(x)	(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) do { *(volatile __typeof__(x) *)&(x) = (v); } while (0)

static inline void atomic_long_inc(unsigned long *p)
{
	asm volatile("lock incq %0" : "+m"(*p) :: "memory", "cc");
}

/* XCHG with memory is locked without a prefix. */
static inline unsigned long xchg(unsigned long *p, unsigned long v)
{
	asm volatile("xchgq %0, %1" : "+r"(v), "+m"(*p) :: "memory");
	return v;
}

static inline void cpu_relax(void)
{
	asm volatile("pause" ::: "memory");
}

/*
 * CPUID is architecturally serializing: after it this CPU refetches and
 * redecodes everything, which is what the machine's "stale" fetch quirk
 * keys on. (Linux has since moved to IRET-to-self and SERIALIZE; CPUID is
 * what sync_core() was when text_poke_bp() was written.)
 */
static inline void sync_core(void)
{
	unsigned int eax = 1, ecx = 0;

	asm volatile("cpuid"
		     : "+a"(eax), "+c"(ecx)
		     :
		     : "ebx", "edx", "memory");
}

static inline void local_irq_disable(void)
{
	asm volatile("cli" ::: "memory");
}

static inline void local_irq_enable(void)
{
	asm volatile("sti" ::: "memory");
}

static inline unsigned long local_save_flags(void)
{
	unsigned long flags;

	asm volatile("pushfq; popq %0" : "=r"(flags) :: "memory");
	return flags;
}

static inline unsigned long local_irq_save(void)
{
	unsigned long flags = local_save_flags();

	local_irq_disable();
	return flags;
}

static inline void local_irq_restore(unsigned long flags)
{
	asm volatile("pushq %0; popfq" :: "g"(flags) : "memory", "cc");
}

static inline bool irqs_disabled(void)
{
	return !(local_save_flags() & X86_EFLAGS_IF);
}

/*
 * STI's one-instruction shadow covers the HLT, so an interrupt that became
 * pending after the caller's last check still wakes the HLT instead of
 * being taken before it and lost.
 */
static inline void safe_halt(void)
{
	asm volatile("sti; hlt" ::: "memory");
}

/*
 * The register frame every entry stub builds (the kernel's x86-64 layout):
 * general registers pushed by software, then orig_ax (error code, ~vector
 * for IRQs, -1 otherwise), then the hardware's IRETQ frame.
 */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx;
	unsigned long r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax;
	unsigned long ip, cs, flags, sp, ss;
};

_Static_assert(offsetof(struct pt_regs, orig_ax) == PT_ORIG_RAX, "pt_regs");
_Static_assert(offsetof(struct pt_regs, ip) == PT_RIP, "pt_regs");
_Static_assert(offsetof(struct pt_regs, sp) == PT_RSP, "pt_regs");
_Static_assert(sizeof(struct pt_regs) == PT_REGS_SIZE, "pt_regs");

/*
 * The int3_emulate_* helpers act on the interrupted context. They rely on
 * the gap asm_exc_int3 leaves between its frame and the interrupted stack
 * (see entry.S): without it, a push would land on the live IRETQ frame.
 */
static inline void int3_emulate_jmp(struct pt_regs *regs, unsigned long ip)
{
	regs->ip = ip;
}

static inline void int3_emulate_push(struct pt_regs *regs, unsigned long val)
{
	regs->sp -= sizeof(unsigned long);
	*(unsigned long *)regs->sp = val;
}

static inline void int3_emulate_call(struct pt_regs *regs, unsigned long func)
{
	/* regs->ip is past the int3: the call was 5 bytes at ip - 1. */
	int3_emulate_push(regs, regs->ip - 1 + CALL_INSN_SIZE);
	int3_emulate_jmp(regs, func);
}

/* Native services (docs/slice-abi.md): the emulator runs these. */
void *text_poke(void *addr, const void *src, size_t len);
int set_memory_ro(unsigned long addr, int numpages);
int set_memory_rw(unsigned long addr, int numpages);
int set_memory_x(unsigned long addr, int numpages);
int set_memory_nx(unsigned long addr, int numpages);
void *module_alloc(unsigned long size);
void pt_send_ipi(long cpu, unsigned long vector);
__noreturn void panic(const char *msg);
__noreturn void pt_bug(unsigned long id);
void pt_marker(unsigned long id, unsigned long value);
void pt_switch(unsigned long prev, unsigned long next);
void pt_cpu_done(void);

#define IPI_ALL_BUT_SELF	(-1L)
#define IPI_ALL			(-2L)

/* lib.S: gcc may emit calls to these even with -ffreestanding. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

/* Filled in by the emulator before the first instruction (slice ABI). */
struct pt_boot_task {
	u64 id;		/* 1.., 0 is each CPU's idle context */
	u64 cpu;
	u64 entry;	/* void entry(unsigned long arg) */
	u64 arg;
};

extern u64 pt_ncpus;
extern u64 pt_boot_ntasks;
extern struct pt_boot_task pt_boot_tasks[PT_MAX_TASKS];

/* sched.c */
enum task_state { TASK_RUNNING = 0, TASK_DEAD = 1 };

struct task {
	unsigned long sp;	/* saved RSP while switched out: switch_to knows offset 0 */
	unsigned long id;
	enum task_state state;
	int cpu;
};

_Static_assert(offsetof(struct task, sp) == TASK_SP, "task");

void schedule(void);
void preempt_schedule_irq(void);
__noreturn void task_exit(void);
void preempt_disable(void);
void preempt_enable(void);
unsigned long smp_processor_id(void);
struct task *get_current(void);
#define current get_current()

/* Marker ids the base uses; scenarios use small ids of their own. */
#define MARKER_OOPS_IP		0xffff	/* value: regs->ip of the oops */

/* traps.c: a scenario overrides these by defining them. */
int int3_hook(struct pt_regs *regs);	/* return 1 if it handled the trap */
void nmi_hook(struct pt_regs *regs);
void timer_hook(struct pt_regs *regs);
bool in_nmi(void);
__noreturn void die(const char *msg, struct pt_regs *regs);

/* alternative.c */
void sync_core_all(void);
void *text_poke_bp(void *addr, const void *opcode, size_t len, void *handler);
int poke_int3_handler(struct pt_regs *regs);

/*
 * Native services a slice links from the memfree library (uses =
 * ["memfree"], docs/slice-abi.md): unmap the module_alloc() allocation at
 * addr; a later access faults. Declared here, defined there, so that the
 * base's own layout does not depend on them.
 */
void vfree(const void *addr);
void module_memfree(void *addr);

#endif /* PT_SLICE_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * fastop.c - apply_returns() sending every return through the return
 * thunk the mitigation selected, and code that relies on a RET keeping
 * RFLAGS: commit ba5ca5e5e6a1 ("x86/retpoline: Don't clobber RFLAGS during
 * srso_safe_ret()", Sean Christopherson, 2023).
 *
 * Compiled with -mfunction-return=thunk-extern, each return is a
 * "jmp __x86_return_thunk", and .return_sites lists them. At boot
 * apply_returns() rewrites each, with interrupts off and before the other
 * CPUs run it: into a jmp to x86_return_thunk when the CPU needs a thunk
 * (X86_FEATURE_RETHUNK; srso_return_thunk under AMD's SRSO mitigation),
 * else into "ret; int3". A thunk that changes RFLAGS is harmless under a
 * C return (the ABI keeps no flags across it) and wrong under code that
 * returns its result in them: KVM's fastops, called from an asm
 * statement that loads RFLAGS, calls the fastop and reads RFLAGS back.
 * The SRSO thunk's "add $8,%rsp" turned every emulated ALU instruction's
 * flags into those of that add (the guest saw wrong flags; the fix uses
 * lea). Call depth tracking's return thunk (a sarq on the per-CPU depth)
 * had the same flaw, which KVM later met by not returning from fastops
 * with RET at all.
 *
 * CPU 0 boots: it selects srso_return_thunk, applies the returns of the
 * three fastops (text_poke() stands for text_poke_early()'s memcpy,
 * which the machine's read-only text does not allow), serializes, and
 * lets CPU 1 go (a CPU brought up after alternatives are applied; its
 * bring-up serializes). Both then emulate `rounds` ALU instructions each
 * through the fastops, and the timer handler emulates one more per tick
 * once its CPU is ready, so a fastop's return also runs with interrupts
 * nested in the thunk. The contract declares each fastop's return a
 * return that keeps %rax and RFLAGS (contract.asm_sites, returns = true).
 *
 * Markers: 1 = the returns are applied (value: how many).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_RETURNS		1
#define X86_EFLAGS_ARITH	0x8d5	/* CF PF AF ZF SF OF */

/* [params], written by the machine before boot. */
u64 rounds = 400;

DEFINE_PER_CPU(u64, fastops);		/* ALU instructions emulated */
DEFINE_PER_CPU(u64, carries);		/* of them, results with CF set */
DEFINE_PER_CPU(u64, tick_fastops);	/* emulated in the timer handler */
DEFINE_PER_CPU(u64, result_sum);
DEFINE_PER_CPU(u64, ready);		/* this CPU may run the fastops */

void fop_add(void);			/* fastop.S */
void fop_sub(void);
void fop_xor(void);
extern s32 return_sites[], return_sites_end[];
extern u8 __x86_return_thunk[], srso_return_thunk[];	/* thunks.S */

static void (*const fastop_table[3])(void) = { fop_add, fop_sub, fop_xor };

/* The thunk the mitigation selected (srso_select_mitigation()). */
static u8 *x86_return_thunk = __x86_return_thunk;
static u64 returns_applied;

static s32 get_s32(const u8 *p)
{
	return (s32)((u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24);
}

static void put_s32(u8 *p, s32 v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
	p[2] = (u8)(v >> 16);
	p[3] = (u8)(v >> 24);
}

/* Rewrite one return site; the bytes it replaces must be the jmp as built. */
static int patch_return(u8 *addr)
{
	u8 insn[5];
	int i = 0;

	if (addr[0] != 0xe9 || addr + 5 + get_s32(addr + 1) != __x86_return_thunk)
		return 0;		/* not a return: leave it */
	if (x86_return_thunk != __x86_return_thunk) {
		insn[i++] = 0xe9;	/* jmp x86_return_thunk */
		put_s32(insn + 1, (s32)(x86_return_thunk - (addr + 5)));
		i = 5;
	} else {
		insn[i++] = 0xc3;	/* ret */
	}
	while (i < 5)
		insn[i++] = 0xcc;	/* int3 */
	text_poke(addr, insn, 5);
	return 1;
}

static u64 apply_returns(s32 *start, s32 *end)
{
	u64 n = 0;
	s32 *s;

	for (s = start; s < end; s++)
		n += patch_return((u8 *)s + *s);
	return n;
}

/*
 * Emulate one ALU instruction: load the guest's arithmetic flags, call the
 * fastop, read RFLAGS back (KVM's fastop()). The asm tells the compiler
 * nothing of a call's clobbers beyond %rax: the fastop touches no other
 * register, and its RET keeps the flags it computed.
 */
static u64 emulate(u64 op, u64 *dst, u64 src)
{
	void (*fop)(void) = fastop_table[op % 3];
	unsigned long flags = local_save_flags();

	flags = (flags & X86_EFLAGS_IF) | 0x2 | (*dst & X86_EFLAGS_ARITH);
	asm volatile("pushq %[flags]; popfq; call *%[fop]; pushfq; popq %[flags]"
		     : "+a"(*dst), [flags] "+r"(flags)
		     : "d"(src), [fop] "r"(fop)
		     : "memory", "cc");
	this_cpu_inc(fastops);
	if (flags & 0x1)
		this_cpu_inc(carries);
	return flags;
}

static void run_fastops(u64 n, u64 seed)
{
	u64 dst = seed, sum = 0;
	u64 i;

	for (i = 0; i < n; i++) {
		u64 src = (i + 1) * 0x9e3779b97f4a7c15ul;

		sum += emulate(i, &dst, src) & X86_EFLAGS_ARITH;
		sum += dst;
	}
	this_cpu_add(result_sum, sum);
}

void timer_hook(struct pt_regs *regs)
{
	u64 dst = 0x8000000000000000ul;

	if (!this_cpu_read(ready))
		return;
	emulate(this_cpu_read(tick_fastops), &dst, 0x8000000000000001ul);
	this_cpu_inc(tick_fastops);
}

void boot_main(unsigned long arg)
{
	unsigned long flags;
	u64 n;

	x86_return_thunk = srso_return_thunk;	/* the CPU needs SRSO */
	flags = local_irq_save();
	n = apply_returns(return_sites, return_sites_end);
	sync_core();
	local_irq_restore(flags);
	pt_marker(MARKER_RETURNS, n);
	this_cpu_write(ready, 1);
	WRITE_ONCE(returns_applied, 1);

	run_fastops(READ_ONCE(rounds), 1);
}

void caller_main(unsigned long arg)
{
	while (!READ_ONCE(returns_applied))
		cpu_relax();
	sync_core();		/* as a CPU brought up after alternatives */
	this_cpu_write(ready, 1);
	run_fastops(READ_ONCE(rounds), arg);
}

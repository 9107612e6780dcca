// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe registered on a function's symbol, offset 0, in a
 * kernel built for IBT (CONFIG_X86_KERNEL_IBT).
 *
 * probed_fn starts with ENDBR64; its callers reach it only through a
 * function pointer. CPU 0 resolves the kprobe's address from the symbol
 * and offset 0, copies the instruction there into the instruction slot,
 * then arms and disarms the probe (an int3 over that instruction's first
 * byte, then a sync) for a number of rounds while CPUs 1 and 2 call
 * probed_fn through the pointer. A CPU that hits the int3 runs the
 * pre-handler (a count), returns from #BP to the copy with TF set, and
 * the single-step #DB after it sends it back behind the original
 * instruction and runs the post-handler (a count).
 *
 * Resolving the address is where IBT matters. Linux commit cc66bb914578
 * ("x86/ibt,kprobes: Cure sym+0 equals fentry woes") made
 * arch_adjust_kprobe_addr() map sym+0 past the ENDBR64 to sym+4, the
 * function's first real instruction. Without it (pt_kprobe_sym0.h) the
 * probe lands on the ENDBR64 itself: the int3 replaces the landing pad,
 * so an indirect call arrives at 0xCC instead of ENDBR64 and the CPU
 * raises #CP (missing ENDBRANCH) before the int3 could trap (SDM Vol. 3
 * Table 6-2: a fault of fetching the target, ahead of the instruction's
 * own). Without IBT the same probe works: ENDBR64 is a NOP, copied and
 * single-stepped like any other.
 *
 * Markers: 1 = the slot is filled (value: the probe's offset in
 * probed_fn), 2 = armed (value: the round), 3 = disarmed (value: the
 * round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_SLOT		1
#define MARKER_ARMED		2
#define MARKER_DISARMED		3

#define X86_EFLAGS_TF		0x100UL
#define DR6_BS			(1UL << 14)
#define ENDBR_INSN_SIZE		4

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 200;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_posts);	/* post-handler runs */
DEFINE_PER_CPU(u64, kprobe_ss);		/* 1: single-stepping the copy */
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */
extern u8 kprobe_insn_slot[];		/* probe.S */

/* The ops table the callers go through: every call is indirect. */
u64 (*volatile probed_op)(u64) = probed_fn;

/* The probe, as register_kprobe() leaves it. */
static u8 *kp_addr;
static unsigned long kp_len;

static unsigned long read_dr6(void)
{
	unsigned long v;

	asm volatile("mov %%dr6, %0" : "=r"(v));
	return v;
}

static void write_dr6(unsigned long v)
{
	asm volatile("mov %0, %%dr6" : : "r"(v));
}

static int is_endbr(const u8 *p)
{
	return p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa;
}

/*
 * _kprobe_addr(): symbol + offset -> the probed address, and the length of
 * the instruction there (the decoder's job in Linux; this slice knows its
 * two candidates).
 */
static u8 *kprobe_addr(void *sym, unsigned long offset, unsigned long *len)
{
	u8 *addr = sym;

#if !__has_include("pt_kprobe_sym0.h")
	/* arch_adjust_kprobe_addr(): sym+0 on ENDBR64 means sym+4 */
	if (is_endbr(addr) && (offset == 0 || offset == ENDBR_INSN_SIZE))
		offset = ENDBR_INSN_SIZE;
#endif
	addr += offset;
	*len = is_endbr(addr) ? ENDBR_INSN_SIZE : 1;
	return addr;
}

/* do_int3() -> int3_hook(): kprobe_int3_handler(). */
int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)READ_ONCE(kp_addr))
		return 0;
	this_cpu_inc(kprobe_hits);
	/* setup_singlestep() */
	this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
	this_cpu_write(kprobe_ss, 1);
	regs->flags |= X86_EFLAGS_TF;
	regs->flags &= ~X86_EFLAGS_IF;
	regs->ip = (unsigned long)kprobe_insn_slot;
	return 1;
}

/* #DB (probe.S): kprobe_debug_handler() and resume_execution(). */
void do_debug(struct pt_regs *regs, unsigned long error_code)
{
	unsigned long dr6 = read_dr6();

	write_dr6(0);
	if (!(dr6 & DR6_BS) || !this_cpu_read(kprobe_ss))
		die("unexpected #DB", regs);
	regs->ip = (unsigned long)kp_addr + (regs->ip - (unsigned long)kprobe_insn_slot);
	regs->flags &= ~X86_EFLAGS_TF;
	regs->flags |= this_cpu_read(kprobe_saved_if);
	this_cpu_write(kprobe_ss, 0);
	this_cpu_inc(kprobe_posts);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 int3 = INT3_INSN_OPCODE;
	u8 orig;
	u64 round;
	unsigned long len;
	u8 *addr = kprobe_addr(probed_fn, 0, &len);

	orig = *(volatile u8 *)addr;
	text_poke(kprobe_insn_slot, addr, len);	/* arch_prepare_kprobe() */
	sync_core_all();
	kp_len = len;
	WRITE_ONCE(kp_addr, addr);
	pt_marker(MARKER_SLOT, addr - (u8 *)probed_fn);

	for (round = 0; round < READ_ONCE(rounds); round++) {
		/* arm_kprobe() / disarm_kprobe(): one byte, then sync */
		text_poke(addr, &int3, 1);
		sync_core_all();
		pt_marker(MARKER_ARMED, round);
		spin(READ_ONCE(dwell));
		text_poke(addr, &orig, 1);
		sync_core_all();
		pt_marker(MARKER_DISARMED, round);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += probed_op(n);
	this_cpu_write(caller_sum, sum);
}

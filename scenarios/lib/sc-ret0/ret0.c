// SPDX-License-Identifier: GPL-2.0
/*
 * ret0.c - static_call_update() between a function and
 * __static_call_return0, whose call the site does not make at all: the
 * five bytes of the call are replaced by an instruction that clears RAX
 * in place, and commit 1cd5f059d956 ("x86,static_call: Fix
 * __static_call_return0 for i386", Peter Zijlstra, 2022).
 *
 * The replacement must be one instruction. The first one, 66 66 48 31
 * c0 (data16 data16 xorq %rax,%rax), is one on x86-64, but i386 decodes
 * it as two, "data16 data16 dec %ax" and "xorl %eax,%eax" ("Paolo
 * reported..."): a task interrupted between them resumes at the xor's
 * address, and when static_call_update() has meanwhile written the call
 * back over the five bytes, that address lies inside the call, whose
 * displacement bytes the task then runs as code. text_poke_bp()'s int3
 * guards the first byte of a site only; a site must stay one
 * instruction. The fix is "cs cs cs xorl %eax,%eax", one instruction on
 * both. The 64-bit machine runs the same two instructions, 66 ff c8 (dec
 * %ax) and 31 c0, where i386 saw them. A scenario that ships
 * pt_ret0_two_insns.h builds the version before the fix.
 *
 * CPU 0 switches the site between sc_func_a and __static_call_return0
 * `rounds` times with text_poke_bp()'s three steps (an int3 handler
 * that emulates the call to the new target, as static_call's emulate
 * does), pausing `dwell` loops between; two tasks on each of CPUs 1 and
 * 2 call sc_caller() all along, so the timer preempts them anywhere,
 * between the two instructions too.
 *
 * Markers: 1 = the site is a call (value: round), 2 = the site clears
 * RAX in place (value: round).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_ret0_two_insns.h")
#define RET0_TWO_INSNS	1
#else
#define RET0_TWO_INSNS	0
#endif

#define MARKER_CALL	1
#define MARKER_RET0	2

/* [params], written by the machine before boot. */
u64 rounds = 40;
u64 dwell = 300;

DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, caller_sum);
DEFINE_PER_CPU(u64, ret0_calls);

u64 sc_caller(u64 x);			/* site.S */
u64 sc_func_a(u64 x);
u64 __static_call_return0(void);
extern u8 sc_site[];

#if RET0_TWO_INSNS
/* Before 1cd5f059d956: two instructions where i386 decodes them. */
static const u8 xor5rax[5] = { 0x66, 0xff, 0xc8, 0x31, 0xc0 };	/* dec %ax; xorl %eax,%eax */
#else
static const u8 xor5rax[5] = { 0x2e, 0x2e, 0x2e, 0x31, 0xc0 };	/* cs cs cs xorl %eax,%eax */
#endif

/* The site being patched and the function a CPU that hits its int3 calls. */
static u8 *poke_addr;
static void *poke_func;
static unsigned long poking;

int int3_hook(struct pt_regs *regs)
{
	smp_rmb();
	if (!READ_ONCE(poking) || regs->ip - INT3_INSN_SIZE != (unsigned long)READ_ONCE(poke_addr))
		return 0;
	int3_emulate_call(regs, (unsigned long)READ_ONCE(poke_func));
	this_cpu_inc(poke_hits);
	return 1;
}

/* __static_call_transform() of a call site, through text_poke_bp()'s steps. */
static void static_call_update(void *func)
{
	static const u8 int3 = INT3_INSN_OPCODE;
	u8 insn[5];
	int rel;

	if (func == (void *)__static_call_return0) {
		memcpy(insn, xor5rax, sizeof(insn));
	} else {
		rel = (int)((u8 *)func - (sc_site + CALL_INSN_SIZE));
		insn[0] = CALL_INSN_OPCODE;
		memcpy(&insn[1], &rel, sizeof(rel));
	}
	WRITE_ONCE(poke_func, func);	/* emulate: a call to the new target */
	WRITE_ONCE(poke_addr, sc_site);
	smp_wmb();
	WRITE_ONCE(poking, 1);
	text_poke(sc_site, &int3, INT3_INSN_SIZE);
	sync_core_all();
	text_poke(sc_site + 1, insn + 1, sizeof(insn) - 1);
	sync_core_all();
	text_poke(sc_site, insn, 1);
	sync_core_all();
	WRITE_ONCE(poking, 0);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

static unsigned long patcher_done;

void patcher_main(unsigned long arg)
{
	u64 r;

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));
		static_call_update((void *)__static_call_return0);
		pt_marker(MARKER_RET0, r);
		spin(READ_ONCE(dwell));
		static_call_update((void *)sc_func_a);
		pt_marker(MARKER_CALL, r);
	}
	WRITE_ONCE(patcher_done, 1);
}

void caller_main(unsigned long arg)
{
	u64 x = arg, sum = 0;

	while (!READ_ONCE(patcher_done)) {
		u64 v = sc_caller(x++);

		if (v == 1)
			this_cpu_inc(ret0_calls);
		sum += v;
	}
	this_cpu_add(caller_sum, sum);
}

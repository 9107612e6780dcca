// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - int3 call emulation without the entry-code gap.
 *
 * int3-emulate-call with one change: asm_exc_int3 is built without the gap
 * (pt_no_int3_gap.h; base/entry.S), as Linux's int3 entry was when
 * int3_emulate_call() was first proposed, before commit 2700fefdb2d9
 * ("x86_64: Add gap to int3 to allow for call emulation"). pt_regs then sits
 * on the hardware #BP frame, which the CPU pushed right below the
 * interrupted stack, and int3_emulate_call()'s push of site + 5 at
 * regs->sp - 8 lands on that frame: on its saved SS when the interrupted
 * RSP was 16-byte aligned (the CPU aligns the frame down to 16, SDM Vol. 3
 * §6.14.2), on the alignment padding above it otherwise. The IRETQ that
 * follows pops SS = the low 16 bits of a kernel text address, not a valid
 * selector: #GP(selector) (SDM Vol. 2 IRET), and die().
 *
 * caller_main calls traced_fn directly and through traced_fn_deeper (one
 * word deeper), so the int3 is hit with both stack alignments.
 *
 * Markers: 1 = "call func_a" is in place on every CPU, 2 = a round starts
 * (value: the round), 3 = about to put the nop back, 4 = the nop is back.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_INSTALLED	1
#define MARKER_ROUND		2
#define MARKER_REMOVING		3
#define MARKER_REMOVED		4

/* [params], written by the machine before boot. */
u64 patch_rounds = 60;
u64 calls = 400;
u64 dwell = 64;

DEFINE_PER_CPU(u64, func_a_calls);
DEFINE_PER_CPU(u64, func_b_calls);
DEFINE_PER_CPU(u64, emulated_calls);	/* int3s that emulated a call */
DEFINE_PER_CPU(u64, emulated_nops);	/* int3s that emulated the nop */
DEFINE_PER_CPU(u64, bad_frame_count);	/* func_* saw a wrong ip/parent_ip */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* traced.fentry.c */
u64 traced_fn_deeper(u64 x);		/* funcs.S: calls traced_fn */
void func_a(void), func_b(void);	/* funcs.S */
void caller_main(unsigned long arg);

static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

/* Is ret the return address of a "call fn" (e8 rel32)? */
static bool is_call_return(unsigned long ret, void *fn)
{
	const volatile u8 *p = (const volatile u8 *)(ret - CALL_INSN_SIZE);
	u32 rel = 0;
	int i;

	if (p[0] != CALL_INSN_OPCODE)
		return false;
	for (i = 0; i < 4; i++)
		rel |= (u32)p[1 + i] << (8 * i);
	return ret + (long)(s32)rel == (unsigned long)fn;
}

/*
 * The C halves of func_a and func_b: ip must be the site and parent_ip the
 * return address of a call to traced_fn, whether the site called or the
 * int3 handler emulated the call.
 */
static void check_frame(unsigned long ip, unsigned long parent_ip)
{
	if (ip != (unsigned long)traced_fn || !is_call_return(parent_ip, traced_fn))
		this_cpu_inc(bad_frame_count);
}

notrace void func_a_c(unsigned long ip, unsigned long parent_ip)
{
	check_frame(ip, parent_ip);
	this_cpu_inc(func_a_calls);
}

notrace void func_b_c(unsigned long ip, unsigned long parent_ip)
{
	check_frame(ip, parent_ip);
	this_cpu_inc(func_b_calls);
}

/* What the int3 at the site stands for while it is there. */
static struct {
	void *addr;
	u8 opcode[CALL_INSN_SIZE];
	bool in_progress;
} bp_desc;

static unsigned long text_mutex;

static void spin_lock(unsigned long *lock)
{
	while (xchg(lock, 1))
		cpu_relax();
}

static void spin_unlock(unsigned long *lock)
{
	barrier();
	WRITE_ONCE(*lock, 0);
}

static unsigned long call_target(unsigned long ip, const u8 *insn)
{
	u32 rel = 0;
	int i;

	for (i = 0; i < 4; i++)
		rel |= (u32)insn[1 + i] << (8 * i);
	return ip + CALL_INSN_SIZE + (long)(s32)rel;
}

/*
 * do_int3() -> int3_hook(): an int3 at the site being patched executes the
 * instruction that is going in, by emulation (poke_int3_handler() since
 * v5.2). regs->ip is past the int3; the site is regs->ip - 1.
 */
int int3_hook(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;

	smp_rmb();
	if (!READ_ONCE(bp_desc.in_progress) || ip != (unsigned long)READ_ONCE(bp_desc.addr))
		return 0;

	if (bp_desc.opcode[0] == CALL_INSN_OPCODE) {
		/* push ip + 5 on the interrupted stack, continue at the target */
		int3_emulate_call(regs, call_target(ip, bp_desc.opcode));
		this_cpu_inc(emulated_calls);
	} else {
		/* the nop: continue after it */
		int3_emulate_jmp(regs, ip + MCOUNT_INSN_SIZE);
		this_cpu_inc(emulated_nops);
	}
	return 1;
}

/*
 * text_poke_bp() with the seed's three syncs; what a CPU that hits the int3
 * does comes from bp_desc, not from a handler address.
 */
static void text_poke_bp_emulate(void *addr, const u8 *opcode, size_t len)
{
	unsigned char int3 = INT3_INSN_OPCODE;
	size_t i;

	spin_lock(&text_mutex);
	WRITE_ONCE(bp_desc.addr, addr);
	for (i = 0; i < len; i++)
		bp_desc.opcode[i] = opcode[i];
	WRITE_ONCE(bp_desc.in_progress, true);
	smp_wmb();

	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	text_poke((u8 *)addr + INT3_INSN_SIZE, opcode + INT3_INSN_SIZE, len - INT3_INSN_SIZE);
	sync_core_all();

	text_poke(addr, opcode, INT3_INSN_SIZE);
	sync_core_all();

	WRITE_ONCE(bp_desc.in_progress, false);
	smp_wmb();
	spin_unlock(&text_mutex);
}

static void make_call(u8 *insn, void *site, void *target)
{
	long rel = (long)target - ((long)site + CALL_INSN_SIZE);
	int i;

	insn[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		insn[1 + i] = (u8)((unsigned long)rel >> (8 * i));
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	void *site = (void *)traced_fn;
	u8 call_a[CALL_INSN_SIZE], call_b[CALL_INSN_SIZE];
	u64 round;

	make_call(call_a, site, func_a);
	make_call(call_b, site, func_b);

	text_poke_bp_emulate(site, call_a, CALL_INSN_SIZE);
	pt_marker(MARKER_INSTALLED, 0);
	spin(READ_ONCE(dwell));

	for (round = 0; round < READ_ONCE(patch_rounds); round++) {
		pt_marker(MARKER_ROUND, round);
		text_poke_bp_emulate(site, call_b, CALL_INSN_SIZE);
		spin(READ_ONCE(dwell));
		text_poke_bp_emulate(site, call_a, CALL_INSN_SIZE);
		spin(READ_ONCE(dwell));
	}

	pt_marker(MARKER_REMOVING, 0);
	text_poke_bp_emulate(site, nop5, MCOUNT_INSN_SIZE);
	pt_marker(MARKER_REMOVED, 0);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		if (n & 1)
			sum += traced_fn_deeper(cpu << 32 | n);
		else
			sum += traced_fn(cpu << 32 | n);
	}

	/* Keeps the calls live, and lets a reader check every call returned. */
	this_cpu_write(caller_sum, sum);
}

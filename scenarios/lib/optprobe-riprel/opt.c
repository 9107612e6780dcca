// SPDX-License-Identifier: GPL-2.0
/*
 * opt.c - an optprobe whose jump replaces a RIP-relative instruction: the
 * detour's copies of the replaced instructions (arch/x86/kernel/kprobes/
 * opt.c copy_optimized_instructions(), __copy_instruction()).
 *
 * The optprobe machinery is lib/optprobe's (the kprobe's boost slot, the
 * detour, synchronize_rcu_tasks() between marking the probe optimized and
 * writing the jump with text_poke_bp()). Here the jump covers two
 * instructions, push %rbx and mov probe_base(%rip), %rbx, and the detour
 * runs copies of both. The second addresses its operand relative to its
 * own end, so its copy needs a displacement adjusted by the distance
 * between where the copy runs and where the original was.
 * copy_optimized_instructions() copies the instructions one after the
 * other into the detour; upstream commit "kprobes/x86: Fix to copy RIP
 * relative instruction correctly" (Masami Hiramatsu, 2017) fixed it
 * adjusting every instruction as if it were at the start of the copies,
 * which is wrong for the second and later ones. A scenario that ships
 * pt_optprobe_riprel_start.h builds the copy that way.
 *
 * CPU 0 optimizes and unoptimizes the kprobe for some rounds; CPUs 1 and 2
 * each run three tasks calling probed_fn, preempted by the timer.
 *
 * Markers: 1 = the kprobe is armed, 2 = optimized (value: round), 3 =
 * unoptimized (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ARMED		1
#define MARKER_OPTIMIZED	2
#define MARKER_UNOPTIMIZED	3

#define OPT_LEN			8	/* the whole instructions the jump covers */
#define MAX_TASKS		16

/* [params], written by the machine before boot. */
u64 rounds = 12;
u64 calls = 150;
u64 dwell = 400;

DEFINE_PER_CPU(u64, kprobe_hits);	/* through the boost slot */
DEFINE_PER_CPU(u64, detour_hits);	/* through the detour */
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */
void opt_thunk(void);
extern u8 kprobe_boost_slot[], optprobe_detour[];

static unsigned long kp_optimized;	/* KPROBE_FLAG_OPTIMIZED */
static u8 orig[OPT_LEN];

void opt_handler(unsigned long ip, unsigned long parent_ip)
{
	this_cpu_inc(detour_hits);
}

int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	if (READ_ONCE(kp_optimized)) {
		regs->ip = (unsigned long)optprobe_detour;	/* setup_detour_execution() */
	} else {
		this_cpu_inc(kprobe_hits);
		regs->ip = (unsigned long)kprobe_boost_slot;	/* boosted: no single-step */
	}
	return 1;
}

/* --- RCU tasks ---------------------------------------------------------- */

static unsigned long tasks_qs[MAX_TASKS];	/* voluntary schedule points passed */
static unsigned long tasks_gone[MAX_TASKS];
static unsigned long tasks_seen[MAX_TASKS];

static void rcu_tasks_qs(void)
{
	unsigned long id = current->id;

	if (id < MAX_TASKS) {
		WRITE_ONCE(tasks_seen[id], 1);
		atomic_long_inc(&tasks_qs[id]);
	}
}

static void synchronize_rcu_tasks(void)
{
	unsigned long snap[MAX_TASKS];
	int i;

	smp_mb();
	for (i = 0; i < MAX_TASKS; i++)
		snap[i] = READ_ONCE(tasks_qs[i]);
	for (i = 0; i < MAX_TASKS; i++) {
		if (!READ_ONCE(tasks_seen[i]))
			continue;
		while (READ_ONCE(tasks_qs[i]) == snap[i] && !READ_ONCE(tasks_gone[i]))
			cpu_relax();
	}
	smp_mb();
}

/* --- the optimizer ------------------------------------------------------- */

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	unsigned long rel = to - from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)(rel >> (8 * i));
}

/*
 * __copy_instruction() for one instruction of probed_fn at src, copied to
 * buf, which will run at real: push %rbx as it is, a REX.W mov with a
 * RIP-relative operand (ModRM mod 00, r/m 101) with the displacement that
 * reaches the same address from real. Returns the length, 0 for anything
 * else (the probe is then not optimized).
 */
static int copy_instruction(u8 *buf, const u8 *src, unsigned long real)
{
	int disp;

	if (src[0] == 0x53) {
		buf[0] = src[0];
		return 1;
	}
	if ((src[0] & 0xf8) != 0x48 || src[1] != 0x8b || (src[2] & 0xc7) != 0x05)
		return 0;
	memcpy(buf, src, 7);
	disp = (int)(src[3] | src[4] << 8 | src[5] << 16 | (u32)src[6] << 24);
	disp += (long)((unsigned long)src - real);
	buf[3] = (u8)disp;
	buf[4] = (u8)(disp >> 8);
	buf[5] = (u8)(disp >> 16);
	buf[6] = (u8)(disp >> 24);
	return 7;
}

/*
 * copy_optimized_instructions(): the instructions of the OPT_LEN bytes at
 * src, one after the other, into buf, which will run at dest.
 */
static int copy_optimized_instructions(u8 *buf, unsigned long dest)
{
	const u8 *src = (const u8 *)probed_fn;
	int len = 0, n;

	while (len < OPT_LEN) {
#if __has_include("pt_optprobe_riprel_start.h")
		/* every copy adjusted as if it ran at the start of the copies */
		n = copy_instruction(buf + len, src + len, dest);
#else
		n = copy_instruction(buf + len, src + len, dest + len);
#endif
		if (!n)
			return 0;
		len += n;
	}
	return len;
}

static void prepare_slots(void)
{
	unsigned long fn = (unsigned long)probed_fn;
	unsigned long slot = (unsigned long)kprobe_boost_slot;
	unsigned long det = (unsigned long)optprobe_detour;
	u8 buf[32];
	int n = 0;

	/* Boost slot: push %rbx; jmp probed_fn+1. */
	buf[n++] = orig[0];
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, slot + n + 4, fn + 1);
	n += 4;
	text_poke(kprobe_boost_slot, buf, n);

	/* Detour: call opt_thunk; the copied instructions; jmp probed_fn+8. */
	n = 0;
	buf[n++] = CALL_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, (unsigned long)opt_thunk);
	n += 4;
	n += copy_optimized_instructions(buf + n, det + n);
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, fn + OPT_LEN);
	n += 4;
	text_poke(optprobe_detour, buf, n);
	sync_core_all();
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 *addr = (u8 *)probed_fn;
	u8 int3 = INT3_INSN_OPCODE;
	u8 jmp[5], unopt[5];
	u64 r;
	int i;

	for (i = 0; i < OPT_LEN; i++)
		orig[i] = addr[i];
	prepare_slots();

	/* Arm the kprobe: an int3 over push %rbx. */
	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();
	pt_marker(MARKER_ARMED, 0);

	jmp[0] = JMP32_INSN_OPCODE;
	put_rel32(jmp + 1, (unsigned long)addr + 5, (unsigned long)optprobe_detour);
	unopt[0] = INT3_INSN_OPCODE;
	for (i = 1; i < 5; i++)
		unopt[i] = orig[i];

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));

		/* optimize_kprobe(): hits go to the detour from now on. */
		WRITE_ONCE(kp_optimized, 1);
		/*
		 * kprobe_optimizer() step 2: a task may be in the boost slot or
		 * between the instructions the jump replaces; wait until every
		 * task has passed a voluntary schedule point.
		 */
		synchronize_rcu_tasks();
		text_poke_bp(addr, jmp, sizeof(jmp), optprobe_detour);	/* step 3 */
		pt_marker(MARKER_OPTIMIZED, r);

		spin(READ_ONCE(dwell));

		/* Unoptimize: back to the int3 and the original bytes. */
		text_poke_bp(addr, unopt, sizeof(unopt), optprobe_detour);
		WRITE_ONCE(kp_optimized, 0);
		pt_marker(MARKER_UNOPTIMIZED, r);
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		rcu_tasks_qs();		/* a voluntary schedule point */
		sum += probed_fn(n);
	}
	if (current->id < MAX_TASKS)
		WRITE_ONCE(tasks_gone[current->id], 1);
	this_cpu_write(caller_sum, sum);
}

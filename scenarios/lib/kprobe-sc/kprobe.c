// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe against an inline static_call() site.
 *
 * register_kprobe() must refuse text some other patcher owns: ftrace's
 * sites, jump labels (commit 4c3ef6d79328, "jump label: Add
 * jump_label_text_reserved() to reserve jump points") and inline static
 * calls (commit 6333e8f73b83, "static_call: Avoid kprobes on inline
 * static_call()s"). The static-call half of that check was lost in a merge
 * and restored by commit fa68bd09fc62 ("kprobe/static_call: Restore
 * missing static_call_text_reserved()",
 * https://lore.kernel.org/r/20210628113045.167127609@infradead.org). Without
 * it a kprobe lands on the call: it saves the call's first byte, puts its
 * int3 there, and emulates the saved call when hit. static_call_update()
 * then rewrites the site with text_poke_bp() - int3, the new rel32, the
 * call opcode - and the last write replaces the kprobe's int3: the probe
 * still counts as armed, but no CPU enters its handler again, and its
 * disarm writes its saved byte over an instruction it no longer knows.
 * (With the call turned into a nop, as a NULL static call is, that byte
 * would make a call to nowhere.) A scenario that ships
 * pt_no_sc_reserved.h builds register_kprobe() without the check; with
 * it, the probe is refused at sc_site and the user probes sc_caller_fn's
 * first instruction instead.
 *
 * CPU 0, each round: registers the kprobe, updates the static call to the
 * other target with text_poke_bp(), unregisters the kprobe. CPUs 1 and 2
 * call sc_caller_fn all along.
 *
 * Markers: 1 = the kprobe is armed at sc_site, 5 = the kprobe is armed at
 * sc_caller_fn (refused at sc_site), 2 = the static call now points to
 * the other target, 3 = about to disarm, 4 = disarmed (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ARMED_SITE	1
#define MARKER_UPDATED		2
#define MARKER_DISARM_NEXT	3
#define MARKER_DISARMED		4
#define MARKER_ARMED_FALLBACK	5

#define EBUSY			16

/* [params], written by the machine before boot. */
u64 rounds = 30;
u64 calls = 300;
u64 dwell = 200;

DEFINE_PER_CPU(u64, kprobe_hits);
DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, caller_sum);

u64 sc_caller_fn(u64 x);		/* site.S */
u64 sc_func_a(u64 x);
u64 sc_func_b(u64 x);
extern u8 sc_site[];

/* The static call sites (the .static_call_sites section's one entry). */
static u8 *const sc_sites[] = { sc_site };

/* text_poke_bp()'s state, for its int3 handler. */
static unsigned long bp_addr;
static u8 bp_insn[CALL_INSN_SIZE];
static bool bp_in_progress;

/* The kprobe: where it is, the instruction it saved, armed or not. */
static unsigned long kp_addr;
static u8 kp_insn[CALL_INSN_SIZE];
static int kp_len;
static bool kp_armed;

static long insn_rel32(const u8 *insn)
{
	return *(const int *)(insn + 1);
}

/* text_poke_bp()'s half of do_int3(), run first. */
static int sc_poke_int3_handler(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;

	smp_rmb();
	if (!READ_ONCE(bp_in_progress) || ip != READ_ONCE(bp_addr))
		return 0;
	int3_emulate_call(regs, ip + CALL_INSN_SIZE + insn_rel32(bp_insn));
	this_cpu_inc(poke_hits);
	return 1;
}

/* The probe's handler: what the user registered. */
__attribute__((noinline)) void kprobe_pre_handler(struct pt_regs *regs)
{
	this_cpu_inc(kprobe_hits);
}

/* kprobe_int3_handler(): run the pre-handler, then emulate the saved insn. */
static int kprobe_int3_handler(struct pt_regs *regs)
{
	unsigned long ip = regs->ip - INT3_INSN_SIZE;

	if (!READ_ONCE(kp_armed) || ip != READ_ONCE(kp_addr))
		return 0;
	kprobe_pre_handler(regs);
	if (kp_insn[0] == CALL_INSN_OPCODE)
		int3_emulate_call(regs, ip + CALL_INSN_SIZE + insn_rel32(kp_insn));
	else
		int3_emulate_jmp(regs, ip + kp_len);	/* the one-byte nop */
	return 1;
}

int int3_hook(struct pt_regs *regs)
{
	if (sc_poke_int3_handler(regs))
		return 1;
	return kprobe_int3_handler(regs);
}

#if __has_include("pt_no_sc_reserved.h")
static bool static_call_text_reserved(void *start, void *end)
{
	return false;	/* lost in the merge fa68bd09fc62 repaired */
}
#else
static bool static_call_text_reserved(void *start, void *end)
{
	unsigned int i;

	for (i = 0; i < sizeof(sc_sites) / sizeof(sc_sites[0]); i++)
		if ((u8 *)end >= sc_sites[i] && (u8 *)start < sc_sites[i] + CALL_INSN_SIZE)
			return true;
	return false;
}
#endif

static int register_kprobe(void *addr)
{
	const u8 *p = addr;
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	if (static_call_text_reserved(addr, addr))
		return -EBUSY;
	/* Save the instruction (a call rel32 or a one-byte nop), arm. */
	kp_len = p[0] == CALL_INSN_OPCODE ? CALL_INSN_SIZE : 1;
	for (i = 0; i < kp_len; i++)
		kp_insn[i] = p[i];
	WRITE_ONCE(kp_addr, (unsigned long)addr);
	WRITE_ONCE(kp_armed, true);
	smp_wmb();
	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();
	return 0;
}

static void unregister_kprobe(void)
{
	text_poke((void *)kp_addr, kp_insn, INT3_INSN_SIZE);
	sync_core_all();
	WRITE_ONCE(kp_armed, false);
	smp_wmb();
}

/* __static_call_transform(): text_poke_bp() a call to func over the site. */
static void static_call_update(void *func)
{
	unsigned long site = (unsigned long)sc_sites[0];
	long rel = (long)func - (long)(site + CALL_INSN_SIZE);
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	bp_insn[0] = CALL_INSN_OPCODE;
	for (i = 0; i < 4; i++)
		bp_insn[1 + i] = (u8)((unsigned long)rel >> (8 * i));
	WRITE_ONCE(bp_addr, site);
	smp_wmb();
	WRITE_ONCE(bp_in_progress, true);
	smp_wmb();

	text_poke((void *)site, &int3, INT3_INSN_SIZE);
	sync_core_all();
	text_poke((u8 *)site + 1, bp_insn + 1, CALL_INSN_SIZE - 1);
	sync_core_all();
	text_poke((void *)site, bp_insn, INT3_INSN_SIZE);
	sync_core_all();

	WRITE_ONCE(bp_in_progress, false);
	smp_wmb();
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u64 r;

	for (r = 0; r < READ_ONCE(rounds); r++) {
		if (register_kprobe(sc_site) == 0) {
			pt_marker(MARKER_ARMED_SITE, r);
		} else {
			if (register_kprobe(sc_caller_fn))
				pt_bug(1);
			pt_marker(MARKER_ARMED_FALLBACK, r);
		}
		spin(READ_ONCE(dwell));

		static_call_update(r & 1 ? (void *)sc_func_a : (void *)sc_func_b);
		pt_marker(MARKER_UPDATED, r);
		spin(READ_ONCE(dwell));

		pt_marker(MARKER_DISARM_NEXT, r);
		unregister_kprobe();
		pt_marker(MARKER_DISARMED, r);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += sc_caller_fn(n);
	this_cpu_write(caller_sum, sum);
}

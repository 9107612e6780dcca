// SPDX-License-Identifier: GPL-2.0
/*
 * opt.c - two kprobes whose jump optimizations overlap, and the check
 * arch_check_optimized_kprobe() (arch/x86/kernel/kprobes/opt.c) makes
 * before it lets one be optimized: no other kprobe may still be armed
 * inside the range its jump will cover.
 *
 * kp_entry sits on probed_fn+0 and its optprobe (op_entry) would replace
 * +0..+6 with a jump to a detour that runs copies of those three
 * instructions and jumps back to +7. kp_in sits on probed_fn+4 and its
 * optprobe (op_in) replaces +4..+9 with a jump to its own detour. The
 * copies op_entry's detour runs are made from the instructions as they
 * were, recovered from op_in's saved bytes where op_in's jump is in the
 * text (__recover_optprobed_insn(), as fixed by commit 868a6fc0ca24
 * "x86/kprobes: Fix __recover_optprobed_insn check optimizing logic": an
 * optprobe queued for unoptimizing still has its jump in the text), so
 * the detour returns to +7, where the original incq %rbx ends. But while
 * op_in's jump is in the text, +7 is inside that jump.
 *
 * Disabling kp_in only queues op_in for unoptimizing (kernel/kprobes.c
 * since commit f66c0447cca1, "kprobes: Set unoptimized flag after
 * unoptimizing code"): its jump stays in the text until the optimizer
 * runs. Optimizing op_entry in that window must be refused. The fix, commit
 * f1c97a1b4ef7 ("x86/kprobes: Fix arch_check_optimized_kprobe check within
 * optimized_kprobe range", Yang Jihong), refuses it while any kprobe in the
 * range is not disarmed (kprobe_disarmed(): disabled and not queued for
 * unoptimizing); before it, the check asked only whether the kprobe was
 * disabled, so op_entry was marked optimized at once. From then on an
 * int3 hit at +0 goes to op_entry's detour (setup_detour_execution()), whose
 * jump back lands on +7, in the displacement of op_in's jump. A scenario
 * that ships pt_optprobe_range_disabled.h builds the check that way.
 *
 * CPU 0 runs the sequence for some rounds; CPUs 1 and 2 each run three
 * tasks calling probed_fn, preempted by the timer.
 *
 * Markers (value: round): 1 kp_in armed, 2 op_in optimized, 3 kp_entry
 * armed, 4 kp_in disabled (op_in queued for unoptimizing), 5 the optimizer
 * ran (op_in unoptimized, op_entry optimized), 6 both probes removed.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_IN_ARMED		1
#define MARKER_IN_OPTIMIZED	2
#define MARKER_ENTRY_ARMED	3
#define MARKER_IN_DISABLED	4
#define MARKER_OPTIMIZER	5
#define MARKER_REMOVED		6

#define MAX_TASKS		16
#define JMP_LEN			5

/* [params], written by the machine before boot. */
u64 rounds = 6;
u64 calls = 150;
u64 dwell = 400;

DEFINE_PER_CPU(u64, kprobe_hits);	/* through a boost slot */
DEFINE_PER_CPU(u64, detour_hits);	/* through a detour */
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */
void opt_thunk(void);
extern u8 slot_in[], slot_entry[], detour_in[], detour_entry[];

/* One kprobe and its optimized_kprobe. */
struct oprobe {
	unsigned long off;	/* its place in probed_fn */
	unsigned long len;	/* the whole instructions its jump covers */
	u8 *slot, *detour;
	u8 orig[8];		/* the instructions as they were (optinsn.copied_insn) */
	unsigned long armed;	/* its int3 is in the text */
	unsigned long disabled;	/* KPROBE_FLAG_DISABLED */
	unsigned long optimized;	/* KPROBE_FLAG_OPTIMIZED: int3 hits go to the detour */
	unsigned long jump;	/* its jump is in the text */
	unsigned long unopt_queued;	/* on the unoptimizing list */
};

static struct oprobe kp_entry = { .off = 0, .len = 7, .slot = slot_entry, .detour = detour_entry };
static struct oprobe kp_in = { .off = 4, .len = 6, .slot = slot_in, .detour = detour_in };

static u8 *at(const struct oprobe *p)
{
	return (u8 *)probed_fn + p->off;
}

void opt_handler(unsigned long ip, unsigned long parent_ip)
{
	this_cpu_inc(detour_hits);
}

static int hit(struct oprobe *p, struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)at(p))
		return 0;
	if (READ_ONCE(p->optimized)) {
		regs->ip = (unsigned long)p->detour;	/* setup_detour_execution() */
	} else {
		this_cpu_inc(kprobe_hits);
		regs->ip = (unsigned long)p->slot;	/* boosted: no single-step */
	}
	return 1;
}

int int3_hook(struct pt_regs *regs)
{
	return hit(&kp_entry, regs) || hit(&kp_in, regs);
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

/* --- building the slots --------------------------------------------------- */

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	unsigned long rel = to - from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)(rel >> (8 * i));
}

/*
 * recover_insn(): the byte at addr as it was before any probe changed it.
 * Where an optprobe's jump is in the text (optimized, or queued for
 * unoptimizing but not yet unoptimized), its saved bytes; where a kprobe's
 * int3 is, the byte under it; elsewhere the text itself. A scenario that
 * ships pt_optprobe_range_norecover.h builds it as it was before commit
 * 868a6fc0ca24: an optprobe queued for unoptimizing is taken for one that
 * is no longer in the text, and the live bytes of its jump are returned.
 */
static u8 recover_insn(const u8 *addr)
{
	struct oprobe *ps[2] = { &kp_entry, &kp_in };
	int i;

	for (i = 0; i < 2; i++) {
		struct oprobe *p = ps[i];

#if __has_include("pt_optprobe_range_norecover.h")
		/* the bug: an optprobe queued for unoptimizing taken for unoptimized */
		if (READ_ONCE(p->unopt_queued))
			continue;
#endif
		if (READ_ONCE(p->jump) && addr >= at(p) && addr < at(p) + JMP_LEN)
			return p->orig[addr - at(p)];
		if (READ_ONCE(p->armed) && addr == at(p))
			return p->orig[0];
	}
	return *addr;
}

/*
 * Write a slot, unless it already holds these bytes: a task preempted in a
 * slot of an earlier round may still be there.
 */
static void put_slot(u8 *dst, const u8 *buf, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (dst[i] != buf[i])
			break;
	if (i < n)
		text_poke(dst, buf, n);
}

/*
 * The boost slot (the copied first instruction, a jump behind it) and the
 * detour (call opt_thunk, the copied instructions, a jump behind them),
 * made from the recovered instructions.
 */
static void prepare(struct oprobe *p, unsigned long first_len)
{
	unsigned long fn = (unsigned long)probed_fn;
	unsigned long slot = (unsigned long)p->slot;
	unsigned long det = (unsigned long)p->detour;
	u8 buf[32];
	unsigned long i;
	int n = 0;

	for (i = 0; i < p->len; i++)
		p->orig[i] = recover_insn(at(p) + i);

	for (i = 0; i < first_len; i++)
		buf[n++] = p->orig[i];
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, slot + n + 4, fn + p->off + first_len);
	n += 4;
	put_slot(p->slot, buf, n);

	n = 0;
	buf[n++] = CALL_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, (unsigned long)opt_thunk);
	n += 4;
	for (i = 0; i < p->len; i++)
		buf[n++] = p->orig[i];
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, fn + p->off + p->len);
	n += 4;
	put_slot(p->detour, buf, n);
	sync_core_all();
}

/* --- arming, optimizing ---------------------------------------------------- */

static void arm(struct oprobe *p)
{
	u8 int3 = INT3_INSN_OPCODE;

	text_poke(at(p), &int3, INT3_INSN_SIZE);
	sync_core_all();
	WRITE_ONCE(p->armed, 1);
}

static void disarm(struct oprobe *p)
{
	text_poke(at(p), p->orig, 1);
	sync_core_all();
	WRITE_ONCE(p->armed, 0);
}

/* kprobe_disarmed(): disabled, and no jump of it left to take out. */
static __used bool disarmed(const struct oprobe *p)
{
	return READ_ONCE(p->disabled) && !READ_ONCE(p->unopt_queued);
}

/*
 * arch_check_optimized_kprobe(): no other kprobe inside the range op's
 * jump will cover may still be armed.
 */
static bool check_range(const struct oprobe *op, const struct oprobe *other)
{
	if (other->off <= op->off || other->off >= op->off + op->len)
		return true;
#if __has_include("pt_optprobe_range_disabled.h")
	return READ_ONCE(other->disabled);	/* the bug: disabled is not disarmed */
#else
	return disarmed(other);
#endif
}

/* optimize_kprobe(): mark it optimized; the optimizer writes the jump. */
static bool try_optimize(struct oprobe *op, const struct oprobe *other)
{
	if (READ_ONCE(op->disabled) || !check_range(op, other))
		return false;
	WRITE_ONCE(op->optimized, 1);
	return true;
}

/* The optimizer's step for one probe marked optimized: write its jump. */
static void write_jump(struct oprobe *op)
{
	u8 jmp[JMP_LEN];

	/*
	 * A task may be in the boost slot or between the instructions the
	 * jump replaces: wait until every task has passed a voluntary
	 * schedule point (commit a30b85df7d59).
	 */
	synchronize_rcu_tasks();
	jmp[0] = JMP32_INSN_OPCODE;
	put_rel32(jmp + 1, (unsigned long)at(op) + JMP_LEN, (unsigned long)op->detour);
	text_poke_bp(at(op), jmp, JMP_LEN, op->detour);
	WRITE_ONCE(op->jump, 1);
}

/*
 * The optimizer's step for one probe queued for unoptimizing: back to the
 * int3 and the original bytes, or to the original bytes alone if it is
 * disabled.
 */
static void unoptimize(struct oprobe *op)
{
	u8 code[JMP_LEN];
	int i;

	for (i = 0; i < JMP_LEN; i++)
		code[i] = op->orig[i];
	if (!READ_ONCE(op->disabled))
		code[0] = INT3_INSN_OPCODE;
	text_poke_bp(at(op), code, JMP_LEN, op->detour);
	WRITE_ONCE(op->jump, 0);
	WRITE_ONCE(op->optimized, 0);
	WRITE_ONCE(op->unopt_queued, 0);
	if (READ_ONCE(op->disabled))
		WRITE_ONCE(op->armed, 0);
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
		/* register_kprobe(kp_in) and its optimization. */
		WRITE_ONCE(kp_in.disabled, 0);
		prepare(&kp_in, 3);
		arm(&kp_in);
		pt_marker(MARKER_IN_ARMED, r);
		spin(READ_ONCE(dwell));
		if (try_optimize(&kp_in, &kp_entry))
			write_jump(&kp_in);
		pt_marker(MARKER_IN_OPTIMIZED, r);
		spin(READ_ONCE(dwell));

		/*
		 * register_kprobe(kp_entry): its copies come from the recovered
		 * instructions (op_in's saved bytes where op_in's jump is);
		 * kp_in is armed in its range, so it is not optimized.
		 */
		WRITE_ONCE(kp_entry.disabled, 0);
		prepare(&kp_entry, 1);
		arm(&kp_entry);
		try_optimize(&kp_entry, &kp_in);
		pt_marker(MARKER_ENTRY_ARMED, r);
		spin(READ_ONCE(dwell));

		/*
		 * disable_kprobe(kp_in): op_in is queued for unoptimizing, its
		 * jump stays in the text until the optimizer runs. Then
		 * kp_entry is optimized again (as unregistering another kprobe
		 * on kp_entry's address does in the commit's example).
		 */
		WRITE_ONCE(kp_in.unopt_queued, 1);
		WRITE_ONCE(kp_in.disabled, 1);
		/*
		 * register_kprobe() of a second kprobe on probed_fn+0: kp_entry
		 * becomes an aggregate probe whose optprobe is prepared anew
		 * (alloc_aggr_kprobe(), arch_prepare_optimized_kprobe()), its
		 * copies made from the recovered instructions while op_in's
		 * jump, queued for unoptimizing, is still in the text.
		 */
		prepare(&kp_entry, 1);
		try_optimize(&kp_entry, &kp_in);
		pt_marker(MARKER_IN_DISABLED, r);
		spin(READ_ONCE(dwell));	/* the optimizer's delay */

		/* kprobe_optimizer(): unoptimize, then optimize. */
		unoptimize(&kp_in);
		if (!READ_ONCE(kp_entry.optimized))
			try_optimize(&kp_entry, &kp_in);
		if (READ_ONCE(kp_entry.optimized))
			write_jump(&kp_entry);
		pt_marker(MARKER_OPTIMIZER, r);
		spin(READ_ONCE(dwell));

		/* unregister_kprobe(kp_entry): unoptimize, then disarm. */
		WRITE_ONCE(kp_entry.unopt_queued, 1);
		if (READ_ONCE(kp_entry.jump))
			unoptimize(&kp_entry);
		WRITE_ONCE(kp_entry.optimized, 0);
		WRITE_ONCE(kp_entry.unopt_queued, 0);
		disarm(&kp_entry);
		pt_marker(MARKER_REMOVED, r);
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

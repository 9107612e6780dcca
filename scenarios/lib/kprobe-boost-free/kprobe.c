// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a boosted kprobe registered and unregistered over and over,
 * its instruction slot freed each time.
 *
 * A boosted kprobe (kprobe-booster) does not single-step: its int3 handler
 * sends the CPU to an instruction slot holding a copy of the probed
 * instruction and a jump back behind it, with interrupts as they were. A
 * task may therefore be preempted inside the slot and stay switched out
 * there. Unregistering the probe removes the int3 and syncs every CPU, but
 * the slot may only be freed once no task can still be in it: upstream
 * commit "kprobes: enable booster on the preemptible kernel" (Masami
 * Hiramatsu, 2007) allowed boosting on preemptible kernels only together
 * with a check that no task is preempted in a dirty slot before it is
 * freed (later synchronize_rcu_tasks()). A scenario that ships
 * pt_kprobe_boost_nowait.h frees the slot right after the sync.
 *
 * CPU 0, each round: module_alloc() a slot, fill it (push %rbx; jmp
 * probed_fn+1), arm the kprobe (an int3 over probed_fn's push), dwell,
 * disarm it (the original byte, a sync), wait for every task to pass a
 * voluntary schedule point, free the slot. CPUs 1 and 2 each run two
 * tasks calling probed_fn.
 *
 * Markers: 1 = armed (value: the slot), 2 = disarmed, 3 = freed (value:
 * the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ARMED		1
#define MARKER_DISARMED		2
#define MARKER_FREED		3

#define MAX_TASKS		16

/* [params], written by the machine before boot. */
u64 rounds = 12;
u64 calls = 300;
u64 dwell = 300;

DEFINE_PER_CPU(u64, kprobe_hits);
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */

static u8 *kp_slot;			/* the armed probe's boost slot */

int int3_hook(struct pt_regs *regs)
{
	u8 *slot = READ_ONCE(kp_slot);

	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn || !slot)
		return 0;
	this_cpu_inc(kprobe_hits);
	regs->ip = (unsigned long)slot;		/* boosted: no single-step */
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

static __used void synchronize_rcu_tasks(void)
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

/* --- register / unregister ----------------------------------------------- */

static u8 *prepare_boost_slot(u8 orig)
{
	u8 *slot = module_alloc(16);
	unsigned long rel;
	int i;

	if (!slot)
		pt_bug(1);
	slot[0] = orig;				/* the copy */
	slot[1] = JMP32_INSN_OPCODE;		/* jmp probed_fn+1 */
	rel = (unsigned long)probed_fn + 1 - ((unsigned long)slot + 6);
	for (i = 0; i < 4; i++)
		slot[2 + i] = (u8)(rel >> (8 * i));
	for (i = 6; i < 16; i++)
		slot[i] = INT3_INSN_OPCODE;
	set_memory_ro((unsigned long)slot, 1);
	set_memory_x((unsigned long)slot, 1);
	return slot;
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 int3 = INT3_INSN_OPCODE;
	u8 orig = *(volatile u8 *)probed_fn;
	u64 r;

	for (r = 0; r < READ_ONCE(rounds); r++) {
		u8 *slot = prepare_boost_slot(orig);

		WRITE_ONCE(kp_slot, slot);
		text_poke((void *)probed_fn, &int3, 1);	/* arm_kprobe() */
		sync_core_all();
		pt_marker(MARKER_ARMED, (unsigned long)slot);
		spin(READ_ONCE(dwell));

		text_poke((void *)probed_fn, &orig, 1);	/* disarm_kprobe() */
		sync_core_all();
		WRITE_ONCE(kp_slot, NULL);
		pt_marker(MARKER_DISARMED, r);
#if !__has_include("pt_kprobe_boost_nowait.h")
		/* a task preempted in the slot must have left it */
		synchronize_rcu_tasks();
#endif
		module_memfree(slot);			/* free_insn_slot() */
		pt_marker(MARKER_FREED, r);
		spin(READ_ONCE(dwell));
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

// SPDX-License-Identifier: GPL-2.0
/*
 * kretprobe.c - a kretprobe: an int3 at a function's entry whose handler
 * hijacks the function's return address, and the trampoline the hijacked
 * return lands in.
 *
 * CPU 0 arms and disarms a kprobe on probed_fn (an int3 over its one-byte
 * nop: text_poke, then a sync) for a number of rounds while the other CPUs
 * call probed_fn, which calls itself `nest` levels deep. A CPU that hits
 * the int3 runs the kretprobe's entry handler, kretprobe_hijack() (Linux's
 * pre_handler_kretprobe() and arch_prepare_kretprobe()): it records an
 * instance - the return address at regs->sp and the stack address it was
 * at - on the current task's instance list and overwrites the return
 * address with kretprobe_trampoline. The function runs; its RET enters the
 * trampoline, which calls kretprobe_trampoline_handler() with the address
 * of the hijacked word; the handler takes the task's instance for that
 * frame, counts the return, and gives back the original return address,
 * which the trampoline returns to.
 *
 * Instances nest: probed_fn calling itself hijacks one frame per level, and
 * the innermost returns first. The handler must take the instance of the
 * frame it was entered from: the task's newest. A scenario that ships
 * pt_kretprobe_oldest.h gets a handler that takes the task's oldest
 * instance instead - the class of bug Linux's kretprobe code had to fix
 * when several instances of one task were pending ("kprobes/x86: Fix the
 * return address of multiple kretprobes", 2017, and the later rework that
 * matches instances to frames): with nesting, the inner frame returns to
 * the outer frame's caller.
 *
 * Markers: 1 = armed (value: the round), 3 = about to disarm, 2 = disarmed
 * (value: the round). Between 1 and 3 every call must run the entry handler
 * (contract.must_call on the one-byte site, nested in its #BP).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ARMED		1
#define MARKER_DISARMED		2
#define MARKER_DISARMING	3

#define KRETPROBE_MAX_INSTANCES	8

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 200;
u64 dwell = 200;
u64 nest = 1;

DEFINE_PER_CPU(u64, kretprobe_hits);	/* entry handler runs */
DEFINE_PER_CPU(u64, kretprobe_returns);	/* trampoline handler runs */
DEFINE_PER_CPU(u64, kretprobe_missed);	/* no free instance */
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x, u64 depth);	/* probe.S */
void kretprobe_trampoline(void);	/* probe.S */

struct kretprobe_instance {
	unsigned long ret_addr;		/* the return address it replaced */
	unsigned long *frame;		/* where that return address was */
};

/* Per task (tasks never migrate: the lists are only touched by their own task). */
struct kretprobe_task {
	unsigned long n;
	struct kretprobe_instance ri[KRETPROBE_MAX_INSTANCES];
};

static struct kretprobe_task kretprobe_tasks[PT_MAX_TASKS + 1];

u64 probed_body(u64 x, u64 depth)
{
	u64 r = (x >> 3) ^ (x * 0x9e37);

	if (depth)
		r += probed_fn(x + 1, depth - 1) * 3;
	return r;
}

/* The kretprobe's entry handler: hijack the return address at regs->sp. */
__attribute__((noinline)) void kretprobe_hijack(struct pt_regs *regs)
{
	struct kretprobe_task *kt = &kretprobe_tasks[current->id];
	unsigned long *frame = (unsigned long *)regs->sp;

	if (kt->n == KRETPROBE_MAX_INSTANCES) {
		this_cpu_inc(kretprobe_missed);
		return;
	}
	kt->ri[kt->n].ret_addr = *frame;
	kt->ri[kt->n].frame = frame;
	kt->n++;
	*frame = (unsigned long)kretprobe_trampoline;
}

/* do_int3() -> int3_hook(): the kprobe on probed_fn. */
int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	this_cpu_inc(kretprobe_hits);
	kretprobe_hijack(regs);
	/* The probed instruction is a nop: resume after it (regs->ip already is). */
	return 1;
}

/* Called by kretprobe_trampoline with the hijacked word's address. */
unsigned long kretprobe_trampoline_handler(unsigned long *frame)
{
	struct kretprobe_task *kt = &kretprobe_tasks[current->id];
	unsigned long ret;
	unsigned long i;

	if (kt->n == 0)
		panic("kretprobe: a return with no instance");
#if __has_include("pt_kretprobe_oldest.h")
	/* The oldest instance, whichever frame this is. */
	ret = kt->ri[0].ret_addr;
	for (i = 1; i < kt->n; i++)
		kt->ri[i - 1] = kt->ri[i];
	kt->n--;
#else
	/* The instance of this frame: the newest, which must be it. */
	i = kt->n - 1;
	if (kt->ri[i].frame != frame)
		panic("kretprobe: the newest instance is not this frame's");
	ret = kt->ri[i].ret_addr;
	kt->n = i;
#endif
	this_cpu_inc(kretprobe_returns);
	return ret;
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
	u64 round;

	for (round = 0; round < READ_ONCE(rounds); round++) {
		/* arm_kprobe() / disarm_kprobe(): one byte, then sync */
		text_poke((void *)probed_fn, &int3, 1);
		sync_core_all();
		pt_marker(MARKER_ARMED, round);
		spin(READ_ONCE(dwell));
		pt_marker(MARKER_DISARMING, round);
		text_poke((void *)probed_fn, &orig, 1);
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
		sum += probed_fn(n, READ_ONCE(nest));
	this_cpu_write(caller_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe.c - a kprobe single-stepped with an int3 after the copy, and its
 * per-CPU control block.
 *
 * Since Linux commit 6256e668b7af ("x86/kprobes: Use int3 instead of
 * debug trap for single-step", 2021) a kprobe runs the probed instruction
 * out of line in its slot followed by an int3, not with TF: the int3
 * handler sees the second int3 as the end of the single step by the
 * per-CPU control block's status (KPROBE_HIT_SS) and the slot of the
 * running kprobe, moves the CPU behind the original, runs the
 * post-handler and resets the running kprobe. An int3 at an address
 * where no kprobe is registered, on a CPU whose status says it is single
 * stepping, is taken for that second int3, and the running kprobe read to
 * check the slot. Commit dec8784c9088 ("x86/kprobes: Update kcb status
 * flag after singlestepping", 2022) fixed kprobe_post_process(), which
 * set the status to KPROBE_HIT_SSDONE only when the kprobe had a
 * post-handler: after a probe without one the status stayed
 * KPROBE_HIT_SS with no kprobe running, and the next int3 of another user
 * on that CPU made kprobe_int3_handler() dereference the NULL running
 * kprobe. A scenario that ships pt_kprobe_ss_int3_stale.h builds
 * kprobe_post_process() that way.
 *
 * CPU 0 fills the slot (the probed instruction, then an int3), then
 * registers and arms a kprobe on probed_fn with a pre-handler only, and
 * disarms and unregisters it, for a number of rounds. CPUs 1 and 2 call
 * probed_fn, and every few calls other_int3_fn, whose int3 belongs to
 * another int3 user (do_int3() offers it to kprobes first).
 *
 * Markers: 1 = the slot is filled, 2 = armed (value: the round),
 * 3 = disarmed (value: the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_SLOT		1
#define MARKER_ARMED		2
#define MARKER_DISARMED		3

#define KPROBE_HIT_ACTIVE	1
#define KPROBE_HIT_SS		2
#define KPROBE_HIT_SSDONE	4

#define MAX_INSN_SIZE		16
#define PROBED_INSN_LEN		3	/* mov %rdi, %rax */

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 200;
u64 dwell = 200;
u64 other_every = 4;

struct kprobe {
	u8 *addr;		/* the probed instruction */
	u8 *insn;		/* its slot: the copy, then an int3 */
	unsigned long len;	/* the copy's length */
	u8 opcode;		/* the byte the int3 replaces */
	void (*pre_handler)(struct kprobe *p, struct pt_regs *regs);
	void (*post_handler)(struct kprobe *p, struct pt_regs *regs);
};

DEFINE_PER_CPU(struct kprobe *, current_kprobe);
DEFINE_PER_CPU(u64, kprobe_status);
DEFINE_PER_CPU(u64, kprobe_saved_if);
DEFINE_PER_CPU(u64, kprobe_hits);	/* pre-handler runs */
DEFINE_PER_CPU(u64, kprobe_ss_done);	/* single steps finished */
DEFINE_PER_CPU(u64, other_int3_hits);	/* the other user's int3s */

u64 probed_fn(u64 x);			/* probe.S */
void other_int3_fn(void);
extern u8 kprobe_insn_slot[];
extern u8 other_int3_ip[];

static void count_hit(struct kprobe *p, struct pt_regs *regs)
{
	this_cpu_inc(kprobe_hits);
}

static struct kprobe kp = {
	.pre_handler = count_hit,	/* and no post-handler */
};

/* The registered kprobes (the hash table of get_kprobe()): at most one. */
static struct kprobe *registered;

static struct kprobe *get_kprobe(void *addr)
{
	struct kprobe *p = READ_ONCE(registered);

	return p && p->addr == addr ? p : NULL;
}

/* What resume_singlestep() and kprobe_post_process() do after the copy. */
static __attribute__((noinline)) void kprobe_post_process(struct kprobe *cur, struct pt_regs *regs)
{
#if __has_include("pt_kprobe_ss_int3_stale.h")
	if (cur->post_handler) {
		this_cpu_write(kprobe_status, KPROBE_HIT_SSDONE);
		cur->post_handler(cur, regs);
	}
#else
	/* always: resetting the running kprobe does not touch the status */
	this_cpu_write(kprobe_status, KPROBE_HIT_SSDONE);
	if (cur->post_handler)
		cur->post_handler(cur, regs);
#endif
	this_cpu_write(current_kprobe, NULL);
}

static __attribute__((noinline)) int kprobe_int3_handler(struct pt_regs *regs)
{
	u8 *addr = (u8 *)(regs->ip - INT3_INSN_SIZE);
	struct kprobe *p = get_kprobe(addr);

	if (p) {
		this_cpu_write(current_kprobe, p);
		this_cpu_write(kprobe_status, KPROBE_HIT_ACTIVE);
		p->pre_handler(p, regs);
		/* setup_singlestep(): into the slot with interrupts off */
		this_cpu_write(kprobe_status, KPROBE_HIT_SS);
		this_cpu_write(kprobe_saved_if, regs->flags & X86_EFLAGS_IF);
		regs->flags &= ~X86_EFLAGS_IF;
		regs->ip = (unsigned long)p->insn;
		return 1;
	}
	if (this_cpu_read(kprobe_status) == KPROBE_HIT_SS) {
		p = this_cpu_read(current_kprobe);
		if ((unsigned long)p->insn < regs->ip &&
		    (unsigned long)p->insn + MAX_INSN_SIZE > regs->ip) {
			/* the int3 after the copy: resume_singlestep() */
			regs->ip = (unsigned long)p->addr + p->len;
			regs->flags |= this_cpu_read(kprobe_saved_if);
			this_cpu_inc(kprobe_ss_done);
			kprobe_post_process(p, regs);
			return 1;
		}
	}
	if (READ_ONCE(*addr) != INT3_INSN_OPCODE) {
		/* the int3 was removed right after it was hit: run the original */
		regs->ip = (unsigned long)addr;
		return 1;
	}
	return 0;
}

/* The other int3 user, after kprobes in do_int3()'s order (a die notifier). */
static int other_int3_handler(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)other_int3_ip)
		return 0;
	this_cpu_inc(other_int3_hits);
	return 1;
}

int int3_hook(struct pt_regs *regs)
{
	if (kprobe_int3_handler(regs))
		return 1;
	return other_int3_handler(regs);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 int3 = INT3_INSN_OPCODE;
	u8 buf[PROBED_INSN_LEN + 1];
	u64 round;

	/* arch_prepare_kprobe(): the copy, then the int3 that ends the step */
	kp.addr = (u8 *)probed_fn;
	kp.insn = kprobe_insn_slot;
	kp.len = PROBED_INSN_LEN;
	kp.opcode = *(volatile u8 *)probed_fn;
	memcpy(buf, probed_fn, PROBED_INSN_LEN);
	buf[PROBED_INSN_LEN] = INT3_INSN_OPCODE;
	text_poke(kprobe_insn_slot, buf, sizeof(buf));
	sync_core_all();
	pt_marker(MARKER_SLOT, 0);

	for (round = 0; round < READ_ONCE(rounds); round++) {
		WRITE_ONCE(registered, &kp);	/* register_kprobe() */
		text_poke(kp.addr, &int3, 1);	/* arm_kprobe() */
		sync_core_all();
		pt_marker(MARKER_ARMED, round);
		spin(READ_ONCE(dwell));
		text_poke(kp.addr, &kp.opcode, 1);	/* disarm_kprobe() */
		sync_core_all();
		WRITE_ONCE(registered, NULL);	/* unregister_kprobe() */
		pt_marker(MARKER_DISARMED, round);
		spin(READ_ONCE(dwell));
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		sum += probed_fn(n);
		if (n % READ_ONCE(other_every) == 0)
			other_int3_fn();
	}
	WRITE_ONCE(arg, sum);
}

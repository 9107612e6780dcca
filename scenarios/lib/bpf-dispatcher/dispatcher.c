// SPDX-License-Identifier: GPL-2.0
/*
 * dispatcher.c - the BPF dispatcher (kernel/bpf/dispatcher.c,
 * arch/x86/net/bpf_jit_comp.c: arch_prepare_bpf_dispatcher()) and the race
 * of commit 4121d4481b72 ("bpf: Synchronize dispatcher update with
 * bpf_dispatcher_xdp_func", Jiri Olsa, reported by Hao Sun;
 * https://lore.kernel.org/bpf/20221214123542.1389719-1-jolsa@kernel.org/).
 *
 * The dispatcher turns the indirect call of an XDP program into direct
 * jumps: an image of "cmp $prog, %rdx; je prog" pairs ending in the
 * indirect jump, generated for the attached programs. The image is a page
 * with two halves: bpf_dispatcher_update() writes the new image into the
 * half not in use, points bpf_dispatcher_xdp_func's site at it with
 * text_poke_bp(), and flips image_off. Nothing waited for CPUs still
 * running in the old half: two updates later that half is rewritten, and a
 * reader that was still in it - preempted in an RCU read-side section, as
 * BPF_PROG_TEST_RUN runs programs with preemptible RCU - resumes in the
 * middle of a different image. The fix calls synchronize_rcu() after the
 * site update, so readers leave the old half before the next update may
 * write it. A scenario that ships pt_dispatcher_nosync.h builds the
 * dispatcher without that synchronize_rcu().
 *
 * RCU here is a small preemptible one: a reader increments the counter of
 * the current phase and decrements it when it leaves; synchronize_rcu()
 * flips the phase and waits for the old phase's readers twice (SRCU's
 * flip-and-wait), so a reader preempted inside its section holds it off.
 *
 * Markers: 1 = an update is in place (value: the round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_UPDATED		1

#define NPROGS			8	/* a power of two: the machine has no DIV */
#define IMAGE_SIZE		4096
#define IMAGE_HALF		(IMAGE_SIZE / 2)

/* [params], written by the machine before boot. */
u64 rounds = 24;
u64 calls = 150;
u64 dwell = 0;

typedef u64 (*bpf_func_t)(const void *ctx, const void *insnsi);

u64 bpf_dispatcher_xdp_func(const void *ctx, const void *insnsi, bpf_func_t bpf_func);
extern u8 bpf_dispatcher_image[];

DEFINE_PER_CPU(u64, prog_calls);
DEFINE_PER_CPU(u64, dispatch_bad);	/* a program other than the one asked for ran */
DEFINE_PER_CPU(u64, caller_sum);

/* The "programs": each returns its number in the low bits of ctx * 8. */
#define PROG(n)								\
	u64 prog_##n(const void *ctx, const void *insnsi)		\
	{								\
		this_cpu_inc(prog_calls);				\
		return (u64)ctx * NPROGS + n;				\
	}
PROG(0) PROG(1) PROG(2) PROG(3) PROG(4) PROG(5) PROG(6) PROG(7)

static const bpf_func_t progs[NPROGS] = {
	prog_0, prog_1, prog_2, prog_3, prog_4, prog_5, prog_6, prog_7,
};

/* --- RCU ------------------------------------------------------------- */

static unsigned long rcu_phase;
static unsigned long rcu_readers[2];

static inline void atomic_long_dec(unsigned long *p)
{
	asm volatile("lock decq %0" : "+m"(*p) :: "memory", "cc");
}

static unsigned long rcu_read_lock(void)
{
	unsigned long idx = READ_ONCE(rcu_phase) & 1;

	atomic_long_inc(&rcu_readers[idx]);	/* a full barrier */
	return idx;
}

static void rcu_read_unlock(unsigned long idx)
{
	atomic_long_dec(&rcu_readers[idx]);
}

static __used void synchronize_rcu(void)
{
	int k;

	for (k = 0; k < 2; k++) {
		unsigned long old = READ_ONCE(rcu_phase) & 1;

		WRITE_ONCE(rcu_phase, rcu_phase + 1);
		smp_mb();
		while (READ_ONCE(rcu_readers[old]))
			cpu_relax();
	}
}

/* --- the dispatcher ---------------------------------------------------- */

static u32 image_off;
static u8 image_buf[IMAGE_HALF];

static void put_u32(u8 *p, u32 v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/*
 * arch_prepare_bpf_dispatcher(): for each program, "cmp $prog, %rdx"
 * (48 81 fa imm32: kernel text addresses sign-extend from 32 bits) and
 * "je prog" (0f 84 rel32); then the indirect jump for any other program.
 * The set attached in round r is nr = 4 + (r & 3) programs starting at
 * program r & 7, so each update changes what every slot compares and where
 * it jumps.
 */
static int emit_image(u8 *buf, unsigned long at, u64 round)
{
	int nr = 4 + (round & 3);
	int i, len = 0;

	for (i = 0; i < nr; i++) {
		unsigned long prog = (unsigned long)progs[(round + i) & (NPROGS - 1)];

		buf[len++] = 0x48;			/* cmp $imm32, %rdx */
		buf[len++] = 0x81;
		buf[len++] = 0xfa;
		put_u32(buf + len, (u32)prog);
		len += 4;
		buf[len++] = 0x0f;			/* je rel32 */
		buf[len++] = 0x84;
		put_u32(buf + len, (u32)(prog - (at + len + 4)));
		len += 4;
	}
	buf[len++] = 0xff;				/* jmp *%rdx */
	buf[len++] = 0xe2;
	return len;
}

/* bpf_dispatcher_update() */
static void dispatcher_update(u64 round)
{
	u8 *site = (u8 *)bpf_dispatcher_xdp_func;
	u32 noff = image_off ^ IMAGE_HALF;
	u8 *new = bpf_dispatcher_image + noff;
	u8 jmp[5];
	int len;

	len = emit_image(image_buf, (unsigned long)new, round);
	text_poke(new, image_buf, len);			/* bpf_arch_text_copy() */

	jmp[0] = JMP32_INSN_OPCODE;			/* __BPF_DISPATCHER_UPDATE() */
	put_u32(jmp + 1, (u32)((unsigned long)new - (unsigned long)(site + 5)));
	text_poke_bp(site, jmp, sizeof(jmp), site + 5);

#if !__has_include("pt_dispatcher_nosync.h")
	/*
	 * Make sure every caller still running in the previous half has left
	 * it, so the next update may rewrite it (commit 4121d4481b72).
	 */
	synchronize_rcu();
#endif
	image_off = noff;
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
		dispatcher_update(r);
		pt_marker(MARKER_UPDATED, r);
		spin(READ_ONCE(dwell));
	}
}

/*
 * A BPF_PROG_TEST_RUN-style caller: runs programs through the dispatcher in
 * an RCU read-side section it may be preempted in, and counts any call
 * that ran a program other than the one it passed.
 */
void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		u64 i = (n + cpu + arg) & (NPROGS - 1);
		unsigned long idx = rcu_read_lock();
		u64 ret = bpf_dispatcher_xdp_func((const void *)n, NULL, progs[i]);

		rcu_read_unlock(idx);
		if (ret != n * NPROGS + i)
			this_cpu_inc(dispatch_bad);
		sum += ret;
	}
	this_cpu_write(caller_sum, sum);
}

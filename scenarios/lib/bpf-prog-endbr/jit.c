// SPDX-License-Identifier: GPL-2.0
/*
 * jit.c - JIT-compiled programs run through a function pointer, on a CPU
 * with indirect branch tracking (quirks.ibt).
 *
 * CPU 0 is the JIT: for a number of rounds it emits a small program into
 * module_alloc() memory (while rw-, with ordinary stores), makes it r--
 * then r-x (bpf_jit_binary_lock_ro()) and publishes it as the program
 * CPUs 1-3 run: they call bpf_func(ctx) through the published pointer, as
 * the kernel runs a BPF program, an indirect call. Images are never
 * freed (the scenario is about where a call lands, not about freeing).
 *
 * Linux commit 589127105588 ("x86/ibt,bpf: Add ENDBR instructions to
 * prologue and trampoline") made emit_prologue() start every image with
 * ENDBR64 (EMIT_ENDBR()). Without it (pt_bpf_no_endbr.h) the image starts
 * with its first real instruction: on a CPU with IBT the first indirect
 * call into the first image raises #CP (missing ENDBRANCH); without IBT
 * nothing is wrong.
 *
 * The program: rax = ctx + round + 1 (mov %rdi,%rax; add $imm8,%rax;
 * ret), so the callers can check what they ran. Markers: 1 = an image is
 * published (value: the image), 2 = the JIT is done (value: rounds).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_PUBLISHED	1
#define MARKER_DONE		2

/* [params], written by the machine before boot. */
u64 rounds = 8;
u64 calls = 300;
u64 dwell = 300;

DEFINE_PER_CPU(u64, prog_runs);		/* programs run */
DEFINE_PER_CPU(u64, wrong_results);	/* a result no published program gives */
DEFINE_PER_CPU(u64, caller_sum);

/* prog->bpf_func: what the callers run, NULL until the first image. */
static u64 (*volatile bpf_func)(u64 ctx);

static u8 *emit(u8 *p, const u8 *insn, unsigned long len)
{
	memcpy(p, insn, len);
	return p + len;
}

/* do_jit(): the image of the program for round r. */
static void *jit_prog(u64 r)
{
	static const u8 mov_rdi_rax[] = { 0x48, 0x89, 0xf8 };
	u8 add_imm8_rax[] = { 0x48, 0x83, 0xc0, (u8)(r + 1) };
	static const u8 ret[] = { 0xc3 };
	u8 *image = module_alloc(64);
	u8 *p = image;

	if (!image)
		pt_bug(1);
#if !__has_include("pt_bpf_no_endbr.h")
	static const u8 endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };

	p = emit(p, endbr64, sizeof(endbr64));	/* emit_prologue(): EMIT_ENDBR() */
#endif
	p = emit(p, mov_rdi_rax, sizeof(mov_rdi_rax));
	p = emit(p, add_imm8_rax, sizeof(add_imm8_rax));
	p = emit(p, ret, sizeof(ret));

	/* bpf_jit_binary_lock_ro(): read-only first, then executable. */
	set_memory_ro((unsigned long)image, 1);
	set_memory_x((unsigned long)image, 1);
	return image;
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
		void *image = jit_prog(r);

		WRITE_ONCE(bpf_func, (u64 (*)(u64))image);
		pt_marker(MARKER_PUBLISHED, (unsigned long)image);
		spin(READ_ONCE(dwell));
	}
	pt_marker(MARKER_DONE, r);
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		u64 (*f)(u64) = READ_ONCE(bpf_func);
		u64 v;

		if (!f) {
			cpu_relax();
			continue;
		}
		v = f(n);
		this_cpu_inc(prog_runs);
		if (v <= n || v > n + READ_ONCE(rounds))
			this_cpu_inc(wrong_results);
		sum += v;
	}
	this_cpu_write(caller_sum, sum);
}

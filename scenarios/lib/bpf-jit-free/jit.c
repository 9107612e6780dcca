// SPDX-License-Identifier: GPL-2.0
/*
 * jit.c - a JIT image (a dynamic trampoline, as a BPF program's) retired
 * and freed the way Linux does since upstream commit d53d2f78cead ("bpf:
 * Use vmalloc special flag"): module_memfree() of the read-only,
 * executable image, whose permissions vmalloc resets as it unmaps the
 * pages (VM_FLUSH_RESET_PERMS), with no set_memory_rw() before it.
 *
 * Before that commit bpf_jit_binary_unlock_ro() made the image writable
 * with set_memory_rw() and only then freed it: set_memory_rw() leaves the
 * executable bit alone, so between the two the image was writable and
 * executable (bpf-jit-free-rw: a scenario that ships pt_bpf_jit_free_rw.h
 * builds free_image() that way). The machine's module_memfree() unmaps the
 * pages and shoots their translations down from every CPU's TLB at once,
 * which is what VM_FLUSH_RESET_PERMS gives the kernel.
 *
 * CPU 0 builds the image (rw-, filled with ordinary stores, then r-- and
 * r-x), points traced_fn's fentry site at it with text_poke_bp(), lets
 * CPUs 1-3 call traced_fn through it, turns the site back into a nop with
 * text_poke_bp(), waits until CPUs 1-3 have stopped calling (no CPU can
 * be inside the image then), and frees it.
 *
 * Markers: 1 = the call to the image is in place on every CPU, 4 = its
 * removal starts, 2 = the site is a nop again on every CPU, 3 = the image
 * was freed.
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_INSTALLED	1
#define MARKER_REMOVED		2
#define MARKER_FREED		3
#define MARKER_REMOVING		4

#define PAGE_SIZE		4096UL

/* [params], written by the machine before boot. */
u64 calls = 300;
u64 dwell = 4000;	/* pause loops between installing and removing */

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
	void *trampoline;
	unsigned long trampoline_size;
};

DEFINE_PER_CPU(u64, tracer_calls);	/* through tracer_ops */
DEFINE_PER_CPU(u64, tracer_bad_count);	/* wrong ip or ops */
DEFINE_PER_CPU(u64, caller_sum);
DEFINE_PER_CPU(u64, caller_done);	/* 1 once the CPU stopped calling */

u64 traced_fn(u64 x);			/* traced.fentry.c */

/* template.S */
extern const u8 ftrace_tramp_template[], ftrace_tramp_call[], ftrace_tramp_op[], ftrace_tramp_end[];

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs);

static struct ftrace_ops tracer_ops = { .func = tracer_func };

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs)
{
	if (ip != (unsigned long)traced_fn)
		this_cpu_inc(tracer_bad_count);
	if (op == &tracer_ops)
		this_cpu_inc(tracer_calls);
	else
		this_cpu_inc(tracer_bad_count);
}

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	long rel = (long)to - (long)from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)((unsigned long)rel >> (8 * i));
}

static void *create_image(struct ftrace_ops *ops)
{
	unsigned long size = ftrace_tramp_end - ftrace_tramp_template;
	unsigned long call_off = ftrace_tramp_call - ftrace_tramp_template;
	unsigned long op_off = ftrace_tramp_op - ftrace_tramp_template;
	unsigned long npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	u8 *image;

	image = module_alloc(size);
	if (!image)
		pt_bug(1);

	memcpy(image, ftrace_tramp_template, size);
	put_rel32(image + call_off + 1, (unsigned long)image + call_off + CALL_INSN_SIZE,
		  (unsigned long)ops->func);
	*(struct ftrace_ops **)(image + op_off) = ops;

	ops->trampoline = image;
	ops->trampoline_size = size;

	/* bpf_jit_binary_lock_ro(): read-only first, then executable. */
	set_memory_ro((unsigned long)image, npages);
	set_memory_x((unsigned long)image, npages);

	return image;
}

#if __has_include("pt_bpf_jit_free_rw.h")
/* bpf_jit_free(): bpf_jit_binary_unlock_ro(), then the free. */
static void free_image(struct ftrace_ops *ops)
{
	unsigned long npages = (ops->trampoline_size + PAGE_SIZE - 1) / PAGE_SIZE;

	set_memory_rw((unsigned long)ops->trampoline, npages);
	module_memfree(ops->trampoline);
	ops->trampoline = NULL;
}
#else
/* bpf_jit_free(): vfree() resets the permissions as it unmaps. */
static void free_image(struct ftrace_ops *ops)
{
	module_memfree(ops->trampoline);
	ops->trampoline = NULL;
}
#endif

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	void *site = (void *)traced_fn;
	void *skip = (u8 *)site + MCOUNT_INSN_SIZE;
	u8 call[CALL_INSN_SIZE];
	void *image;
	u64 cpu;

	image = create_image(&tracer_ops);

	call[0] = CALL_INSN_OPCODE;
	put_rel32(call + 1, (unsigned long)skip, (unsigned long)image);
	text_poke_bp(site, call, CALL_INSN_SIZE, skip);
	pt_marker(MARKER_INSTALLED, (unsigned long)image);

	spin(READ_ONCE(dwell));

	pt_marker(MARKER_REMOVING, (unsigned long)image);
	text_poke_bp(site, nop5, MCOUNT_INSN_SIZE, skip);
	pt_marker(MARKER_REMOVED, (unsigned long)image);

	/* No CPU is in the image once every caller has stopped calling. */
	for (cpu = 1; cpu < pt_ncpus; cpu++)
		while (!READ_ONCE(per_cpu(caller_done, cpu)))
			cpu_relax();

	free_image(&tracer_ops);
	pt_marker(MARKER_FREED, (unsigned long)image);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += traced_fn(cpu << 32 | n);

	/* Keeps the calls live, and lets a reader check every call returned. */
	this_cpu_write(caller_sum, sum);
	WRITE_ONCE(per_cpu(caller_done, cpu), 1);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * func.c - the library "dyn-tramp-func": switch the callback a live ftrace
 * trampoline calls by rewriting the trampoline's "call func" instruction
 * (x86's ftrace_update_ftrace_func() on ftrace_caller's ftrace_call site,
 * and on an ops' dynamic trampoline), while other CPUs run through it.
 *
 * CPU 0 builds a trampoline (lib/dyn-tramp's template) whose call goes to
 * tracer_func, points traced_fn's fentry site at it with text_poke_bp(),
 * then, round after round, turns the trampoline's call into "call
 * other_func" and back. CPUs 1-3 call traced_fn all along.
 *
 * Upstream commit 8a4d0a687a59 ("ftrace: Use breakpoint method to update
 * ftrace caller", v3.8): ftrace_update_ftrace_func() still changed the
 * call with a direct write of the five bytes; "If this is being executed
 * on another CPU, that CPU may take a GPF and crash the kernel". The fix
 * updates it like every call site, through the int3 protocol. A scenario
 * that has pt_dyn_tramp_direct.h selects the direct write (the bug);
 * without it the update is text_poke_bp(), whose int3 sends a CPU that
 * hits it past the call (the callback is skipped for that pass, as
 * ftrace_int3_handler() did: the contract does not require the callback
 * while an update is in progress, markers 2..3).
 *
 * Markers: 1 = the call to the trampoline is in place on every CPU
 * (value: the trampoline), 2 = an update of the trampoline's call begins,
 * 3 = it is done (value: the new callback).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_dyn_tramp_direct.h")
#include "pt_dyn_tramp_direct.h"
#endif

#define MARKER_INSTALLED	1
#define MARKER_UPDATE_BEGIN	2
#define MARKER_UPDATE_DONE	3

#define PAGE_SIZE		4096UL

/* [params], written by the machine before boot. */
u64 calls = 400;
u64 rounds = 6;
u64 dwell = 300;	/* pause loops between updates */

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
};

DEFINE_PER_CPU(u64, tracer_calls);
DEFINE_PER_CPU(u64, other_calls);
DEFINE_PER_CPU(u64, tracer_bad_count);	/* wrong ip or ops */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* lib/traced */

/* lib/dyn-tramp/template.S */
extern const u8 ftrace_tramp_template[], ftrace_tramp_call[], ftrace_tramp_op[], ftrace_tramp_end[];

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs);
void other_func(unsigned long ip, unsigned long parent_ip,
		struct ftrace_ops *op, struct pt_regs *regs);

static struct ftrace_ops tracer_ops = { .func = tracer_func };

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs)
{
	if (ip != (unsigned long)traced_fn || op != &tracer_ops)
		this_cpu_inc(tracer_bad_count);
	this_cpu_inc(tracer_calls);
}

void other_func(unsigned long ip, unsigned long parent_ip,
		struct ftrace_ops *op, struct pt_regs *regs)
{
	if (ip != (unsigned long)traced_fn || op != &tracer_ops)
		this_cpu_inc(tracer_bad_count);
	this_cpu_inc(other_calls);
}

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	long rel = (long)to - (long)from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)((unsigned long)rel >> (8 * i));
}

/* Built rw-, made r-- then r-x (dyn-tramp-ro's order): never W+X. */
static u8 *create_trampoline(struct ftrace_ops *ops)
{
	unsigned long size = ftrace_tramp_end - ftrace_tramp_template;
	unsigned long call_off = ftrace_tramp_call - ftrace_tramp_template;
	unsigned long op_off = ftrace_tramp_op - ftrace_tramp_template;
	unsigned long npages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	u8 *tramp;

	tramp = module_alloc(size);
	if (!tramp)
		pt_bug(1);
	memcpy(tramp, ftrace_tramp_template, size);
	put_rel32(tramp + call_off + 1, (unsigned long)tramp + call_off + CALL_INSN_SIZE,
		  (unsigned long)ops->func);
	*(struct ftrace_ops **)(tramp + op_off) = ops;
	set_memory_ro((unsigned long)tramp, npages);
	set_memory_x((unsigned long)tramp, npages);
	return tramp;
}

/*
 * ftrace_update_ftrace_func(): make the trampoline's call go to func. The
 * opcode stays E8; the rel32 changes. Through text_poke() either way (the
 * page is read-only): what differs is whether a CPU running the trampoline
 * can execute the five bytes while they change.
 */
static void update_ftrace_func(u8 *tramp, ftrace_func_t func)
{
	unsigned long call_off = ftrace_tramp_call - ftrace_tramp_template;
	u8 *ip = tramp + call_off;
	u8 call[CALL_INSN_SIZE];

	call[0] = CALL_INSN_OPCODE;
	put_rel32(call + 1, (unsigned long)ip + CALL_INSN_SIZE, (unsigned long)func);
#ifdef PT_DYN_TRAMP_DIRECT
	/* The bug: a direct write of the live instruction. */
	text_poke(ip, call, CALL_INSN_SIZE);
	sync_core_all();
#else
	text_poke_bp(ip, call, CALL_INSN_SIZE, ip + CALL_INSN_SIZE);
#endif
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	void *site = (void *)traced_fn;
	void *skip = (u8 *)site + MCOUNT_INSN_SIZE;
	u8 call[CALL_INSN_SIZE];
	u8 *tramp;
	u64 r;

	tramp = create_trampoline(&tracer_ops);

	call[0] = CALL_INSN_OPCODE;
	put_rel32(call + 1, (unsigned long)skip, (unsigned long)tramp);
	text_poke_bp(site, call, CALL_INSN_SIZE, skip);
	pt_marker(MARKER_INSTALLED, (unsigned long)tramp);

	for (r = 0; r < READ_ONCE(rounds); r++) {
		ftrace_func_t func = (r & 1) ? tracer_func : other_func;

		spin(READ_ONCE(dwell));
		pt_marker(MARKER_UPDATE_BEGIN, (unsigned long)func);
		update_ftrace_func(tramp, func);
		pt_marker(MARKER_UPDATE_DONE, (unsigned long)func);
	}
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += traced_fn(cpu << 32 | n);

	this_cpu_write(caller_sum, sum);
}

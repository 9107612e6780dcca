// SPDX-License-Identifier: GPL-2.0
/*
 * dyn.c - a dynamic ftrace trampoline created during boot, kept writable
 * (and updated with plain stores, as text_poke_early() does) until the end
 * of boot, and only then made read-only.
 *
 * Boot-time tracing (ftrace=function on the command line) creates its
 * trampolines before the kernel's text is read-only, and ftrace updates
 * code then with text_poke_early(): a memcpy() into the text. A trampoline
 * made read-only at creation faults on that memcpy() (the crash upstream
 * commit 59566b0b622e, "x86/ftrace: Have ftrace trampolines turn read-only
 * at the end of system boot up", fixes; dyn-tramp-boot-ro is that crash).
 * The fix, modelled here: while the system is booting, create_trampoline()
 * only makes the page executable (rwx, like the rest of the text at that
 * point); mark_rodata_ro() at the end of boot makes every boot-time
 * trampoline read-only (set_ftrace_ops_ro()), and from then on only
 * text_poke() changes it, through its writable alias. A scenario that
 * ships pt_dyn_tramp_boot_ro.h builds create_trampoline() as it was before
 * that commit, read-only at creation, booting or not (dyn-tramp-boot-ro):
 * the boot CPU's memcpy() that switches the trampoline to tracer_ops takes
 * a #PF (a write to a present, read-only page) and the boot dies there.
 *
 * CPU 0 is the boot CPU: it creates the trampoline for other_ops, points
 * traced_fn's fentry site at it with text_poke_bp(), calls traced_fn
 * itself, switches the trampoline to tracer_ops with a plain memcpy()
 * (text_poke_early()), lets CPUs 1-3 come up and call traced_fn through
 * it, ends boot (set_ftrace_ops_ro(), marker 3), and later switches the
 * trampoline back to other_ops with text_poke(). The wx analyzer holds the
 * run to the kernel's boot-time rule until marker 3
 * (contract.boot_until_marker): nothing may be writable and executable
 * after it, and nothing is at it.
 *
 * Markers: 1 = the call to the trampoline is in place on every CPU,
 * 3 = the end of boot (mark_rodata_ro()), 2 = the trampoline's ops pointer
 * was switched back to other_ops with text_poke().
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_INSTALLED	1
#define MARKER_OPS_SWITCHED	2
#define MARKER_BOOT_DONE	3

#define PAGE_SIZE		4096UL

/* [params], written by the machine before boot. */
u64 calls = 600;
u64 boot_calls = 20;	/* calls the boot CPU makes through the trampoline */
u64 dwell = 4000;	/* pause loops between the steps of the patcher */

/* SYSTEM_BOOTING until mark_rodata_ro(); CPUs 1-3 wait for smp_up. */
static bool system_booting = true;
static bool smp_up;

struct ftrace_ops;
typedef void (*ftrace_func_t)(unsigned long ip, unsigned long parent_ip,
			      struct ftrace_ops *op, struct pt_regs *regs);

struct ftrace_ops {
	ftrace_func_t func;
	void *trampoline;
	unsigned long trampoline_size;
};

DEFINE_PER_CPU(u64, tracer_calls);	/* through tracer_ops */
DEFINE_PER_CPU(u64, other_calls);	/* through other_ops */
DEFINE_PER_CPU(u64, tracer_bad_count);	/* wrong ip or ops */
DEFINE_PER_CPU(u64, caller_sum);

u64 traced_fn(u64 x);			/* traced.fentry.c */

/* template.S */
extern const u8 ftrace_tramp_template[], ftrace_tramp_call[], ftrace_tramp_op[], ftrace_tramp_end[];

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs);

static struct ftrace_ops tracer_ops = { .func = tracer_func };
static struct ftrace_ops other_ops = { .func = tracer_func };

void tracer_func(unsigned long ip, unsigned long parent_ip,
		 struct ftrace_ops *op, struct pt_regs *regs)
{
	if (ip != (unsigned long)traced_fn)
		this_cpu_inc(tracer_bad_count);
	if (op == &tracer_ops)
		this_cpu_inc(tracer_calls);
	else if (op == &other_ops)
		this_cpu_inc(other_calls);
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

static void *create_trampoline(struct ftrace_ops *ops)
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

	ops->trampoline = tramp;
	ops->trampoline_size = size;

#if __has_include("pt_dyn_tramp_boot_ro.h")
	/* Read-only first, then executable: booting or not. */
	set_memory_ro((unsigned long)tramp, npages);
#else
	/*
	 * While booting, ftrace still writes code with text_poke_early():
	 * leave the page writable, set_ftrace_ops_ro() makes it read-only at
	 * the end of boot. Afterwards, read-only first, then executable.
	 */
	if (!READ_ONCE(system_booting))
		set_memory_ro((unsigned long)tramp, npages);
#endif
	set_memory_x((unsigned long)tramp, npages);

	return tramp;
}

/*
 * Point the trampoline at ops: ftrace_modify_code_direct()'s choice. During
 * boot text_poke_early(), a memcpy() into the page; afterwards text_poke()
 * through its alias. The pointer is an aligned word the trampoline loads.
 */
static void trampoline_set_ops(void *tramp, struct ftrace_ops *ops)
{
	unsigned long op_off = ftrace_tramp_op - ftrace_tramp_template;

	if (READ_ONCE(system_booting))
		memcpy((u8 *)tramp + op_off, &ops, sizeof(ops));
	else
		text_poke((u8 *)tramp + op_off, &ops, sizeof(ops));
}

/* mark_rodata_ro()'s call: every boot-time trampoline becomes read-only. */
static void set_ftrace_ops_ro(struct ftrace_ops *ops)
{
	unsigned long npages = (ops->trampoline_size + PAGE_SIZE - 1) / PAGE_SIZE;

	if (ops->trampoline)
		set_memory_ro((unsigned long)ops->trampoline, npages);
}

static void mark_rodata_ro(void)
{
	set_ftrace_ops_ro(&other_ops);
	WRITE_ONCE(system_booting, false);
	pt_marker(MARKER_BOOT_DONE, 0);
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
	void *tramp;
	u64 n, sum = 0;

	tramp = create_trampoline(&other_ops);

	call[0] = CALL_INSN_OPCODE;
	put_rel32(call + 1, (unsigned long)skip, (unsigned long)tramp);
	text_poke_bp(site, call, CALL_INSN_SIZE, skip);
	pt_marker(MARKER_INSTALLED, (unsigned long)tramp);

	/* Boot-time tracing: the boot CPU runs traced code. */
	for (n = 0; n < READ_ONCE(boot_calls); n++)
		sum += traced_fn(n);
	trampoline_set_ops(tramp, &tracer_ops);
	for (n = 0; n < READ_ONCE(boot_calls); n++)
		sum += traced_fn(n);
	this_cpu_write(caller_sum, sum);

	/* smp_init(): the other CPUs come up, still during boot. */
	WRITE_ONCE(smp_up, true);
	spin(READ_ONCE(dwell));

	mark_rodata_ro();
	spin(READ_ONCE(dwell));

	trampoline_set_ops(tramp, &other_ops);
	pt_marker(MARKER_OPS_SWITCHED, (unsigned long)tramp);
}

void caller_main(unsigned long arg)
{
	u64 cpu = smp_processor_id();
	u64 sum = 0;
	u64 n;

	while (!READ_ONCE(smp_up))
		cpu_relax();
	for (n = 0; n < READ_ONCE(calls); n++)
		sum += traced_fn(cpu << 32 | n);

	/* Keeps the calls live, and lets a reader check every call returned. */
	this_cpu_write(caller_sum, sum);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * sleep.c - retiring a BPF trampoline image whose original function can
 * sleep, the class of Linux commit e21aa341785c ("bpf: Fix fexit
 * trampoline.", 2021): "The fexit/fmod_ret programs can be attached to
 * kernel functions that can sleep. The synchronize_rcu_tasks() will not
 * wait for such tasks to complete."
 *
 * synchronize_rcu_tasks() waits for every task to pass a voluntary
 * context switch, or to be off the run queue: a task blocked in the
 * original function, which the trampoline called, is quiescent at once,
 * with its return address into the image on its stack. Since the fix the
 * image carries a reference (percpu_ref) that the trampoline takes before
 * calling the original function and drops after it returns; the image is
 * freed only after a tasks grace period (every task that entered has the
 * reference or has left), the reference dropping to zero (no task is in
 * the original function below it), and another tasks grace period (no
 * task is left in the few instructions after the drop). A scenario that
 * ships pt_bpf_tramp_noref.h frees the image after one grace period, as
 * before the fix, and its image takes no reference.
 *
 * CPU 0's freer builds the image in module_alloc() memory (rw-, filled
 * in, then r--, then r-x) and publishes it in tramp_fn (standing for the
 * traced function's patched fentry site); the workers of CPUs 1 and 2
 * call through it in a loop. The call numbered sleep_at blocks in the
 * original function (sleepy_fn) for nap loops: off the run queue, which
 * synchronize_rcu_tasks() takes for quiescent. Once a worker is asleep
 * and the programs have run `calls` times, the freer unpublishes the
 * image, syncs every CPU and retires it.
 *
 * Markers: 1 image published (value: its address), 2 unpublished,
 * 3 freed.
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_bpf_tramp_noref.h")
#define BPF_TRAMP_NOREF 1
#else
#define BPF_TRAMP_NOREF 0
#endif

#define MARKER_PUBLISHED	1
#define MARKER_UNPUBLISHED	2
#define MARKER_FREED		3

/* [params] */
u64 calls = 40;		/* program runs before the image is retired */
u64 sleep_at = 5;	/* the call of sleepy_fn that blocks */
u64 nap = 4000;		/* pause loops it stays blocked */

extern const u8 tramp_template[], tramp_template_end[];

static u64 (*tramp_fn)(u64);			/* the published image, or NULL */
static unsigned long prog_runs, orig_calls, asleep;
static unsigned long image_ref;			/* the image's percpu_ref */
static unsigned long task_qs[PT_MAX_TASKS + 1];	/* voluntary switches, by task id */
static unsigned long task_off_rq[PT_MAX_TASKS + 1];	/* blocked */
static unsigned long task_gone[PT_MAX_TASKS + 1];	/* exited */
DEFINE_PER_CPU(u64, fexit_runs);
DEFINE_PER_CPU(u64, naps);

static inline void atomic_long_dec(unsigned long *p)
{
	asm volatile("lock decq %0" : "+m"(*p) :: "memory", "cc");
}

static inline unsigned long atomic_long_inc_return(unsigned long *p)
{
	unsigned long v = 1;

	asm volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*p) :: "memory", "cc");
	return v + 1;
}

void fentry_prog(u64 arg)
{
	atomic_long_inc(&prog_runs);
}

void fexit_prog(u64 ret)
{
	this_cpu_inc(fexit_runs);
}

void bpf_tramp_enter(void)
{
	atomic_long_inc(&image_ref);
}

void bpf_tramp_exit(void)
{
	atomic_long_dec(&image_ref);
}

/*
 * The original function: x + 1, and for one call a sleep (a wait in
 * schedule(): a voluntary context switch, the task off the run queue
 * until it is woken).
 */
u64 sleepy_fn(u64 x)
{
	if (atomic_long_inc_return(&orig_calls) == READ_ONCE(sleep_at)) {
		unsigned long self = current->id;

		atomic_long_inc(&task_qs[self]);
		WRITE_ONCE(task_off_rq[self], 1);
		WRITE_ONCE(asleep, 1);
		for (u64 i = 0; i < READ_ONCE(nap); i++)
			cpu_relax();
		WRITE_ONCE(task_off_rq[self], 0);
		this_cpu_inc(naps);
	}
	return x + 1;
}

/* A voluntary context switch: the task holds no trampoline. */
static void rcu_tasks_qs(void)
{
	atomic_long_inc(&task_qs[current->id]);
}

/*
 * Wait until every other task has passed rcu_tasks_qs() since the call,
 * is off the run queue (blocked), or has exited: a task switched out or
 * running inside the image does none of these until it has left it.
 */
static void synchronize_rcu_tasks(void)
{
	static unsigned long snap[PT_MAX_TASKS + 1];
	unsigned long i, n = pt_boot_ntasks, self = current->id;

	for (i = 1; i <= n; i++)
		snap[i] = READ_ONCE(task_qs[i]);
	for (i = 1; i <= n; i++) {
		if (i == self)
			continue;
		while (READ_ONCE(task_qs[i]) == snap[i] && !READ_ONCE(task_off_rq[i]) &&
		       !READ_ONCE(task_gone[i]))
			cpu_relax();
	}
}

static void *create_image(void)
{
	unsigned long size = tramp_template_end - tramp_template;
	u8 *image = module_alloc(size);

	if (!image)
		pt_bug(1);
	memcpy(image, tramp_template, size);
	set_memory_ro((unsigned long)image, 1);
	set_memory_x((unsigned long)image, 1);
	return image;
}

/* bpf_tramp_image_put(): retire an image no one can enter any more. */
static void image_put(void *image)
{
	synchronize_rcu_tasks();
	if (!BPF_TRAMP_NOREF) {
		/* percpu_ref_kill(): wait for the tasks below the image */
		while (READ_ONCE(image_ref))
			cpu_relax();
		/* and for those still in its last instructions */
		synchronize_rcu_tasks();
	}
	module_memfree(image);
}

void freer_main(unsigned long arg)
{
	void *image = create_image();

	WRITE_ONCE(tramp_fn, (u64 (*)(u64))image);
	pt_marker(MARKER_PUBLISHED, (unsigned long)image);
	while (READ_ONCE(prog_runs) < calls || !READ_ONCE(asleep))
		cpu_relax();

	WRITE_ONCE(tramp_fn, NULL);
	pt_marker(MARKER_UNPUBLISHED, 0);
	sync_core_all();
	image_put(image);
	pt_marker(MARKER_FREED, (unsigned long)image);
}

void worker_main(unsigned long arg)
{
	u64 sum = 0;

	for (;;) {
		u64 (*fn)(u64);

		rcu_tasks_qs();
		fn = READ_ONCE(tramp_fn);
		if (!fn) {
			if (READ_ONCE(prog_runs) >= calls && READ_ONCE(asleep))
				break;
			cpu_relax();	/* not published yet */
			continue;
		}
		sum += fn(sum);
	}
	WRITE_ONCE(task_gone[current->id], 1);
}

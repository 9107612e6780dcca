// SPDX-License-Identifier: GPL-2.0
/*
 * free.c - freeing a dynamic trampoline that tasks run through, the way
 * Linux frees a dynamic ftrace trampoline (commit 0598e4f08e3d, "ftrace:
 * Add use of synchronize_rcu_tasks() with dynamic trampolines": "a task
 * could be indefinitely preempted while sitting on the trampoline").
 *
 * CPU 0's freer builds a trampoline in module_alloc() memory (rw-, filled
 * in, then r--, then r-x), publishes it in tramp_fn, lets the worker tasks
 * of CPU 1 call through it until tramp_handler has run `calls` times,
 * unpublishes it and frees it with module_memfree().
 *
 * Before the free it must know that no task can still be on the
 * trampoline. Unpublishing stops new entries; a task that entered before
 * may still be in it. An IPI to every CPU (sync_core_all(), what
 * synchronize_rcu() would give) only shows that every CPU passed an
 * interrupt boundary: a task preempted inside tramp_handler, with its
 * return address into the trampoline on its stack, is switched out and
 * not on any CPU. synchronize_rcu_tasks() waits instead until every task
 * has passed a point where it holds no reference to the trampoline: here
 * rcu_tasks_qs(), which the workers pass at the top of their loop, before
 * they load tramp_fn (the kernel's voluntary context switch), or has
 * exited.
 *
 * A worker that sees the trampoline unpublished lingers (other work) and
 * exits; until then the other worker, if preempted in the handler, stays
 * switched out (no timer preempts the lingering one).
 *
 * tramp_free_nowait.h in the scenario selects the IPI alone. Markers:
 * 1 trampoline published (value: its address), 2 unpublished, 3 freed.
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("tramp_free_nowait.h")
#define TRAMP_FREE_NOWAIT 1
#else
#define TRAMP_FREE_NOWAIT 0
#endif

#define MARKER_PUBLISHED	1
#define MARKER_UNPUBLISHED	2
#define MARKER_FREED		3

#define PAGE_SIZE		4096UL

/* [params] */
u64 calls = 40;		/* handler runs before the trampoline is retired */
u64 dwell = 20;		/* pause loops in the handler */
u64 linger = 20000;	/* pause loops a worker spends after the trampoline is gone */

extern const u8 tramp_template[], tramp_template_end[];

static void (*tramp_fn)(void);		/* the published trampoline, or NULL */
static unsigned long handler_calls;
static unsigned long task_qs[PT_MAX_TASKS + 1];	/* rcu_tasks_qs() passes, by task id */
static unsigned long task_gone[PT_MAX_TASKS + 1];	/* the worker has exited */
DEFINE_PER_CPU(u64, tramp_calls);

void tramp_handler(void)
{
	u64 i;

	atomic_long_inc(&handler_calls);
	this_cpu_inc(tramp_calls);
	for (i = 0; i < dwell; i++)
		cpu_relax();
}

/* A point where the task holds no reference to any trampoline. */
static void rcu_tasks_qs(void)
{
	atomic_long_inc(&task_qs[current->id]);
}

/*
 * Wait until every other task has passed rcu_tasks_qs() since the call,
 * or has exited: a task switched out inside the trampoline does neither
 * until it has left it.
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
		while (READ_ONCE(task_qs[i]) == snap[i] && !READ_ONCE(task_gone[i]))
			cpu_relax();
	}
}

static void *create_trampoline(void)
{
	unsigned long size = tramp_template_end - tramp_template;
	u8 *tramp = module_alloc(size);

	if (!tramp)
		pt_bug(1);
	memcpy(tramp, tramp_template, size);
	set_memory_ro((unsigned long)tramp, 1);
	set_memory_x((unsigned long)tramp, 1);
	return tramp;
}

void freer_main(unsigned long arg)
{
	void *tramp = create_trampoline();

	WRITE_ONCE(tramp_fn, (void (*)(void))tramp);
	pt_marker(MARKER_PUBLISHED, (unsigned long)tramp);
	while (READ_ONCE(handler_calls) < calls)
		cpu_relax();

	WRITE_ONCE(tramp_fn, NULL);
	pt_marker(MARKER_UNPUBLISHED, 0);
	sync_core_all();
	if (!TRAMP_FREE_NOWAIT)
		synchronize_rcu_tasks();
	module_memfree(tramp);
	pt_marker(MARKER_FREED, (unsigned long)tramp);
}

void worker_main(unsigned long arg)
{
	for (;;) {
		void (*fn)(void);

		rcu_tasks_qs();
		fn = READ_ONCE(tramp_fn);
		if (!fn) {
			if (READ_ONCE(handler_calls) >= calls)
				break;
			cpu_relax();	/* not published yet */
			continue;
		}
		fn();
	}
	/* Other work, long enough for the freer to finish meanwhile. */
	for (u64 i = 0; i < linger; i++)
		cpu_relax();
	WRITE_ONCE(task_gone[current->id], 1);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * sched.c - boot and a tiny preemptive scheduler.
 *
 * Each CPU runs the tasks the scenario gave it (pt_boot_tasks) round-robin,
 * on their own stacks. Nothing migrates and nothing sleeps: a task runs
 * until it is preempted on IRQ exit (when another task on its CPU is
 * runnable) or until it returns from its entry function. The CPU's boot
 * context is its idle task (id 0): it runs only when no task is runnable,
 * reports pt_cpu_done() once everything has exited, and then halts with
 * interrupts on, so it still answers the patcher's sync IPIs.
 *
 * Run queues are only ever touched by their own CPU with IRQs off, so they
 * need no locks.
 */
#include "slice.h"
#include "percpu.h"

DEFINE_PER_CPU(unsigned long, cpu_number);
/* Filled by the emulator at boot: this CPU's per-CPU area (this_cpu_ptr). */
DEFINE_PER_CPU(unsigned long, this_cpu_off);
/* Read by the machine at delivery to find IST stacks (slot 0 unused). */
DEFINE_PER_CPU(unsigned long, cpu_tss_ist[N_IST]);
DEFINE_PER_CPU(void *, current_task);
DEFINE_PER_CPU(int, preempt_count);
DEFINE_PER_CPU(unsigned long, need_resched);

/* Written by the machine before the first instruction. */
u64 pt_ncpus = 1;
u64 pt_boot_ntasks;
struct pt_boot_task pt_boot_tasks[PT_MAX_TASKS];

struct rq {
	struct task *tasks[TASKS_PER_CPU];
	int nr;			/* tasks ever created here */
	int nr_running;		/* not yet exited */
	int last;		/* index of the task that ran last */
};

static struct rq runqueues[NR_CPUS];
static struct task idle_tasks[NR_CPUS];
static struct task tasks[PT_MAX_TASKS];
static u8 task_stacks[PT_MAX_TASKS][THREAD_SIZE] __aligned(4096);
static u8 df_stacks[NR_CPUS][IST_STACK_SIZE] __aligned(4096);
static u8 nmi_stacks[NR_CPUS][IST_STACK_SIZE] __aligned(4096);
static unsigned long cpus_booted;

void switch_to(struct task *prev, struct task *next);	/* entry.S */
void ret_from_fork(void);				/* entry.S */

unsigned long smp_processor_id(void)
{
	return this_cpu_read(cpu_number);
}

struct task *get_current(void)
{
	return this_cpu_read(current_task);
}

static struct rq *this_rq(void)
{
	return &runqueues[smp_processor_id()];
}

/*
 * Round-robin: the first runnable task after the one that ran last, the
 * last one itself if it is the only one, else the idle task.
 */
static struct task *pick_next_task(struct rq *rq)
{
	int i, idx;

	for (i = 1; i <= rq->nr; i++) {
		idx = rq->last + i;
		if (idx >= rq->nr)	/* no '%': the machine has no DIV */
			idx -= rq->nr;
		if (rq->tasks[idx]->state == TASK_RUNNING) {
			rq->last = idx;
			return rq->tasks[idx];
		}
	}
	return &idle_tasks[smp_processor_id()];
}

/* Must be called with IRQs off; returns with IRQs off. */
void schedule(void)
{
	struct task *prev = current;
	struct task *next;

	this_cpu_write(need_resched, 0);
	next = pick_next_task(this_rq());
	if (next == prev)
		return;

	this_cpu_write(current_task, next);
	pt_switch(prev->id, next->id);
	switch_to(prev, next);
}

/*
 * Kernel preemption from the IRQ exit path (preempt_schedule_irq()): the
 * interrupted task's registers stay in its pt_regs until it is picked
 * again and the IRQ stub IRETQs back into it.
 */
void preempt_schedule_irq(void)
{
	do {
		schedule();
	} while (this_cpu_read(need_resched));
}

void preempt_disable(void)
{
	this_cpu_inc(preempt_count);
	barrier();
}

/* A preemption held off by preempt_disable() happens here instead. */
void preempt_enable(void)
{
	unsigned long flags;

	barrier();
	this_cpu_dec(preempt_count);
	if (this_cpu_read(preempt_count) || !this_cpu_read(need_resched))
		return;
	flags = local_irq_save();
	if (flags & X86_EFLAGS_IF)
		preempt_schedule_irq();
	local_irq_restore(flags);
}

/*
 * Called by the IRQ stubs after the handler: preempt if the interrupted
 * context could have been interrupted anyway (IF set, not in a
 * preempt_disable() section) and someone asked for it.
 */
void irqentry_exit(struct pt_regs *regs)
{
	if (!(regs->flags & X86_EFLAGS_IF))
		return;
	if (this_cpu_read(preempt_count) || !this_cpu_read(need_resched))
		return;
	preempt_schedule_irq();
}

/* Ask for a switch at the next IRQ exit if anyone else could run. */
void resched_curr(void)
{
	struct rq *rq = this_rq();
	struct task *curr = current;
	int running = rq->nr_running;

	if (curr->id != 0 && curr->state == TASK_RUNNING)
		running--;
	if (running > 0)
		this_cpu_write(need_resched, 1);
}

__noreturn void task_exit(void)
{
	struct task *curr = current;

	local_irq_disable();
	curr->state = TASK_DEAD;
	this_rq()->nr_running--;
	schedule();
	/* A dead task is never picked again. */
	panic("task_exit: dead task scheduled");
}

/*
 * Lay out a new task's stack as switch_to() leaves a switched-out one, so
 * that the first switch to it pops entry and arg into %rbx/%r12 and
 * "returns" to ret_from_fork. The top 16 bytes stay zero: the end of the
 * stack for anyone walking it.
 */
static void task_create(struct task *t, u8 *stack, const struct pt_boot_task *bt)
{
	unsigned long *sp = (unsigned long *)(stack + THREAD_SIZE - 16);

	*--sp = (unsigned long)ret_from_fork;
	*--sp = 0;			/* rbp */
	*--sp = bt->entry;		/* rbx */
	*--sp = bt->arg;		/* r12 */
	*--sp = 0;			/* r13 */
	*--sp = 0;			/* r14 */
	*--sp = 0;			/* r15 */
	t->sp = (unsigned long)sp;
	t->id = bt->id;
	t->cpu = bt->cpu;
	t->state = TASK_RUNNING;
}

static __noreturn void cpu_idle(void)
{
	struct rq *rq = this_rq();
	bool reported = false;

	for (;;) {
		local_irq_disable();
		if (rq->nr_running)
			schedule();
		if (!rq->nr_running && !reported) {
			reported = true;
			pt_cpu_done();
		}
		safe_halt();
	}
}

/* pt_start (head.S) calls this on the boot stack with IRQs off. */
__noreturn void start_cpu(unsigned long cpu, unsigned long ncpus)
{
	struct task *idle;
	struct rq *rq;
	unsigned long i;

	/* IST stacks first: an NMI may be injected as early as the machine likes. */
	this_cpu_write(cpu_tss_ist[IST_DF], (unsigned long)(df_stacks[cpu] + IST_STACK_SIZE));
	this_cpu_write(cpu_tss_ist[IST_NMI], (unsigned long)(nmi_stacks[cpu] + IST_STACK_SIZE));
	this_cpu_write(nmi_stack_top, (unsigned long)(nmi_stacks[cpu] + IST_STACK_SIZE));
	this_cpu_write(cpu_number, cpu);
	if (cpu >= NR_CPUS)
		panic("start_cpu: cpu >= NR_CPUS");

	idle = &idle_tasks[cpu];
	idle->id = 0;
	idle->cpu = cpu;
	idle->state = TASK_RUNNING;
	this_cpu_write(current_task, idle);

	/* Tasks keep their index in pt_boot_tasks: same stack every run. */
	if (pt_boot_ntasks > PT_MAX_TASKS)
		panic("start_cpu: too many boot tasks");
	rq = &runqueues[cpu];
	for (i = 0; i < pt_boot_ntasks; i++) {
		if (pt_boot_tasks[i].cpu != cpu)
			continue;
		if (rq->nr == TASKS_PER_CPU)
			panic("start_cpu: too many tasks on one CPU");
		task_create(&tasks[i], task_stacks[i], &pt_boot_tasks[i]);
		rq->tasks[rq->nr++] = &tasks[i];
	}
	rq->nr_running = rq->nr;
	rq->last = rq->nr - 1;		/* so the first pick is tasks[0] */

	/*
	 * Start the workloads together: without this, the first CPU the
	 * machine happens to step could finish its tasks before another CPU
	 * has booted.
	 */
	asm volatile("lock incq %0" : "+m"(cpus_booted) :: "memory", "cc");
	while (READ_ONCE(cpus_booted) < ncpus)
		cpu_relax();

	cpu_idle();
}

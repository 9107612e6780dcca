// SPDX-License-Identifier: GPL-2.0
/*
 * alternative.c - text_poke_bp() and the core sync it depends on, following
 * "x86: introduce int3-based instruction patching" (seed 003).
 */
#include "slice.h"
#include "percpu.h"

/*
 * The sync IPI's acknowledgements. One sync at a time: call_function_lock
 * serializes senders (the kernel queues per-CPU call_single_data instead).
 */
static unsigned long call_function_lock;
static unsigned long sync_acks;

static void *bp_int3_handler, *bp_int3_addr;
static bool bp_patching_in_progress;

/* Only one text_poke_bp() at a time (the kernel's text_mutex). */
static unsigned long text_mutex;

static void spin_lock(unsigned long *lock)
{
	/* Spin with IRQs as the caller has them: on, so we still ack syncs. */
	while (xchg(lock, 1))
		cpu_relax();
}

static void spin_unlock(unsigned long *lock)
{
	barrier();
	WRITE_ONCE(*lock, 0);
}

/* CALL_FUNCTION_VECTOR: the only function ever called is do_sync_core(). */
void do_call_function(struct pt_regs *regs)
{
	sync_core();
	atomic_long_inc(&sync_acks);
}

/*
 * on_each_cpu(do_sync_core, NULL, 1): serialize every CPU and wait until
 * all have. After this returns, no CPU can still execute a decode of the
 * text as it was before the call. Must be called with IRQs on: two CPUs
 * syncing at once each wait for the other to take the IPI.
 */
void sync_core_all(void)
{
	unsigned long others = pt_ncpus - 1;

	preempt_disable();
	spin_lock(&call_function_lock);
	WRITE_ONCE(sync_acks, 0);
	smp_wmb();
	pt_send_ipi(IPI_ALL_BUT_SELF, CALL_FUNCTION_VECTOR);
	sync_core();
	while (READ_ONCE(sync_acks) < others)
		cpu_relax();
	spin_unlock(&call_function_lock);
	preempt_enable();
}

/*
 * The int3 half of text_poke_bp(), called first from do_int3(). The int3 a
 * CPU hit is ours if patching is in progress and it sits at the address
 * being patched; the CPU then continues at the handler (for nop <-> call
 * or jmp, "as if the old nop had been there": the end of the site).
 *
 * #BP is an interrupt gate, so a CPU in here holds off the patcher's final
 * sync until it has finished: bp_patching_in_progress cannot be cleared
 * under its feet.
 */
int poke_int3_handler(struct pt_regs *regs)
{
	/* Pairs with the smp_wmb() in text_poke_bp(). */
	smp_rmb();
	if (likely(!READ_ONCE(bp_patching_in_progress)))
		return 0;
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)READ_ONCE(bp_int3_addr))
		return 0;
	regs->ip = (unsigned long)READ_ONCE(bp_int3_handler);
	return 1;
}

/*
 * text_poke_bp() - update one instruction on a live SMP machine
 * @addr:    the instruction to patch
 * @opcode:  its replacement
 * @len:     length of the replacement
 * @handler: where a CPU that hits the temporary int3 continues
 *
 * - put an int3 on the first byte, sync cores
 * - write all but the first byte, sync cores
 * - replace the int3 with the new first byte, sync cores
 *
 * Between the first and the last sync, a CPU either runs the old
 * instruction, or traps on the int3 and is sent to @handler: it never runs
 * a mix of old and new bytes.
 */
void *text_poke_bp(void *addr, const void *opcode, size_t len, void *handler)
{
	unsigned char int3 = INT3_INSN_OPCODE;

	spin_lock(&text_mutex);

	WRITE_ONCE(bp_int3_handler, handler);
	WRITE_ONCE(bp_int3_addr, addr);
	WRITE_ONCE(bp_patching_in_progress, true);
	/*
	 * The handler and address must be visible before the int3 is: a CPU
	 * that sees the int3 must find them (poke_int3_handler()'s smp_rmb()).
	 */
	smp_wmb();

	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	if (len > INT3_INSN_SIZE) {
		text_poke((u8 *)addr + INT3_INSN_SIZE,
			  (const u8 *)opcode + INT3_INSN_SIZE,
			  len - INT3_INSN_SIZE);
		/*
		 * Intel says this sync is not needed, as the one after the
		 * first byte covers it; the seed keeps it to be safe on other
		 * hardware, and so do we.
		 */
		sync_core_all();
	}

	text_poke(addr, opcode, INT3_INSN_SIZE);
	sync_core_all();

	/* Every CPU has serialized: none can still see the int3. */
	WRITE_ONCE(bp_patching_in_progress, false);
	smp_wmb();

	spin_unlock(&text_mutex);
	return addr;
}

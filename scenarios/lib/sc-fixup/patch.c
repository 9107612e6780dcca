// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - static_call_update() and a module loader's
 * __static_call_fixup(), both rewriting text, and commit c27c753ea6fd
 * ("x86/static_call: Serialize __static_call_fixup() properly", Thomas
 * Gleixner, 2022).
 *
 * text_poke_bp() publishes the sites it patches in one descriptor for the
 * int3 handler (bp_desc, the static object of commit efd608fa7403), so
 * only one text_poke_bp() may run at a time: its callers hold text_mutex.
 * __static_call_fixup(), which apply_returns() calls at module load to
 * turn a module's static call trampoline from "jmp __x86_return_thunk"
 * into a plain ret, called __static_call_transform() and with it
 * text_poke_bp() without text_mutex. Running while static_call_update()
 * patches a live site on another CPU, it overwrites the descriptor that
 * live site's int3 handler needs:
 *
 *	CPU 0 static_call_update()	CPU 3 module load	CPU 1
 *	bp_desc = { sc_site }
 *	int3 at sc_site
 *					bp_desc = { tramp }
 *								int3 at sc_site:
 *								not in bp_desc: oops
 *
 * The fix takes text_mutex around the fixup and, as the module's text is
 * not live yet, writes it with text_poke_early() (a plain copy into the
 * module's still writable text) instead of text_poke_bp(). A scenario
 * that ships pt_fixup_nolock.h builds the version before the fix.
 *
 * CPU 0 flips sc_site between "call sc_func_a" and "call sc_func_b";
 * CPUs 1 and 2 call sc_caller() all along; CPU 3 loads modules, each with
 * one static call trampoline to fix up.
 *
 * Markers: 1 = a module is loaded (value: its number).
 */
#include "slice.h"
#include "percpu.h"

#define noinline		__attribute__((noinline))

#define MARKER_MODULE		1
#define RET_INSN_OPCODE		0xc3
#define JMP32_INSN_OPCODE	0xe9

/* [params], written by the machine before boot. */
u64 rounds = 30;
u64 calls = 300;
u64 modules = 10;
u64 dwell = 200;

DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, caller_sum);
DEFINE_PER_CPU(u64, modules_loaded);

u64 sc_caller(u64 x);			/* site.S */
u64 sc_func_a(u64 x);
u64 sc_func_b(u64 x);
void return_thunk(void);
extern u8 sc_site[], mod_tramp_template[], mod_tramp_template_end[];

struct text_poke_loc {
	unsigned long addr;
	int len;
	u8 opcode;
	u8 text[8];
};

struct bp_patching_desc {
	struct text_poke_loc *vec;
	int nr_entries;
	int refs;
};

static struct bp_patching_desc bp_desc;
static unsigned long text_mutex;

static void mutex_lock(unsigned long *lock)
{
	while (xchg(lock, 1))
		cpu_relax();
}

static void mutex_unlock(unsigned long *lock)
{
	barrier();
	WRITE_ONCE(*lock, 0);
}

static inline void atomic_dec(int *p)
{
	asm volatile("lock decl %0" : "+m"(*p) :: "memory", "cc");
}

static inline bool atomic_dec_and_test(int *p)
{
	bool zero;

	asm volatile("lock decl %0; sete %1" : "+m"(*p), "=qm"(zero) :: "memory", "cc");
	return zero;
}

static inline int atomic_cmpxchg(int *p, int old, int new)
{
	asm volatile("lock cmpxchgl %2, %1" : "+a"(old), "+m"(*p) : "r"(new) : "memory", "cc");
	return old;
}

static bool try_get_desc(void)
{
	int c = READ_ONCE(bp_desc.refs);

	for (;;) {
		int old;

		if (!c)
			return false;
		old = atomic_cmpxchg(&bp_desc.refs, c, c + 1);
		if (old == c)
			return true;
		c = old;
	}
}

static void put_desc(void)
{
	smp_mb();
	atomic_dec(&bp_desc.refs);
}

/* poke_int3_handler(): emulate the instruction being written, if ours. */
int int3_hook(struct pt_regs *regs)
{
	struct text_poke_loc *tp = NULL;
	unsigned long ip;
	int i, ret = 0;

	smp_rmb();
	if (!try_get_desc())
		return 0;

	ip = regs->ip - INT3_INSN_SIZE;
	for (i = 0; i < READ_ONCE(bp_desc.nr_entries); i++) {
		if (bp_desc.vec[i].addr == ip) {
			tp = &bp_desc.vec[i];
			break;
		}
	}
	if (!tp)
		goto out_put;

	switch (tp->opcode) {
	case CALL_INSN_OPCODE:
		int3_emulate_call(regs, ip + CALL_INSN_SIZE + *(int *)(tp->text + 1));
		break;
	case JMP32_INSN_OPCODE:
		int3_emulate_jmp(regs, ip + 5 + *(int *)(tp->text + 1));
		break;
	case RET_INSN_OPCODE:
		regs->ip = *(unsigned long *)regs->sp;	/* int3_emulate_ret() */
		regs->sp += sizeof(unsigned long);
		break;
	default:
		goto out_put;
	}
	this_cpu_inc(poke_hits);
	ret = 1;
out_put:
	put_desc();
	return ret;
}

/* text_poke_bp_batch(): int3s, sync, tails, sync, first bytes, sync. */
static noinline void text_poke_bp_batch(struct text_poke_loc *tp, int nr_entries)
{
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	bp_desc.vec = tp;
	bp_desc.nr_entries = nr_entries;
	smp_wmb();
	WRITE_ONCE(bp_desc.refs, 1);		/* atomic_set_release() */

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((u8 *)tp[i].addr + 1, tp[i].text + 1, tp[i].len - 1);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, tp[i].text, INT3_INSN_SIZE);
	sync_core_all();

	/* Take our reference back, and wait for the handlers'. */
	if (!atomic_dec_and_test(&bp_desc.refs))
		while (READ_ONCE(bp_desc.refs))
			cpu_relax();
}

/* text_poke_bp() of the time (the base has the older one): the caller holds text_mutex. */
static noinline void sc_text_poke_bp(void *addr, const u8 *opcode, int len)
{
	struct text_poke_loc tp = { .addr = (unsigned long)addr, .len = len, .opcode = opcode[0] };
	int i;

	for (i = 0; i < len; i++)
		tp.text[i] = opcode[i];
	text_poke_bp_batch(&tp, 1);
}

static void make_rel(u8 *insn, u8 op, void *at, void *to)
{
	int rel = (int)((long)to - ((long)at + 5));

	insn[0] = op;
	memcpy(&insn[1], &rel, sizeof(rel));
}

static void static_call_update(void *func)
{
	u8 call[5];

	make_rel(call, CALL_INSN_OPCODE, sc_site, func);
	mutex_lock(&text_mutex);
	sc_text_poke_bp(sc_site, call, 5);
	mutex_unlock(&text_mutex);
}

/* apply_returns() found the module trampoline's jmp to the return thunk. */
static void __static_call_fixup(u8 *tramp)
{
	static const u8 retinsn[5] = { RET_INSN_OPCODE, 0xcc, 0xcc, 0xcc, 0xcc };

#if __has_include("pt_fixup_nolock.h")
	/* Before c27c753ea6fd: text_poke_bp() without text_mutex. */
	sc_text_poke_bp(tramp, retinsn, 5);
#else
	/* c27c753ea6fd: under text_mutex, and the module text is not live. */
	mutex_lock(&text_mutex);
	memcpy(tramp, retinsn, sizeof(retinsn));	/* text_poke_early() */
	mutex_unlock(&text_mutex);
#endif
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
		static_call_update(sc_func_b);
		spin(READ_ONCE(dwell));
		static_call_update(sc_func_a);
		spin(READ_ONCE(dwell));
	}
}

/* load_module(): copy the text, relocate, apply_returns(), make it RX. */
void loader_main(unsigned long arg)
{
	unsigned long size = mod_tramp_template_end - mod_tramp_template;
	u64 m;

	for (m = 0; m < READ_ONCE(modules); m++) {
		u8 *text = module_alloc(size);

		if (!text)
			pt_bug(1);
		memcpy(text, mod_tramp_template, size);
		make_rel(text, JMP32_INSN_OPCODE, text, return_thunk);
		__static_call_fixup(text);
		set_memory_ro((unsigned long)text, 1);
		set_memory_x((unsigned long)text, 1);
		pt_marker(MARKER_MODULE, m);
		this_cpu_inc(modules_loaded);
		spin(READ_ONCE(dwell) * 4);
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++)
		sum += sc_caller(n);
	this_cpu_write(caller_sum, sum);
}

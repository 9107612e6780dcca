// SPDX-License-Identifier: GPL-2.0
/*
 * patch.c - a module's static_call sites, their key fixup at load, and
 * commit 50bf8080a94d ("static_call: Fix the module key fixup", Peter
 * Zijlstra, 2021).
 *
 * Each entry of .static_call_sites holds two self-relative words: the
 * site's address, and the key's, whose low two bits carry the site's
 * flags (STATIC_CALL_SITE_INIT, STATIC_CALL_SITE_TAIL: keys are aligned,
 * so the bits are free in the absolute address). A tail-call site is a
 * "jmp" and must stay one: static_call_update() writes "jmp func" there
 * and "call func" at the others. When a module's key is replaced at load
 * time, the entry's key word is rewritten. Before the fix the rewrite
 * took the flags from the low bits of the old relative word and or-ed
 * them into the new relative word: that is the same thing only if the
 * word's own address is 4-byte aligned. In a module's .static_call_sites
 * it need not be, and the site's flags come out changed: here the tail
 * call loses STATIC_CALL_SITE_TAIL and is patched into "call func", which
 * returns to the bytes after the site, the end of mod_tail_fn: its padding
 * and the next function; 3 bytes off, the plain call gains it as well and
 * is patched into "jmp func", which returns from mod_call_fn's callee
 * straight to its caller, skipping the rest of mod_call_fn. The fix moves
 * the bits in the absolute form. A scenario that ships pt_key_fixup_rel.h
 * builds the version before the fix.
 *
 * CPU 0 loads the module (relocates its site entries, fixes up their key,
 * writes each site for the key's current target), then flips the key
 * between sc_func_a and sc_func_b with text_poke_bp(); CPUs 1 and 2 call
 * both functions once the module is live and count results no target
 * gives (wrong_calls).
 *
 * Markers: 1 = the module is live.
 */
#include "slice.h"
#include "percpu.h"

#define noinline		__attribute__((noinline))

#define MARKER_LIVE		1
#define JMP32_INSN_OPCODE	0xe9
#define SITE_INIT		1UL
#define SITE_TAIL		2UL
#define SITE_FLAGS		(SITE_INIT | SITE_TAIL)

/* [params], written by the machine before boot. */
u64 rounds = 20;
u64 calls = 300;
u64 dwell = 200;

DEFINE_PER_CPU(u64, poke_hits);
DEFINE_PER_CPU(u64, wrong_calls);
DEFINE_PER_CPU(u64, caller_sum);

u64 mod_call_fn(u64 x);			/* site.S */
u64 mod_tail_fn(u64 x);
u64 sc_func_a(u64 x);
u64 sc_func_b(u64 x);
extern u8 mod_call_site[], mod_tail_site[];

struct static_call_key {
	void *func;
} __attribute__((aligned(8)));

/* The core kernel's key, and the module's own reference the loader replaces. */
static struct static_call_key sc_key = { .func = sc_func_a };
static struct static_call_key mod_key_ref;

struct static_call_site {
	s32 addr;
	s32 key;
} __attribute__((packed));

/*
 * The module's .static_call_sites: its entries are not 4-byte aligned (2
 * bytes off; 3 in a scenario that ships pt_sites_off3.h).
 */
#if __has_include("pt_sites_off3.h")
#define SITES_OFF		3
#else
#define SITES_OFF		2
#endif
static struct {
	u8 hdr[SITES_OFF];
	struct static_call_site s[2];
} __attribute__((packed, aligned(8))) mod_sites;

static unsigned long module_live;

static void *site_addr(struct static_call_site *site)
{
	return (u8 *)&site->addr + site->addr;
}

static unsigned long site_key_word(struct static_call_site *site)
{
	return (unsigned long)&site->key + site->key;
}

static struct static_call_key *site_key(struct static_call_site *site)
{
	return (struct static_call_key *)(site_key_word(site) & ~SITE_FLAGS);
}

static bool site_is_tail(struct static_call_site *site)
{
	return site_key_word(site) & SITE_TAIL;
}

/* What the linker's relocations leave in the entry. */
static void site_init(struct static_call_site *site, void *addr, unsigned long flags)
{
	site->addr = (s32)((long)addr - (long)&site->addr);
	site->key = (s32)(((long)&mod_key_ref | flags) - (long)&site->key);
}

/* Point the entry at the core kernel's key, keeping the site's flags. */
static void site_fixup_key(struct static_call_site *site, struct static_call_key *key)
{
#if __has_include("pt_key_fixup_rel.h")
	/* Before 50bf8080a94d: the flags taken from the relative word. */
	site->key = (s32)(((long)key - (long)&site->key) | (site->key & SITE_FLAGS));
#else
	/* 50bf8080a94d: the flags moved in the absolute form. */
	unsigned long flags = site_key_word(site) & SITE_FLAGS;

	site->key = (s32)(((long)key | flags) - (long)&site->key);
#endif
}

/* ---- text_poke_bp() with the static descriptor (commit efd608fa7403) ---- */

struct text_poke_loc {
	unsigned long addr;
	int len;
	u8 opcode;
	u8 text[8];
};

static struct {
	struct text_poke_loc *vec;
	int nr_entries;
	int refs;
} bp_desc;

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
	if (tp) {
		unsigned long dest = ip + 5 + *(int *)(tp->text + 1);

		if (tp->opcode == CALL_INSN_OPCODE)
			int3_emulate_call(regs, dest);
		else
			int3_emulate_jmp(regs, dest);
		this_cpu_inc(poke_hits);
		ret = 1;
	}
	smp_mb();
	atomic_dec(&bp_desc.refs);
	return ret;
}

static noinline void text_poke_bp_batch(struct text_poke_loc *tp, int nr_entries)
{
	u8 int3 = INT3_INSN_OPCODE;
	int i;

	bp_desc.vec = tp;
	bp_desc.nr_entries = nr_entries;
	smp_wmb();
	WRITE_ONCE(bp_desc.refs, 1);

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, &int3, INT3_INSN_SIZE);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((u8 *)tp[i].addr + 1, tp[i].text + 1, tp[i].len - 1);
	sync_core_all();

	for (i = 0; i < nr_entries; i++)
		text_poke((void *)tp[i].addr, tp[i].text, INT3_INSN_SIZE);
	sync_core_all();

	if (!atomic_dec_and_test(&bp_desc.refs))
		while (READ_ONCE(bp_desc.refs))
			cpu_relax();
}

/* __static_call_transform(): "jmp func" at a tail call, else "call func". */
static void static_call_insn(u8 *insn, struct static_call_site *site, void *func)
{
	u8 *addr = site_addr(site);
	int rel = (int)((long)func - ((long)addr + 5));

	insn[0] = site_is_tail(site) ? JMP32_INSN_OPCODE : CALL_INSN_OPCODE;
	memcpy(&insn[1], &rel, sizeof(rel));
}

/* static_call_update(): every site of the key, in one batch. */
static void static_call_update(struct static_call_key *key, void *func)
{
	struct text_poke_loc tp[2];
	int i, n = 0;

	WRITE_ONCE(key->func, func);
	for (i = 0; i < 2; i++) {
		struct static_call_site *site = &mod_sites.s[i];

		if (site_key(site) != key)
			continue;
		tp[n].addr = (unsigned long)site_addr(site);
		tp[n].len = 5;
		static_call_insn(tp[n].text, site, func);
		tp[n].opcode = tp[n].text[0];
		n++;
	}
	text_poke_bp_batch(tp, n);
}

/* load_module(): relocate the entries, fix up their key, init the sites. */
static void load_module(void)
{
	int i;

	site_init(&mod_sites.s[0], mod_call_site, SITE_INIT);
	site_init(&mod_sites.s[1], mod_tail_site, SITE_INIT | SITE_TAIL);
	for (i = 0; i < 2; i++) {
		struct static_call_site *site = &mod_sites.s[i];
		u8 insn[5];

		site_fixup_key(site, &sc_key);
		/* Not live yet: written in place (text_poke_early()). */
		static_call_insn(insn, site, READ_ONCE(sc_key.func));
		text_poke(site_addr(site), insn, 5);
	}
	sync_core_all();
	smp_wmb();
	WRITE_ONCE(module_live, 1);
	pt_marker(MARKER_LIVE, 0);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u64 r;

	load_module();
	for (r = 0; r < READ_ONCE(rounds); r++) {
		static_call_update(&sc_key, sc_func_b);
		spin(READ_ONCE(dwell));
		static_call_update(&sc_key, sc_func_a);
		spin(READ_ONCE(dwell));
	}
}

static bool sc_result(u64 got, u64 x)
{
	return got == x + 0x11 || got == x + 0x22;
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	while (!READ_ONCE(module_live))
		cpu_relax();
	smp_rmb();
	for (n = 0; n < READ_ONCE(calls); n++) {
		u64 c = mod_call_fn(n), t = mod_tail_fn(n);

		if (!sc_result(c - 1, n + 1) || !sc_result(t, n + 3))
			this_cpu_inc(wrong_calls);
		sum += c + t;
	}
	this_cpu_write(caller_sum, sum);
}

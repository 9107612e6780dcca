// SPDX-License-Identifier: GPL-2.0
/*
 * jl.c - a static key whose jump entries include one in a module's init
 * text, and what happens to that entry when do_init_module() frees the
 * init text.
 *
 * Linux keeps a module's jump entries, init and core alike, on the key's
 * list from jump_label_add_module() on. The init text is freed with
 * module_memfree() once the module's init function has returned. From then
 * on an entry that points into it must never be patched again: Linux's
 * jump_label module notifier invalidated them when the module went
 * MODULE_STATE_LIVE (jump_label_invalidate_module_init() zeroed their
 * code address), and later kernels mark them as init entries and skip
 * them once the init text is gone (jump_label_can_update(); the same
 * holds for the kernel's own __init text, jump_label_invalidate_initmem()
 * before free_initmem()).
 *
 * CPU 0's loader copies the module's two text templates (mod.S) into
 * module_alloc() memory (rw-, then r--, r-x), records the two jump
 * entries on mod_key, runs the init function, invalidates the init
 * entries (unless pt_jl_no_invalidate.h is in the scenario), publishes
 * the core function and frees the init text. It then turns the key on
 * and off `rounds` times; each transform first checks the bytes it
 * replaces (what the kernel's jump label code does before patching: a
 * mismatch is a BUG), then rewrites the site with text_poke_bp(). The
 * workers on the other CPUs call the core function all along.
 *
 * Without the invalidation the first static_key_enable() after the free
 * walks the init entry too: its check reads the freed init text, a
 * not-present #PF (in Linux a fault on the vfree()d page, or a write
 * into a page that is someone else's by then). With pt_jl_nocheck.h as
 * well, the transform skips that check and text_poke_bp()'s first
 * text_poke() writes into the freed page.
 *
 * Markers: 1 the module is live (value: its init text), 2 the init text
 * is freed, 3 the key changed (value: round).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_jl_no_invalidate.h")
#define JL_NO_INVALIDATE 1
#else
#define JL_NO_INVALIDATE 0
#endif

/* pt_jl_nocheck.h: the transform writes without reading the site first. */
#if __has_include("pt_jl_nocheck.h")
#define JL_CHECK 0
#else
#define JL_CHECK 1
#endif

#define MARKER_LIVE	1
#define MARKER_FREED	2
#define MARKER_KEY	3

#define JUMP_LABEL_NOP_SIZE	5
#define JMP32_INSN_OPCODE	0xe9

/* [params] */
u64 rounds = 8;		/* key changes after the module is live */
u64 dwell = 400;	/* pause loops between key changes */

extern const u8 mod_init_template[], mod_init_site[], mod_init_yes[], mod_init_template_end[];
extern const u8 mod_core_template[], mod_core_site[], mod_core_yes[], mod_core_template_end[];

struct jump_entry {
	unsigned long code;	/* the site; 0: invalidated */
	unsigned long target;	/* where the jmp goes when the key is on */
	unsigned long init;	/* the site is in init text */
};

struct static_key {
	unsigned long enabled;
	struct jump_entry *entries;
	unsigned long nr;
};

static const u8 nop5[JUMP_LABEL_NOP_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };

static struct jump_entry mod_entries[2];
static struct static_key mod_key;
static u64 (*mod_core_fn)(u64);
static unsigned long module_live, loader_done;
static unsigned long init_ret;
DEFINE_PER_CPU(u64, caller_sum);
DEFINE_PER_CPU(u64, core_calls);

static void *load_text(const u8 *start, const u8 *end)
{
	unsigned long size = end - start;
	u8 *text = module_alloc(size);

	if (!text)
		pt_bug(1);
	memcpy(text, start, size);
	set_memory_ro((unsigned long)text, 1);
	set_memory_x((unsigned long)text, 1);
	return text;
}

static void make_jmp(u8 *insn, const struct jump_entry *e)
{
	int rel = (int)(e->target - (e->code + JUMP_LABEL_NOP_SIZE));

	insn[0] = JMP32_INSN_OPCODE;
	memcpy(&insn[1], &rel, sizeof(rel));
}

/* Turn one site to the jmp (enable) or back to the nop. */
static void jump_label_transform(const struct jump_entry *e, bool enable)
{
	u8 jmp[JUMP_LABEL_NOP_SIZE];
	const u8 *expect, *code;
	const volatile u8 *site = (const volatile u8 *)e->code;
	int i;

	make_jmp(jmp, e);
	expect = enable ? nop5 : jmp;
	code = enable ? jmp : nop5;
	/* What is there must be what the key's old state put there. */
	for (i = 0; i < JUMP_LABEL_NOP_SIZE && JL_CHECK; i++)
		if (site[i] != expect[i])
			pt_bug(2);
	/* A CPU that hits the int3 goes where the new instruction would. */
	text_poke_bp((void *)e->code, code, JUMP_LABEL_NOP_SIZE,
		     (void *)(enable ? e->target : e->code + JUMP_LABEL_NOP_SIZE));
}

static void static_key_set(struct static_key *key, bool enable)
{
	unsigned long i;

	for (i = 0; i < key->nr; i++) {
		const struct jump_entry *e = &key->entries[i];

		if (!e->code)
			continue;
		jump_label_transform(e, enable);
	}
	WRITE_ONCE(key->enabled, enable);
}

/* The MODULE_STATE_LIVE notifier: init entries are never patched again. */
static void jump_label_invalidate_module_init(struct static_key *key)
{
	unsigned long i;

	for (i = 0; i < key->nr; i++)
		if (key->entries[i].init)
			key->entries[i].code = 0;
}

static void add_entry(struct jump_entry *e, const u8 *text, const u8 *tmpl,
		      const u8 *site, const u8 *yes, unsigned long init)
{
	e->code = (unsigned long)text + (site - tmpl);
	e->target = (unsigned long)text + (yes - tmpl);
	e->init = init;
}

void loader_main(unsigned long arg)
{
	u8 *init = load_text(mod_init_template, mod_init_template_end);
	u8 *core = load_text(mod_core_template, mod_core_template_end);
	u64 r, i;

	/* jump_label_add_module(): the key is off, every site is its nop. */
	add_entry(&mod_entries[0], core, mod_core_template, mod_core_site, mod_core_yes, 0);
	add_entry(&mod_entries[1], init, mod_init_template, mod_init_site, mod_init_yes, 1);
	mod_key.entries = mod_entries;
	mod_key.nr = 2;

	/* do_one_initcall(mod->init) */
	init_ret = ((u64 (*)(void))init)();

	/* do_init_module(): the module goes live, its init text is freed. */
	if (!JL_NO_INVALIDATE)
		jump_label_invalidate_module_init(&mod_key);
	WRITE_ONCE(mod_core_fn, (u64 (*)(u64))core);
	WRITE_ONCE(module_live, 1);
	pt_marker(MARKER_LIVE, (unsigned long)init);
	module_memfree(init);
	pt_marker(MARKER_FREED, (unsigned long)init);

	for (r = 0; r < rounds; r++) {
		static_key_set(&mod_key, !(r & 1));
		pt_marker(MARKER_KEY, r);
		for (i = 0; i < dwell; i++)
			cpu_relax();
	}
	WRITE_ONCE(loader_done, 1);
}

void caller_main(unsigned long arg)
{
	u64 x = 0;

	while (!READ_ONCE(module_live))
		cpu_relax();
	while (!READ_ONCE(loader_done)) {
		u64 (*fn)(u64) = READ_ONCE(mod_core_fn);

		this_cpu_add(caller_sum, fn(x++));
		this_cpu_inc(core_calls);
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * load.c - a module load's apply_returns(), whose __static_call_fixup()
 * reads the three bytes after every return site, and commit 54097309620e
 * ("x86/static_call: Fix __static_call_fixup()", Peter Zijlstra, 2023).
 *
 * Under CONFIG_RETHUNK every return is "jmp __x86_return_thunk", and a
 * static call trampoline whose function is NULL is one too, followed by
 * the trampoline signature. apply_returns() walks the module's
 * .return_sites and asks __static_call_fixup() first whether the site is
 * such a trampoline (which static_call_update() must find in a form it
 * knows): it compares the three bytes after the 5-byte jmp with the
 * signature. Most return sites are no trampoline, and one at the very end
 * of the module's last text page has no bytes after it: the compare reads
 * the unmapped page behind the allocation (vmalloc's guard page) and the
 * load dies with a page fault ("spurious module load crashes", reported
 * once the module memory layout rework made it likelier). The fix first
 * checks whether the three bytes lie on another page that is no kernel
 * text, and if so, the site is no trampoline. A scenario that ships
 * pt_fixup_lastpage.h builds the version before the fix.
 *
 * CPU 0 loads the module: copies its one-page text into module_alloc()
 * memory, resolves its relocations to __x86_return_thunk, applies its
 * returns with text_poke_early()'s plain copy (the text is not live
 * yet, and still writable), makes it read-only and executable, and
 * publishes mod_fn. It then switches the module's static call mod_hook
 * between mod_hook_handler and NULL `rounds` times with text_poke_bp(),
 * checking the trampoline's bytes as __static_call_validate() does. CPUs
 * 1 and 2 call mod_fn all along once it is published.
 *
 * Markers: 1 = the module is live (value: its text), 2 = mod_hook
 * updated (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define noinline		__attribute__((noinline))

/* pt_fixup_lastpage.h: __static_call_fixup() before 54097309620e. */
#if __has_include("pt_fixup_lastpage.h")
#define FIXUP_PAGE_CHECK	0
#else
#define FIXUP_PAGE_CHECK	1
#endif

#define MARKER_LIVE		1
#define MARKER_UPDATE		2
#define PAGE_SHIFT		12
#define PAGE_SIZE		4096
#define RET_INSN_OPCODE		0xc3
#define JMP32_INSN_OPCODE	0xe9

/* [params], written by the machine before boot. */
u64 rounds = 6;
u64 dwell = 300;

DEFINE_PER_CPU(u64, mod_calls);
DEFINE_PER_CPU(u64, hook_calls);
DEFINE_PER_CPU(u64, caller_sum);

extern const u8 mod_text_template[], mod_text_end[], mod_sct[], mod_fn[];	/* mod.S */
extern const u64 mod_relocs[], mod_relocs_end[], mod_return_sites[], mod_return_sites_end[];
extern u8 __x86_return_thunk[], srso_return_thunk[];	/* lib/rethunk */
extern u8 _text[], _etext[];				/* slice.lds */

static const u8 tramp_ud[3] = { 0x0f, 0xb9, 0xcc };

/* The thunk the mitigation selected (srso_select_mitigation()). */
static u8 *x86_return_thunk = __x86_return_thunk;

/* The module's text once it is formed (the kernel's module list). */
static u8 *mod_text_formed;

static u64 (*mod_fn_ptr)(u64);
static u8 *mod_tramp;		/* mod_hook's trampoline, in the module */
static unsigned long module_live, loader_done;

u64 mod_hook_handler(u64 x)
{
	this_cpu_inc(hook_calls);
	return x;
}

static s32 get_s32(const u8 *p)
{
	return (s32)((u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24);
}

static void put_s32(u8 *p, s32 v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
	p[2] = (u8)(v >> 16);
	p[3] = (u8)(v >> 24);
}

static void gen_jmp(u8 *insn, const u8 *at, const u8 *to)
{
	insn[0] = JMP32_INSN_OPCODE;
	put_s32(insn + 1, (s32)(to - (at + 5)));
}

/* kernel_text_address(): the kernel's text, or a formed module's. */
static bool kernel_text_address(unsigned long addr)
{
	u8 *mod = READ_ONCE(mod_text_formed);

	if (addr >= (unsigned long)_text && addr < (unsigned long)_etext)
		return true;
	return mod && addr >= (unsigned long)mod && addr < (unsigned long)mod + PAGE_SIZE;
}

/*
 * Is the return site at tramp a static call trampoline? If so, write it in
 * its final form (text_poke_early(): the module text is not live yet).
 */
static noinline bool __static_call_fixup(u8 *tramp, u8 op, void *dest)
{
	unsigned long addr = (unsigned long)tramp;
	u8 insn[5];
	int i;

	/* 54097309620e: bytes on another page that is no text: no trampoline. */
	if (FIXUP_PAGE_CHECK && (addr >> PAGE_SHIFT) != ((addr + 7) >> PAGE_SHIFT) &&
	    !kernel_text_address(addr + 7))
		return false;
	for (i = 0; i < 3; i++)			/* memcmp(tramp + 5, tramp_ud, 3) */
		if (READ_ONCE(tramp[5 + i]) != tramp_ud[i])
			return false;	/* not a trampoline, not our problem */
	if (op == RET_INSN_OPCODE || dest == __x86_return_thunk) {
		gen_jmp(insn, tramp, x86_return_thunk);
		memcpy(tramp, insn, sizeof(insn));
	}
	return true;
}

/* module_finalize()'s apply_returns() over the module's .return_sites. */
static void apply_returns(u8 *text)
{
	const u64 *s;
	u8 insn[5];

	for (s = mod_return_sites; s < mod_return_sites_end; s++) {
		u8 *addr = text + *s;
		u8 op = addr[0];
		void *dest = NULL;

		if (op == JMP32_INSN_OPCODE)
			dest = addr + 5 + get_s32(addr + 1);
		if (__static_call_fixup(addr, op, dest))
			continue;
		if (dest != __x86_return_thunk)
			pt_bug(1);	/* WARN_ONCE(): a return site that is none */
		gen_jmp(insn, addr, x86_return_thunk);	/* patch_return() */
		memcpy(addr, insn, sizeof(insn));
	}
}

static u8 *load_module(void)
{
	unsigned long size = mod_text_end - mod_text_template;
	u8 *text = module_alloc(size);
	const u64 *r;

	if (!text || size != PAGE_SIZE)
		pt_bug(2);
	memcpy(text, mod_text_template, size);
	/* apply_relocate_add(): R_X86_64_PLT32 against __x86_return_thunk. */
	for (r = mod_relocs; r < mod_relocs_end; r++)
		put_s32(text + *r, (s32)(__x86_return_thunk - (text + *r + 4)));
	apply_returns(text);				/* module_finalize() */
	set_memory_ro((unsigned long)text, 1);		/* module_enable_rox() */
	set_memory_x((unsigned long)text, 1);
	WRITE_ONCE(mod_text_formed, text);		/* complete_formation() */
	return text;
}

/* static_call_update(mod_hook, func) on the module's trampoline. */
static void static_call_update(void *func)
{
	u8 *tramp = mod_tramp;
	u8 *to = func ? (u8 *)func : x86_return_thunk;
	u8 insn[5];
	int i;

	/* __static_call_validate(): a jmp, and the signature behind it. */
	if (READ_ONCE(tramp[0]) != JMP32_INSN_OPCODE)
		pt_bug(3);
	for (i = 0; i < 3; i++)
		if (READ_ONCE(tramp[5 + i]) != tramp_ud[i])
			pt_bug(4);
	gen_jmp(insn, tramp, to);
	text_poke_bp(tramp, insn, sizeof(insn), to);
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void loader_main(unsigned long arg)
{
	u8 *text;
	u64 r;

	x86_return_thunk = srso_return_thunk;	/* the CPU needs SRSO */
	text = load_module();
	mod_tramp = text + (mod_sct - mod_text_template);
	WRITE_ONCE(mod_fn_ptr, (u64 (*)(u64))(text + (mod_fn - mod_text_template)));
	WRITE_ONCE(module_live, 1);
	pt_marker(MARKER_LIVE, (unsigned long)text);

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));
		static_call_update(r & 1 ? NULL : (void *)mod_hook_handler);
		pt_marker(MARKER_UPDATE, r);
	}
	spin(READ_ONCE(dwell));
	WRITE_ONCE(loader_done, 1);
}

void caller_main(unsigned long arg)
{
	u64 x = arg;

	while (!READ_ONCE(module_live))
		cpu_relax();
	while (!READ_ONCE(loader_done)) {
		u64 (*fn)(u64) = READ_ONCE(mod_fn_ptr);

		this_cpu_add(caller_sum, fn(x++));
		this_cpu_inc(mod_calls);
	}
}

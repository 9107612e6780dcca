// SPDX-License-Identifier: GPL-2.0
/*
 * seal.c - boot-time patching on an IBT kernel that seals (poisons) the
 * ENDBR64 of a function its own patching path still calls through a
 * pointer, and commit ebebe30794d3 ("x86/ibt: Keep IBT disabled during
 * alternative patching", Pawan Gupta, 2025).
 *
 * At boot an IBT kernel rewrites the ENDBR64 of functions that, once
 * patching is done, no indirect call reaches (apply_seal_endbr(): the
 * 4 bytes become nopl -42(%rax), 0f 1f 40 d6), and it relocates or
 * poisons ENDBRs for FineIBT. Until every caller has been patched too, an
 * indirect call the patching path itself makes (the commit's example is
 * a paravirt wrmsrl() through pv_ops) can land on an ENDBR already
 * poisoned: with IBT on that is #CP (missing ENDBRANCH) and the boot dies
 * in exc_control_protection(). The fix brackets the patching with
 * ibt_save()/ibt_restore(): clear IA32_S_CET.ENDBR_EN on this CPU, patch,
 * put it back.
 *
 * The slice: note_patch() is the hook the patcher calls through an ops
 * table (patch_ops.note) after each site it patches, and it is in the
 * seal list (its indirect callers are gone once patching is done). The
 * boot task seals the list, then patches the eight sites of feature_fn()
 * (site.S), calling the hook after each; every write is text_poke_early()'s
 * (the copy, then sync_core()). A scenario that ships
 * pt_ibt_on_while_sealing.h builds the version before the fix: IBT stays
 * on, and the first hook call after the seal is #CP at note_patch.
 *
 * Markers: 1 = the seal list is sealed (value: ENDBRs poisoned),
 * 2 = every site is patched and IBT restored (value: feature_fn()).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_SEALED		1
#define MARKER_PATCHED		2

#define MSR_IA32_S_CET		0x6a2
#define CET_ENDBR_EN		(1UL << 2)

#define NR_SITES		8

/* [params], written by the machine before boot. */
u64 sites = NR_SITES;
u64 dwell = 2000;

DEFINE_PER_CPU(u64, hook_calls);
DEFINE_PER_CPU(u64, endbr_sealed);
DEFINE_PER_CPU(u64, feature_result);

u64 feature_fn(void);			/* site.S */
extern u8 alt_sites[];

/*
 * The patcher's hook, called through patch_ops only while patching: a
 * global function, so -fcf-protection=branch starts it with ENDBR64.
 */
void note_patch(u64 site)
{
	(void)site;
	this_cpu_inc(hook_calls);
}

struct patch_ops {
	void (*note)(u64 site);
};

/* Not const: every call is an indirect call through memory. */
struct patch_ops patch_ops = { .note = note_patch };

/* What the seal pass poisons (__ibt_endbr_seal). */
static void *const seal_list[] = { note_patch };

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;

	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (u64)hi << 32 | lo;
}

static inline void wrmsr(u32 msr, u64 val)
{
	asm volatile("wrmsr" : : "c"(msr), "a"((u32)val), "d"((u32)(val >> 32)) : "memory");
}

/* Turn IBT off on this CPU; return IA32_S_CET as it was. */
static __attribute__((unused)) u64 ibt_save(void)
{
	u64 msr = rdmsr(MSR_IA32_S_CET);

	wrmsr(MSR_IA32_S_CET, msr & ~CET_ENDBR_EN);
	return msr;
}

/* Put ENDBR_EN back as save had it. */
static __attribute__((unused)) void ibt_restore(u64 save)
{
	u64 msr = rdmsr(MSR_IA32_S_CET);

	msr &= ~CET_ENDBR_EN;
	msr |= save & CET_ENDBR_EN;
	wrmsr(MSR_IA32_S_CET, msr);
}

static int is_endbr64(const u8 *p)
{
	return READ_ONCE(p[0]) == 0xf3 && READ_ONCE(p[1]) == 0x0f &&
	       READ_ONCE(p[2]) == 0x1e && READ_ONCE(p[3]) == 0xfa;
}

/*
 * text_poke_early(): patch live text on the CPU that runs it, then
 * serialize before anything may execute the new bytes.
 */
static void poke_early(void *addr, const void *opcode, size_t len)
{
	text_poke(addr, opcode, len);	/* memcpy(addr, opcode, len) */
	sync_core();
}

/* apply_seal_endbr(): poison every listed function's ENDBR64. */
static u64 seal_endbr(void)
{
	static const u8 poison[4] = { 0x0f, 0x1f, 0x40, 0xd6 };	/* nopl -42(%rax) */
	u64 n = 0;
	unsigned int i;

	for (i = 0; i < sizeof(seal_list) / sizeof(seal_list[0]); i++) {
		if (!is_endbr64(seal_list[i]))
			continue;
		poke_early(seal_list[i], poison, sizeof(poison));
		n++;
	}
	return n;
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void boot_main(unsigned long arg)
{
	static const u8 add1[3] = { 0x83, 0xc0, 0x01 };	/* addl $1, %eax */
	u64 n = READ_ONCE(sites), sealed, i;
	u64 ibt = 0;

	(void)arg;
	(void)ibt;
	if (n > NR_SITES)
		n = NR_SITES;
#if !__has_include("pt_ibt_on_while_sealing.h")
	ibt = ibt_save();	/* Keep CET-IBT off until callers and callees are patched */
#endif
	sealed = seal_endbr();
	this_cpu_write(endbr_sealed, sealed);
	pt_marker(MARKER_SEALED, sealed);

	for (i = 0; i < n; i++) {
		poke_early(alt_sites + 3 * i, add1, sizeof(add1));
		patch_ops.note(i);	/* call *patch_ops(%rip) */
	}
#if !__has_include("pt_ibt_on_while_sealing.h")
	ibt_restore(ibt);
#endif
	this_cpu_write(feature_result, feature_fn());
	pt_marker(MARKER_PATCHED, this_cpu_read(feature_result));
	spin(READ_ONCE(dwell));
}

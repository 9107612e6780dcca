// SPDX-License-Identifier: GPL-2.0
/*
 * modfail.c - ftrace's records of a module whose init function fails, and
 * what the next tracer update does with them.
 *
 * ftrace keeps one record per fentry site (struct dyn_ftrace): the
 * kernel's own from boot, a module's added by ftrace_module_init() while
 * the module is loaded, before its init function runs. An update of the
 * tracer (ftrace_replace_code()) rewrites every record's site with
 * text_poke_bp(): the 5-byte nop to a call of ftrace_caller, or back. A
 * module's records must be dropped (ftrace_release_mod()) before its text
 * is freed; Linux did so on unload, but when the module's init function
 * failed, do_init_module()'s error path freed the module without it, until
 * upstream commit "ftrace/module: Call clean up function when module init
 * fails" (Steven Rostedt, 2016): the records stayed, pointing into freed
 * text, and the next time function tracing was enabled ftrace wrote into
 * that memory (a fault in the patching code, or a write into whatever
 * module_alloc() has put there since).
 *
 * CPU 0's loader copies the module (mod.S) into module_alloc() memory
 * (rw-, then r--, r-x), records its fentry site after the kernel's one
 * (traced_fn, lib/traced), runs its init function, which fails, and takes
 * the error path: ftrace_release_mod(), then module_memfree() - without
 * the release when pt_ftrace_no_release.h is in the scenario. It then
 * enables and disables the function tracer `rounds` times. The workers on
 * the other CPUs call traced_fn all along; a CPU that hits an update's
 * int3 skips the site (as if it were still the nop).
 *
 * Markers: 1 the failed module is freed (value: its text), 2 the tracer is
 * enabled on every recorded site (value: round), 3 it is about to be
 * disabled (value: round).
 */
#include "slice.h"
#include "percpu.h"

#if __has_include("pt_ftrace_no_release.h")
#define FTRACE_NO_RELEASE 1
#else
#define FTRACE_NO_RELEASE 0
#endif

#define MARKER_MOD_FREED	1
#define MARKER_ENABLED		2
#define MARKER_DISABLING	3

#define MCOUNT_INSN_SIZE	5
#define CALL_INSN_OPCODE	0xe8
#define MAX_RECS		4

/* [params] */
u64 rounds = 4;		/* enable/disable cycles of the tracer */
u64 dwell = 400;	/* pause loops with the tracer on, and off */

extern const u8 mod_template[], mod_site[], mod_init_off[], mod_template_end[];
extern void ftrace_caller(void);
u64 traced_fn(u64 x);

struct dyn_ftrace {
	unsigned long ip;	/* the fentry site */
};

static struct dyn_ftrace ftrace_recs[MAX_RECS];
static unsigned long ftrace_nr_recs;
static unsigned long loader_done;
static long mod_init_ret;
DEFINE_PER_CPU(u64, trace_hits);
DEFINE_PER_CPU(u64, caller_sum);

/* The function tracer: what every enabled site ends up calling. */
void ftrace_trace_fn(void)
{
	this_cpu_inc(trace_hits);
}

static void ftrace_add_rec(unsigned long ip)
{
	if (ftrace_nr_recs == MAX_RECS)
		pt_bug(1);
	ftrace_recs[ftrace_nr_recs++].ip = ip;
}

/* ftrace_module_init(): the module's sites join the records. */
static void ftrace_module_init(u8 *text)
{
	ftrace_add_rec((unsigned long)text + (mod_site - mod_template));
}

/* ftrace_release_mod(): drop every record inside [start, start + size). */
static void ftrace_release_mod(unsigned long start, unsigned long size)
{
	unsigned long i, n = 0;

	for (i = 0; i < ftrace_nr_recs; i++)
		if (ftrace_recs[i].ip - start >= size)
			ftrace_recs[n++] = ftrace_recs[i];
	ftrace_nr_recs = n;
}

/* ftrace_replace_code(): every recorded site to the call, or back to the nop. */
static void ftrace_replace_code(bool enable)
{
	static const u8 nop5[MCOUNT_INSN_SIZE] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	unsigned long i;

	for (i = 0; i < ftrace_nr_recs; i++) {
		unsigned long ip = ftrace_recs[i].ip;
		u8 call[MCOUNT_INSN_SIZE];
		int rel = (int)((unsigned long)ftrace_caller - (ip + MCOUNT_INSN_SIZE));

		call[0] = CALL_INSN_OPCODE;
		memcpy(&call[1], &rel, sizeof(rel));
		/* A CPU on the int3 skips the site, as the nop would. */
		text_poke_bp((void *)ip, enable ? call : nop5, MCOUNT_INSN_SIZE,
			     (void *)(ip + MCOUNT_INSN_SIZE));
	}
}

void loader_main(unsigned long arg)
{
	unsigned long size = mod_template_end - mod_template;
	u8 *text = module_alloc(size);
	u64 r, i;

	/* The kernel's own site, recorded at boot. */
	ftrace_add_rec((unsigned long)traced_fn);

	/* load_module(): lay out the text, record its sites, make it r-x. */
	if (!text)
		pt_bug(2);
	memcpy(text, mod_template, size);
	ftrace_module_init(text);
	set_memory_ro((unsigned long)text, 1);
	set_memory_x((unsigned long)text, 1);

	/* do_init_module(): the init function fails; free the module. */
	mod_init_ret = ((long (*)(void))(text + (mod_init_off - mod_template)))();
	if (mod_init_ret >= 0)
		pt_bug(3);
	if (!FTRACE_NO_RELEASE)
		ftrace_release_mod((unsigned long)text, size);
	module_memfree(text);
	pt_marker(MARKER_MOD_FREED, (unsigned long)text);

	for (r = 0; r < rounds; r++) {
		ftrace_replace_code(true);
		pt_marker(MARKER_ENABLED, r);
		for (i = 0; i < dwell; i++)
			cpu_relax();
		pt_marker(MARKER_DISABLING, r);
		ftrace_replace_code(false);
		for (i = 0; i < dwell; i++)
			cpu_relax();
	}
	WRITE_ONCE(loader_done, 1);
}

void caller_main(unsigned long arg)
{
	u64 x = arg;

	while (!READ_ONCE(loader_done))
		this_cpu_add(caller_sum, traced_fn(x++));
}

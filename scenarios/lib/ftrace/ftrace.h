/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ftrace.h - the ftrace/livepatch model shared by the ftrace-* scenarios
 * (ftrace.c, ftrace_64.S and sites.fentry.c are the same file in each of
 * them; catalog_test.go checks they do not drift). Each scenario adds its
 * own int3.c and tramp.S: how a CPU that hits the temporary int3 on a call
 * site being changed gets through it.
 *
 * Two livepatched functions, lp_fn1 and lp_fn2, have their fentry sites
 * call either lp_handler (the livepatch ftrace_ops' own trampoline: the only
 * ops on that function) or ftrace_list_caller (the ops list iterator: the
 * function tracer traces the function too, so both ops must run). Both reach
 * klp_ftrace_func(), so a pass through a site that enters either handler is
 * a pass with the livepatch in force.
 */
#ifndef PT_FTRACE_H
#define PT_FTRACE_H

#include "slice.h"
#include "percpu.h"

/* pt_marker() ids. */
#define MARKER_READY		1	/* calls installed and synced everywhere */
#define MARKER_ROUND		2	/* value: round; int3s go in next */
#define MARKER_ROUND_DONE	3	/* value: round; every site final */
#define MARKER_DONE		4	/* the patcher has finished */
#define MARKER_MISSED		10	/* value: the site a pass missed */
#define MARKER_WRONG_TARGET	11	/* value: the handler an emulated call reached */
#define MARKER_WRONG_RETURN	12	/* value: the return address it carried */

#define NR_SITES	2

/* One call site, as struct dyn_ftrace: where it is, what it calls. */
struct dyn_ftrace {
	unsigned long ip;
	unsigned long cur;	/* call target now (0: the nop gcc emitted) */
	unsigned long new;	/* call target being written */
};

/* ftrace_64.S */
void lp_handler(void);
void ftrace_list_caller(void);

/* sites.fentry.c */
u64 lp_fn1(u64 x);
u64 lp_fn2(u64 x);

/* ftrace.c */
struct dyn_ftrace *ftrace_rec_being_updated(unsigned long ip);
void ftrace_note_emulated_call(unsigned long ret, unsigned long target);
bool klp_redirected(void *fn);

DECLARE_PER_CPU(unsigned long, bp_site_calls);
DECLARE_PER_CPU(unsigned long, bp_emulate_count);

#endif /* PT_FTRACE_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * opt.c - an optprobe's safety check (arch/x86/kernel/kprobes/opt.c
 * can_optimize()) over a function with a jump table, and the jump
 * optimization itself (kernel/kprobes.c kprobe_optimizer()).
 *
 * Before a kprobe is optimized into a 5-byte jump over the instructions
 * at the probe, the kernel decodes the whole function and refuses if any
 * instruction could jump into the middle of the range the jump replaces:
 * a direct jump whose target is inside (insn_jump_into_range()), or an
 * indirect jump, whose targets it cannot know (a switch's jump table).
 * With retpolines, gcc's indirect jump became "jmp __x86_indirect_thunk_rax",
 * a direct jump to a thunk outside the function, and the check no longer
 * saw it: upstream commit "kprobes/x86: Disable optimizing on the
 * function jumps to indirect thunk" (Masami Hiramatsu, 2018) treats a jump
 * to the thunks as indirect. A scenario that ships pt_optprobe_nothunk.h
 * builds the check without that (as before the commit).
 *
 * probed_fn's switch goes back to probed_fn+4 for one case in four; once
 * the jump is written there, that is the last byte of its displacement.
 *
 * CPU 0 registers the probe (the check), arms it (an int3 over push %rbx,
 * whose handler sends the CPU to a boost slot: the copy and a jump to
 * probed_fn+1) and, each round, optimizes it if the check allowed: marks
 * it optimized, waits in synchronize_rcu_tasks() (commit a30b85df7d59),
 * writes "jmp detour" over the first seven bytes with text_poke_bp(),
 * dwells, and writes the int3 and the original bytes back. CPUs 1 and 2
 * each run two tasks calling probed_fn.
 *
 * Markers: 1 = armed (value: 1 if the check allows optimizing), 2 =
 * optimized (value: round), 3 = unoptimized (value: round).
 */
#include "slice.h"
#include "percpu.h"

#define MARKER_ARMED		1
#define MARKER_OPTIMIZED	2
#define MARKER_UNOPTIMIZED	3

#define OPT_LEN			7	/* the whole instructions the jump covers */
#define JMP32_INSN_SIZE		5
#define MAX_TASKS		16

/* [params], written by the machine before boot. */
u64 rounds = 10;
u64 calls = 150;
u64 dwell = 400;

DEFINE_PER_CPU(u64, kprobe_hits);	/* through the boost slot */
DEFINE_PER_CPU(u64, detour_hits);	/* through the detour */
DEFINE_PER_CPU(u64, caller_sum);

u64 probed_fn(u64 x);			/* probe.S */
void opt_thunk(void);
void pt_indirect_thunk_rax(void);
extern u8 kprobe_boost_slot[], optprobe_detour[];
extern const unsigned long probed_fn_size;

static unsigned long kp_optimized;	/* KPROBE_FLAG_OPTIMIZED */
static u8 orig[OPT_LEN];

void opt_handler(unsigned long ip, unsigned long parent_ip)
{
	this_cpu_inc(detour_hits);
}

int int3_hook(struct pt_regs *regs)
{
	if (regs->ip - INT3_INSN_SIZE != (unsigned long)probed_fn)
		return 0;
	if (READ_ONCE(kp_optimized)) {
		regs->ip = (unsigned long)optprobe_detour;	/* setup_detour_execution() */
	} else {
		this_cpu_inc(kprobe_hits);
		regs->ip = (unsigned long)kprobe_boost_slot;	/* boosted: no single-step */
	}
	return 1;
}

/* --- the check: a small instruction decoder ------------------------------ */

struct insn {
	int len;
	u8 opcode;		/* the first opcode byte after a REX prefix */
	u8 opcode2;		/* the second, after 0x0f */
	u8 modrm_reg;
	long rel;		/* a relative branch's displacement */
	bool is_rel;
};

/* The length of a ModRM operand (with SIB and displacement) at p. */
static int modrm_len(const u8 *p, u8 *reg)
{
	u8 modrm = p[0], mod = modrm >> 6, rm = modrm & 7;
	int n = 1;

	*reg = (modrm >> 3) & 7;
	if (mod != 3 && rm == 4)
		n++;			/* SIB */
	if (mod == 1)
		n += 1;
	else if (mod == 2 || (mod == 0 && rm == 5))
		n += 4;			/* disp32, or RIP-relative */
	else if (mod == 0 && rm == 4 && (p[1] & 7) == 5)
		n += 4;			/* SIB with no base */
	return n;
}

/*
 * insn_decode() for the instructions probed_fn is made of; anything else
 * fails the check (len 0), which only ever refuses an optimization.
 */
static void insn_decode(struct insn *in, const u8 *p)
{
	const u8 *s = p;
	bool rex_w = false;
	u8 op;

	memset(in, 0, sizeof(*in));
	if ((*p & 0xf0) == 0x40)
		rex_w = *p++ & 8;
	op = *p++;
	in->opcode = op;
	switch (op) {
	case 0x50 ... 0x5f:		/* push, pop */
	case 0xc3:			/* ret */
	case 0xcc:			/* int3 */
		break;
	case 0x01: case 0x09: case 0x21: case 0x29: case 0x31: case 0x33:
	case 0x39: case 0x3b: case 0x85: case 0x89: case 0x8b: case 0x8d:
	case 0xff:
		p += modrm_len(p, &in->modrm_reg);
		break;
	case 0x83: case 0xc1:
		p += modrm_len(p, &in->modrm_reg) + 1;
		break;
	case 0x81:
		p += modrm_len(p, &in->modrm_reg) + 4;
		break;
	case 0xb8 ... 0xbf:
		p += rex_w ? 8 : 4;
		break;
	case 0xeb: case 0x70 ... 0x7f:	/* jmp rel8, jcc rel8 */
		in->rel = (signed char)p[0];
		in->is_rel = true;
		p += 1;
		break;
	case 0xe8: case 0xe9:		/* call, jmp rel32 */
		in->rel = (int)(p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24);
		in->is_rel = op == 0xe9;
		p += 4;
		break;
	case 0x0f:
		in->opcode2 = *p++;
		if ((in->opcode2 & 0xf0) != 0x80)
			return;
		in->rel = (int)(p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24);
		in->is_rel = true;
		p += 4;
		break;
	default:
		return;
	}
	in->len = p - s;
}

/* __insn_is_indirect_jump(): jmp *r/m (ff /4, /5). */
static bool insn_is_indirect_jump(struct insn *in, unsigned long addr)
{
	if (in->opcode == 0xff && (in->modrm_reg & 6) == 4)
		return true;
#if !__has_include("pt_optprobe_nothunk.h")
	/* A jump to the retpoline thunk is an indirect jump (that commit). */
	if (in->opcode == 0xe9 &&
	    addr + in->len + in->rel == (unsigned long)pt_indirect_thunk_rax)
		return true;
#endif
	return false;
}

/* insn_jump_into_range(): a relative branch to start..start+len-1. */
static bool insn_jump_into_range(struct insn *in, unsigned long addr,
				 unsigned long start, unsigned long len)
{
	unsigned long target;

	if (!in->is_rel)
		return false;
	target = addr + in->len + in->rel;
	return target >= start && target < start + len;
}

/*
 * can_optimize(): decode the function from its start to its end; refuse
 * on what does not decode, on an int3 (another subsystem's probe), on an
 * indirect jump and on a jump into the jump's displacement bytes.
 */
static bool can_optimize(unsigned long paddr, unsigned long end)
{
	unsigned long addr = paddr;
	struct insn in;
	u8 buf[16];

	while (addr < end) {
		memcpy(buf, (void *)addr, sizeof(buf));
		if (addr < paddr + OPT_LEN)	/* recover_probed_instruction() */
			memcpy(buf, orig + (addr - paddr), paddr + OPT_LEN - addr);
		insn_decode(&in, buf);
		if (!in.len || in.opcode == INT3_INSN_OPCODE)
			return false;
		if (insn_is_indirect_jump(&in, addr) ||
		    insn_jump_into_range(&in, addr, paddr + INT3_INSN_SIZE,
					 JMP32_INSN_SIZE - INT3_INSN_SIZE))
			return false;
		addr += in.len;
	}
	return true;
}

/* --- RCU tasks ---------------------------------------------------------- */

static unsigned long tasks_qs[MAX_TASKS];	/* voluntary schedule points passed */
static unsigned long tasks_gone[MAX_TASKS];
static unsigned long tasks_seen[MAX_TASKS];

static void rcu_tasks_qs(void)
{
	unsigned long id = current->id;

	if (id < MAX_TASKS) {
		WRITE_ONCE(tasks_seen[id], 1);
		atomic_long_inc(&tasks_qs[id]);
	}
}

static void synchronize_rcu_tasks(void)
{
	unsigned long snap[MAX_TASKS];
	int i;

	smp_mb();
	for (i = 0; i < MAX_TASKS; i++)
		snap[i] = READ_ONCE(tasks_qs[i]);
	for (i = 0; i < MAX_TASKS; i++) {
		if (!READ_ONCE(tasks_seen[i]))
			continue;
		while (READ_ONCE(tasks_qs[i]) == snap[i] && !READ_ONCE(tasks_gone[i]))
			cpu_relax();
	}
	smp_mb();
}

/* --- the optimizer ------------------------------------------------------- */

static void put_rel32(u8 *p, unsigned long from_end, unsigned long to)
{
	unsigned long rel = to - from_end;
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)(rel >> (8 * i));
}

static void prepare_slots(void)
{
	unsigned long fn = (unsigned long)probed_fn;
	unsigned long slot = (unsigned long)kprobe_boost_slot;
	unsigned long det = (unsigned long)optprobe_detour;
	u8 buf[32];
	int n = 0;

	/* Boost slot: push %rbx; jmp probed_fn+1. */
	buf[n++] = orig[0];
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, slot + n + 4, fn + 1);
	n += 4;
	text_poke(kprobe_boost_slot, buf, n);

	/* Detour: call opt_thunk; the copied instructions; jmp probed_fn+7. */
	n = 0;
	buf[n++] = CALL_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, (unsigned long)opt_thunk);
	n += 4;
	memcpy(buf + n, orig, OPT_LEN);
	n += OPT_LEN;
	buf[n++] = JMP32_INSN_OPCODE;
	put_rel32(buf + n, det + n + 4, fn + OPT_LEN);
	n += 4;
	text_poke(optprobe_detour, buf, n);
	sync_core_all();
}

static void spin(u64 n)
{
	while (n--)
		cpu_relax();
}

void patcher_main(unsigned long arg)
{
	u8 *addr = (u8 *)probed_fn;
	u8 int3 = INT3_INSN_OPCODE;
	u8 jmp[5], unopt[5];
	bool optimizable;
	u64 r;
	int i;

	for (i = 0; i < OPT_LEN; i++)
		orig[i] = addr[i];
	/* register_kprobe(): may this probe be optimized later? */
	optimizable = can_optimize((unsigned long)addr, (unsigned long)addr + probed_fn_size);
	prepare_slots();

	/* Arm the kprobe: an int3 over push %rbx. */
	text_poke(addr, &int3, INT3_INSN_SIZE);
	sync_core_all();
	pt_marker(MARKER_ARMED, optimizable);

	jmp[0] = JMP32_INSN_OPCODE;
	put_rel32(jmp + 1, (unsigned long)addr + 5, (unsigned long)optprobe_detour);
	unopt[0] = INT3_INSN_OPCODE;
	for (i = 1; i < 5; i++)
		unopt[i] = orig[i];

	for (r = 0; r < READ_ONCE(rounds); r++) {
		spin(READ_ONCE(dwell));
		if (!optimizable)
			continue;	/* it stays an int3 kprobe */

		/* optimize_kprobe(): hits go to the detour from now on. */
		WRITE_ONCE(kp_optimized, 1);
		synchronize_rcu_tasks();
		text_poke_bp(addr, jmp, sizeof(jmp), optprobe_detour);
		pt_marker(MARKER_OPTIMIZED, r);

		spin(READ_ONCE(dwell));

		/* Unoptimize: back to the int3 and the original bytes. */
		text_poke_bp(addr, unopt, sizeof(unopt), optprobe_detour);
		WRITE_ONCE(kp_optimized, 0);
		pt_marker(MARKER_UNOPTIMIZED, r);
	}
}

void caller_main(unsigned long arg)
{
	u64 sum = 0;
	u64 n;

	for (n = 0; n < READ_ONCE(calls); n++) {
		rcu_tasks_qs();		/* a voluntary schedule point */
		sum += probed_fn(n);
	}
	if (current->id < MAX_TASKS)
		WRITE_ONCE(tasks_gone[current->id], 1);
	this_cpu_write(caller_sum, sum);
}

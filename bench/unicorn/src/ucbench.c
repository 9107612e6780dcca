/*
 * ucbench: runs the bench-fentry guest (scenarios/bench-fentry, its prebuilt
 * slice ELF) on libunicorn, so that patchtrace's Minstr/s can be set beside
 * another emulator's on the same instruction stream (see README.md here).
 *
 * usage: ucbench ELF ITERS MODE
 *   MODE nohook      emulate only, no hooks
 *        trace+memw  a UC_HOOK_CODE hook on every instruction writing a
 *                    24-byte record {seq, rip, size, cpu} and a
 *                    UC_HOOK_MEM_WRITE hook writing a 24-byte record
 *                    {addr, value, size, cpu} for every memory write, each
 *                    into a preallocated, pre-faulted ring larger than the
 *                    cache (the in-memory cost of tracing: no encoding, no I/O)
 *
 * The ELF is loaded as patchtrace's machine loads it: every allocated
 * section at its link address, the per-CPU section (linked at 0) copied to
 * CPU 0's per-CPU area with GS base and this_cpu_off pointing at it, and
 * ITERS written to bench_iters. bench_main is then called directly (the
 * slice's boot and scheduler do not run: Unicorn has no SMP or interrupts
 * to drive them) with a return address at which emulation stops.
 *
 * Only uc_emu_start is timed, in wall time (CLOCK_MONOTONIC) and in the
 * process's CPU time (CLOCK_PROCESS_CPUTIME_ID, which moves less on a loaded
 * host). One line on stdout:
 *   unicorn MODE INSNS SECONDS MINSTR_PER_S CPU_SECONDS CPU_MINSTR_PER_S
 *           BENCH_SLOT BENCH_RESULT
 * INSNS is bench_main's exact dynamic instruction count (11 + 20.5 per
 * iteration, from bench.S); in trace+memw mode the hooks' own counts are
 * checked against it and against 5 writes per iteration + 3, so a
 * mismatch (a miscount or a divergent execution) exits 1 naming it.
 * Exit 2: bad arguments, an unreadable ELF or a Unicorn error.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unicorn/unicorn.h>

/* patchtrace's slice layout (internal/slice/layout.go). */
#define PERCPU_BASE 0xffff888000000000ULL
#define STACK_LO 0xffffc90000000000ULL
#define STACK_LEN 0x4000ULL
/* A page of hlt where bench_main returns; emulation stops on reaching it. */
#define DONE_PAGE 0xffffffff80000000ULL
#define PAGE 0x1000ULL

#define RING_RECS (1u << 22) /* 96 MiB per ring: well past the last-level cache */

struct insn_rec {
    uint64_t seq, rip;
    uint8_t size, cpu, pad[6];
};
struct memw_rec {
    uint64_t addr, value;
    uint8_t size, cpu, pad[6];
};

struct trace {
    uint64_t n_insn, n_memw;
    struct insn_rec *insn;
    struct memw_rec *memw;
};

static void on_code(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    (void)uc;
    struct trace *t = ud;
    uint64_t seq = t->n_insn++;
    struct insn_rec *r = &t->insn[seq & (RING_RECS - 1)];
    r->seq = seq;
    r->rip = addr;
    r->size = (uint8_t)size;
    r->cpu = 0;
}

static bool on_memw(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
                    void *ud)
{
    (void)uc;
    (void)type;
    struct trace *t = ud;
    struct memw_rec *r = &t->memw[t->n_memw++ & (RING_RECS - 1)];
    r->addr = addr;
    r->value = (uint64_t)value;
    r->size = (uint8_t)size;
    r->cpu = 0;
    return true;
}

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "ucbench: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

#define UC(call)                                                                      \
    do {                                                                              \
        uc_err e_ = (call);                                                           \
        if (e_ != UC_ERR_OK) die("%s: %s", #call, uc_strerror(e_));                   \
    } while (0)

/* The ELF, read whole. */
static uint8_t *elf;
static size_t elf_len;
static const Elf64_Shdr *sh;
static int nsh;
static const char *shstr;
static int percpu_shndx = -1;

static const void *at(uint64_t off, uint64_t len, const char *what)
{
    if (off > elf_len || len > elf_len - off) die("ELF: %s lies outside the file%s", what, "");
    return elf + off;
}

static void load_elf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    if (n <= 0) die("%s: empty or unreadable%s", path, "");
    elf = malloc((size_t)n);
    if (!elf || fread(elf, 1, (size_t)n, f) != (size_t)n) die("%s: read failed%s", path, "");
    fclose(f);
    elf_len = (size_t)n;
    const Elf64_Ehdr *eh = at(0, sizeof *eh, "the ELF header");
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_machine != EM_X86_64)
        die("%s: not an x86-64 ELF64 file%s", path, "");
    if (eh->e_shentsize != sizeof(Elf64_Shdr)) die("%s: odd section header size%s", path, "");
    nsh = eh->e_shnum;
    sh = at(eh->e_shoff, (uint64_t)nsh * sizeof *sh, "the section headers");
    if (eh->e_shstrndx >= nsh) die("%s: no section name table%s", path, "");
    shstr = at(sh[eh->e_shstrndx].sh_offset, sh[eh->e_shstrndx].sh_size, "the section names");
    for (int i = 0; i < nsh; i++)
        if (!strcmp(shstr + sh[i].sh_name, ".data..percpu")) percpu_shndx = i;
}

/* sym returns a symbol's value; *percpu says whether it is a per-CPU offset. */
static uint64_t sym(const char *name, bool *percpu)
{
    for (int i = 0; i < nsh; i++) {
        if (sh[i].sh_type != SHT_SYMTAB) continue;
        const Elf64_Sym *s = at(sh[i].sh_offset, sh[i].sh_size, "the symbol table");
        const char *str = at(sh[sh[i].sh_link].sh_offset, sh[sh[i].sh_link].sh_size, "the symbol names");
        for (uint64_t k = 0; k < sh[i].sh_size / sizeof *s; k++) {
            if (s[k].st_name >= sh[sh[i].sh_link].sh_size || strcmp(str + s[k].st_name, name))
                continue;
            if (percpu) *percpu = s[k].st_shndx == percpu_shndx;
            return s[k].st_value;
        }
    }
    die("ELF has no symbol %s%s", name, "");
    return 0;
}

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ucbench ELF ITERS nohook|trace+memw\n");
        return 2;
    }
    char *end;
    errno = 0;
    uint64_t iters = strtoull(argv[2], &end, 10);
    if (errno || *end || iters < 1 || iters > (1ULL << 40)) die("ITERS %s: want 1..2^40%s", argv[2], "");
    bool tracing;
    if (!strcmp(argv[3], "nohook"))
        tracing = false;
    else if (!strcmp(argv[3], "trace+memw"))
        tracing = true;
    else
        die("unknown mode %s (nohook, trace+memw)%s", argv[3], "");
    load_elf(argv[1]);
    if (percpu_shndx < 0) die("%s: no .data..percpu section%s", argv[1], "");

    uc_engine *uc;
    UC(uc_open(UC_ARCH_X86, UC_MODE_64, &uc));

    /* Allocated sections at their link addresses, page-rounded, with the
     * section's permissions (overlapping pages take the union). */
    struct { uint64_t lo, hi; uint32_t prot; } r[64];
    int nr = 0;
    for (int i = 0; i < nsh; i++) {
        if (!(sh[i].sh_flags & SHF_ALLOC) || i == percpu_shndx || sh[i].sh_size == 0) continue;
        if (nr == 64) die("too many sections%s%s", "", "");
        uint32_t prot = UC_PROT_READ;
        if (sh[i].sh_flags & SHF_WRITE) prot |= UC_PROT_WRITE;
        if (sh[i].sh_flags & SHF_EXECINSTR) prot |= UC_PROT_EXEC;
        uint64_t lo = sh[i].sh_addr & ~(PAGE - 1), hi = (sh[i].sh_addr + sh[i].sh_size + PAGE - 1) & ~(PAGE - 1);
        int k;
        for (k = 0; k < nr; k++)
            if (lo < r[k].hi && r[k].lo < hi) break;
        if (k < nr) {
            r[k].lo = lo < r[k].lo ? lo : r[k].lo;
            r[k].hi = hi > r[k].hi ? hi : r[k].hi;
            r[k].prot |= prot;
        } else {
            r[nr].lo = lo, r[nr].hi = hi, r[nr].prot = prot, nr++;
        }
    }
    for (int k = 0; k < nr; k++) UC(uc_mem_map(uc, r[k].lo, r[k].hi - r[k].lo, r[k].prot));
    for (int i = 0; i < nsh; i++) {
        if (!(sh[i].sh_flags & SHF_ALLOC) || i == percpu_shndx || sh[i].sh_type == SHT_NOBITS) continue;
        UC(uc_mem_write(uc, sh[i].sh_addr, at(sh[i].sh_offset, sh[i].sh_size, "a section"), sh[i].sh_size));
    }

    /* CPU 0's per-CPU area: the template, this_cpu_off = its base = GS base. */
    const Elf64_Shdr *pc = &sh[percpu_shndx];
    uint64_t pcsize = (pc->sh_size + PAGE - 1) & ~(PAGE - 1);
    UC(uc_mem_map(uc, PERCPU_BASE, pcsize, UC_PROT_READ | UC_PROT_WRITE));
    UC(uc_mem_write(uc, PERCPU_BASE, at(pc->sh_offset, pc->sh_size, "the per-CPU section"), pc->sh_size));
    bool isper;
    uint64_t off = sym("this_cpu_off", &isper);
    if (!isper) die("this_cpu_off is not a per-CPU symbol%s%s", "", "");
    uint64_t base = PERCPU_BASE;
    UC(uc_mem_write(uc, PERCPU_BASE + off, &base, 8));
    UC(uc_reg_write(uc, UC_X86_REG_GS_BASE, &base));

    uint64_t it = sym("bench_iters", &isper);
    UC(uc_mem_write(uc, it, &iters, 8));
    uint64_t slot = sym("bench_slot", &isper), result = sym("bench_result", NULL);

    /* Stack with bench_main's return address: the hlt page. */
    uint8_t hlt[PAGE];
    memset(hlt, 0xf4, sizeof hlt);
    UC(uc_mem_map(uc, DONE_PAGE, PAGE, UC_PROT_READ | UC_PROT_EXEC));
    UC(uc_mem_write(uc, DONE_PAGE, hlt, sizeof hlt));
    UC(uc_mem_map(uc, STACK_LO, STACK_LEN, UC_PROT_READ | UC_PROT_WRITE));
    uint64_t rsp = STACK_LO + STACK_LEN - 8, ret = DONE_PAGE;
    UC(uc_mem_write(uc, rsp, &ret, 8));
    UC(uc_reg_write(uc, UC_X86_REG_RSP, &rsp));

    struct trace t = {0};
    uc_hook h1, h2;
    if (tracing) {
        t.insn = malloc(RING_RECS * sizeof *t.insn);
        t.memw = malloc(RING_RECS * sizeof *t.memw);
        if (!t.insn || !t.memw) die("out of memory for the trace rings%s%s", "", "");
        memset(t.insn, 0, RING_RECS * sizeof *t.insn); /* pre-fault */
        memset(t.memw, 0, RING_RECS * sizeof *t.memw);
        UC(uc_hook_add(uc, &h1, UC_HOOK_CODE, on_code, &t, 1, 0)); /* begin > end: everywhere */
        UC(uc_hook_add(uc, &h2, UC_HOOK_MEM_WRITE, on_memw, &t, 1, 0));
    }

    uint64_t entry = sym("bench_main", NULL);
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID), t0 = now(CLOCK_MONOTONIC);
    uc_err err = uc_emu_start(uc, entry, DONE_PAGE, 0, 0);
    double dt = now(CLOCK_MONOTONIC) - t0, dc = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (err != UC_ERR_OK) {
        uint64_t rip = 0;
        uc_reg_read(uc, UC_X86_REG_RIP, &rip);
        fprintf(stderr, "ucbench: uc_emu_start: %s at rip %#" PRIx64 "\n", uc_strerror(err), rip);
        return 2;
    }

    int bad = 0;
    uint64_t rip, rsp_end, vslot, vresult;
    UC(uc_reg_read(uc, UC_X86_REG_RIP, &rip));
    UC(uc_reg_read(uc, UC_X86_REG_RSP, &rsp_end));
    UC(uc_mem_read(uc, PERCPU_BASE + slot, &vslot, 8));
    UC(uc_mem_read(uc, PERCPU_BASE + result, &vresult, 8));
    /* bench.S: 7 prologue + 20 per iteration + 1 more for even i + 4 epilogue. */
    uint64_t insns = 11 + 20 * iters + (iters + 1) / 2;
    if (rip != DONE_PAGE) fprintf(stderr, "ucbench: stopped at %#" PRIx64 ", not the return\n", rip), bad = 1;
    if (rsp_end != rsp + 8) fprintf(stderr, "ucbench: rsp %#" PRIx64 " on return, want %#" PRIx64 "\n", rsp_end, rsp + 8), bad = 1;
    if (tracing && t.n_insn != insns)
        fprintf(stderr, "ucbench: the code hook saw %" PRIu64 " instructions, bench.S makes %" PRIu64 "\n", t.n_insn, insns), bad = 1;
    if (tracing && t.n_memw != 5 * iters + 3)
        fprintf(stderr, "ucbench: the write hook saw %" PRIu64 " writes, bench.S makes %" PRIu64 "\n", t.n_memw, 5 * iters + 3), bad = 1;
    if (tracing && !bad) {
        /* The last records: bench_main's ret and its store of the result. */
        const struct insn_rec *li = &t.insn[(t.n_insn - 1) & (RING_RECS - 1)];
        const struct memw_rec *lw = &t.memw[(t.n_memw - 1) & (RING_RECS - 1)];
        if (li->seq != insns - 1 || li->size != 1)
            fprintf(stderr, "ucbench: last instruction record seq %" PRIu64 " size %u\n", li->seq, li->size), bad = 1;
        if (lw->addr != PERCPU_BASE + result || lw->value != vresult || lw->size != 8)
            fprintf(stderr, "ucbench: last write record %#" PRIx64 " = %#" PRIx64 ", want bench_result\n", lw->addr, lw->value), bad = 1;
    }
    printf("unicorn %s %" PRIu64 " %.4f %.2f %.4f %.2f %" PRIu64 " %" PRIu64 "\n", argv[3], insns,
           dt, (double)insns / dt / 1e6, dc, (double)insns / dc / 1e6, vslot, vresult);
    uc_close(uc);
    return bad;
}

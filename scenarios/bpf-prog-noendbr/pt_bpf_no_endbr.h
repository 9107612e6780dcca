/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_bpf_no_endbr.h - its presence makes lib/bpf-prog-endbr emit images
 * without the ENDBR64 prologue, as Linux's JIT did before commit
 * 589127105588 ("x86/ibt,bpf: Add ENDBR instructions to prologue and
 * trampoline").
 */

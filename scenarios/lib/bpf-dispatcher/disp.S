/* SPDX-License-Identifier: GPL-2.0 */
/*
 * disp.S - the BPF dispatcher's entry and its image.
 *
 * bpf_dispatcher_xdp_func(ctx, insnsi, bpf_func) is what Linux's
 * DEFINE_BPF_DISPATCHER(xdp) gives: a function whose first five bytes are a
 * nop that bpf_dispatcher_update() turns into "jmp image" with
 * text_poke_bp(), followed by the indirect call it replaces (a tail jump
 * through %rdx here). The image is one page of executable memory split in
 * two halves; each update writes the inactive half and points the entry at
 * it (kernel/bpf/dispatcher.c, arch_prepare_bpf_dispatcher()). Linux takes
 * the page from the BPF program pack; here it is a page of kernel text,
 * changed only through text_poke() (bpf_arch_text_copy()) like the pack.
 */
#include "entry.h"

	.text

SYM_FUNC_START(bpf_dispatcher_xdp_func)
	.byte	0x0f, 0x1f, 0x44, 0x00, 0x00	/* nop5: the site */
	jmp	*%rdx				/* bpf_func(ctx, insnsi) */
SYM_FUNC_END(bpf_dispatcher_xdp_func)

	.balign	4096
SYM_FUNC_START(bpf_dispatcher_image)
	.fill	4096, 1, 0xcc
SYM_FUNC_END(bpf_dispatcher_image)
	.balign	4096

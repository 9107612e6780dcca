/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_bpf_jit_free_rw.h - its presence makes lib/bpf-jit-free's
 * free_image() undo the image's protection with set_memory_rw()
 * (bpf_jit_binary_unlock_ro()) before module_memfree(), as before upstream
 * commit d53d2f78cead ("bpf: Use vmalloc special flag"): the image is
 * writable and executable until the free.
 */

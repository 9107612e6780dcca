/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/jl-modinit/jl.c, do_init_module() without invalidating the init text's jump entries. */

/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/jl-modinit/jl.c, a jump label transform that writes without first checking the bytes it replaces. */

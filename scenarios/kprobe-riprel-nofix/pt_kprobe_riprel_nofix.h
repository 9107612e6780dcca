/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_kprobe_riprel_nofix.h - its presence makes lib/kprobe-riprel copy the
 * probed instruction into the slot byte for byte, without adjusting its
 * RIP-relative displacement for the slot's address.
 */

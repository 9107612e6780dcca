/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_sites_off3.h - its presence makes lib/sc-tail lay the module's
 * .static_call_sites entries out 3 bytes off 4-byte alignment (2 without).
 */

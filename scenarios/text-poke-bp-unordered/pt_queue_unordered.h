/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_queue_unordered.h - its presence makes lib/tpb-order build
 * text_poke_queue() without text_poke_addr_ordered(): sites are queued in
 * the order they come, and the int3 handler's binary search can miss one.
 */

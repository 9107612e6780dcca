/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_db_no_ist_shift.h - its presence makes lib/kprobe-db-ist build the #DB
 * entry without the IST shift: a #DB nested in the #DB handler is delivered
 * over the running handler's frame.
 */

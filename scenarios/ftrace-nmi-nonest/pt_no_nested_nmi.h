/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pt_no_nested_nmi.h - its presence makes base/entry.S build the naive NMI
 * entry (pt_regs on the hardware frame at the IST top), as Linux's was
 * before commit 3f3c8b8c4b2a ("x86: Add workaround to NMI iret woes").
 */

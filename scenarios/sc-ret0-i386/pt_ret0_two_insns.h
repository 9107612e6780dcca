/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/sc-ret0/ret0.c, the inline return-0 as before 1cd5f059d956: two instructions where i386 decodes them (dec %ax; xorl %eax,%eax). */

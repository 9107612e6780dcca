/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/rethunk/thunks.S, srso_safe_ret() dropping the return address with add (it changes RFLAGS). */

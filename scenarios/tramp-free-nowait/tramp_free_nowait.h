/* SPDX-License-Identifier: GPL-2.0 */
/* Selects, in lib/tramp-free/free.c, the retirement without synchronize_rcu_tasks(). */

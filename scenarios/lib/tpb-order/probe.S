/* SPDX-License-Identifier: GPL-2.0 */
/*
 * probe.S - the fentry handler the batch installs at both sites.
 */
#include "entry.h"

	.text

FENTRY_HANDLER handler, handler_func

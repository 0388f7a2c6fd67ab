/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The sb_config map the programs read on every message (config.c). */
#ifndef SOCKBYPASS_CONFIG_H
#define SOCKBYPASS_CONFIG_H

#include <stdbool.h>

/* load: the whole config from env, redirection on */
int config_enable(int config_fd, bool sleepers_counted);
/* unload: every sender falls back to TCP on its next write; the rest kept */
int config_disable(int config_fd);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Port lists <-> struct sb_scope (ports.c): no BPF, the fuzzer links it as is. */
#ifndef SOCKBYPASS_PORTS_H
#define SOCKBYPASS_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include "sockbypass.h"
#include "options.h"

/* apply "5432,6379,8000-8100" to sc as class: 0, or its exit code after one line */
int ports_apply(struct sb_scope *sc, const char *list, enum sb_port_class class, bool remove);
#define SB_PORTS_TEXT_MAX (SB_PORTS * 6) /* the longest list ports_format can write */
void ports_format(const struct sb_scope *sc, enum sb_port_class class, char *buf, size_t len);
/* the lists as "name: list" lines, JSON members or Prometheus gauges */
void scope_print(const struct sb_scope *sc, enum sb_format format);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Port lists ("5432,6379,8000-8100") read into and written from a struct
 * sb_scope. No BPF here: the option parser and its fuzzer use it as is.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sockbypass.h"
#include "errmsg.h"
#include "ports.h"

static const char *list_name(enum sb_port_class class)
{
	return class == SB_PORT_ONLY ? "--only-ports" : "--exclude-ports";
}

/* One port number, 1-65535, at *p; advances *p past its digits. */
static int read_port(const char **p, unsigned int *port)
{
	unsigned long v = 0;
	const char *s = *p;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 99999) /* far out of range already: stop before it overflows */
			break;
		s++;
	}
	while (isdigit((unsigned char)*s))
		s++;
	*p = s;
	*port = v > 65535 ? 65536 : (unsigned int)v;
	return 0;
}

/*
 * Mark every port of list as class in sc (adding, or with remove taking
 * them off that list). Errors print one line and return SB_EXIT_PORTS, or
 * SB_EXIT_PORT_CONFLICT for a port already on the other list.
 */
int ports_apply(struct sb_scope *sc, const char *list, enum sb_port_class class, bool remove)
{
	const char *p = list, *item;
	unsigned int lo, hi;

	if (!*list) {
		err_line("%s: empty port list; give ports like 5432,6379,8000-8100", list_name(class));
		return SB_EXIT_PORTS;
	}
	for (;;) {
		item = p;
		if (read_port(&p, &lo))
			goto malformed;
		hi = lo;
		if (*p == '-') {
			p++;
			if (read_port(&p, &hi))
				goto malformed;
		}
		if (*p && *p != ',')
			goto malformed;
		if (lo == 0 || hi == 0 || lo > 65535 || hi > 65535) {
			err_line("%s: '%.*s': ports are 1-65535", list_name(class), (int)(p - item), item);
			return SB_EXIT_PORTS;
		}
		if (lo > hi) {
			err_line("%s: '%.*s': a range goes from the lower port to the higher",
				 list_name(class), (int)(p - item), item);
			return SB_EXIT_PORTS;
		}
		for (unsigned int port = lo; port <= hi; port++) {
			enum sb_port_class now = sc->port[port];

			if (remove) {
				if (now == class) {
					sc->port[port] = SB_PORT_UNLISTED;
					class == SB_PORT_ONLY ? sc->only_count-- : sc->excluded_count--;
				}
				continue;
			}
			if (now != SB_PORT_UNLISTED && now != class) {
				err_line("port %u is on both --only-ports and --exclude-ports; "
					 "name each port on one list", port);
				return SB_EXIT_PORT_CONFLICT;
			}
			if (now == SB_PORT_UNLISTED) {
				sc->port[port] = class;
				class == SB_PORT_ONLY ? sc->only_count++ : sc->excluded_count++;
			}
		}
		if (!*p)
			return 0;
		p++; /* the comma */
		if (!*p)
			goto malformed;
	}
malformed:
	err_line("%s: '%s' is not a port list; give ports and ranges like 5432,6379,8000-8100",
		 list_name(class), list);
	return SB_EXIT_PORTS;
}

/* The ports of class in sc as a list ("5432,8000-8100"), or "-" if none. */
void ports_format(const struct sb_scope *sc, enum sb_port_class class, char *buf, size_t len)
{
	size_t used = 0;
	unsigned int port = 1;

	buf[0] = '\0';
	while (port < SB_PORTS) {
		unsigned int lo = port;
		int n;

		if (sc->port[port] != class) {
			port++;
			continue;
		}
		while (port + 1 < SB_PORTS && sc->port[port + 1] == class)
			port++;
		n = lo == port ? snprintf(buf + used, len - used, "%s%u", used ? "," : "", lo)
			       : snprintf(buf + used, len - used, "%s%u-%u", used ? "," : "", lo, port);
		if (n < 0 || (size_t)n >= len - used) {
			/* cut at the last whole item: a list is never shown wrong */
			snprintf(buf + used, len - used, "%s...", used ? "," : "");
			return;
		}
		used += (size_t)n;
		port++;
	}
	if (!used)
		snprintf(buf, len, "-");
}

/*
 * The lists in sc: "name: list" lines, JSON members (the caller writes the
 * braces), or Prometheus gauges of how many ports each list holds.
 */
void scope_print(const struct sb_scope *sc, enum sb_format format)
{
	static char only[SB_PORTS_TEXT_MAX], excluded[SB_PORTS_TEXT_MAX];

	ports_format(sc, SB_PORT_ONLY, only, sizeof(only));
	ports_format(sc, SB_PORT_EXCLUDED, excluded, sizeof(excluded));
	switch (format) {
	case FORMAT_JSON:
		printf("\"only_ports\":\"%s\",\"exclude_ports\":\"%s\"",
		       strcmp(only, "-") ? only : "", strcmp(excluded, "-") ? excluded : "");
		break;
	case FORMAT_PROMETHEUS:
		printf("# HELP sockbypass_scope_ports Ports on each port list (0 only: every port)\n"
		       "# TYPE sockbypass_scope_ports gauge\n"
		       "sockbypass_scope_ports{list=\"only\"} %u\n"
		       "sockbypass_scope_ports{list=\"exclude\"} %u\n",
		       sc->only_count, sc->excluded_count);
		break;
	default:
		printf("only_ports: %s\nexclude_ports: %s\n", only, excluded);
	}
}

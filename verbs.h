/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The verbs loader.c dispatches to, one file each (cmd_*.c). Each takes its
 * own argv (argv[0] is "sockbypass VERB") and returns the exit code. */
#ifndef SOCKBYPASS_VERBS_H
#define SOCKBYPASS_VERBS_H

int cmd_load(int argc, char **argv);
int cmd_unload(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_scope(int argc, char **argv);
int cmd_portmap(int argc, char **argv);

/* for the flag form (sockbypass --unload, --status): env already parsed */
int do_load(void);
int do_unload(void);
int do_status(void);

#endif

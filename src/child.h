/* child.h: what every forked child (worker or reaper) does first and last:
 * take over its signals from the master, open its own database connection
 * and backend, and close them on the way out. */
#ifndef CC_CHILD_H
#define CC_CHILD_H

#include "ops.h"

/* SIGTERM/SIGINT run on_term (installed without SA_RESTART, so a blocking
 * accept() or sleep returns); SIGPIPE and SIGHUP are ignored; the mask the
 * master blocked is lifted. */
void child_signals(void (*on_term)(int));
/* Open the store and the backend for this process: 0, or -1 (logged). */
int child_open(struct app *app, const struct cc_config *cfg, const struct flag_keys *keys,
               const char *role);
void child_close(struct app *app);

#endif

/* reaper.h: the one reaper process: expiry every tick, reconciliation of the
 * database against the engine's labelled objects every few seconds. */
#ifndef CC_REAPER_H
#define CC_REAPER_H

#include <stdio.h>

#include "ops.h"

struct reconcile_report {
    int expired, orphans_removed, lost, stale_starts, stale_stops, ports_freed, failures;
};

/* Runs until SIGTERM. Returns the exit code. */
int reaper_run(const struct cc_config *cfg, const struct flag_keys *keys);
/* Stop every running container past its deadline. */
int reaper_expire(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep);
/* One level-based pass: stale starts/stops, orphans, lost containers. The
 * report is also stored (container_status 'reconcile') for the admin API. */
int reaper_reconcile(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep);
void reaper_print(const struct reconcile_report *rep, FILE *out);

#endif

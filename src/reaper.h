/* reaper.h: the one reaper process: expiry every tick, reconciliation of the
 * database against the engine's labelled objects every few seconds. */
#ifndef CC_REAPER_H
#define CC_REAPER_H

#include <stdbool.h>
#include <stdio.h>

#include "ops.h"

/* The first REPORT_IDS instance ids of each kind of action, for the log and
 * the stored status (the counts stay exact beyond them). */
#define REPORT_IDS 16
struct report_ids {
    int n;
    int64_t id[REPORT_IDS];
};

struct reconcile_report {
    int expired, orphans_removed, lost, stale_starts, stale_stops, ports_freed, failures;
    struct report_ids expired_ids, orphan_ids, lost_ids, stale_ids;
};

/* Runs until SIGTERM. Returns the exit code. */
int reaper_run(const struct cc_config *cfg, const struct flag_keys *keys);
/* Stop every running container past its deadline. */
int reaper_expire(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep);
/* One level-based pass: stale starts/stops, orphans, lost containers; adds
 * what it did to rep. */
int reaper_reconcile(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep);
/* Store a report (container_status 'reconcile') for the admin API. */
void reaper_save_report(struct app *app, const struct reconcile_report *rep, int64_t now);
void reaper_print(const struct reconcile_report *rep, FILE *out);
/* True when the report holds any action or failure (worth a log line). */
bool reaper_report_any(const struct reconcile_report *rep);

#endif

/* reaper.c: expiry and reconciliation (see reaper.h).
 *
 * Deadlines live in the database, so a container expires on time even when
 * the app was stopped and restarted in between. Reconciliation is by level:
 * engine labels against rows, repeated until they agree; every action is
 * idempotent. Must not: touch engine objects without our label. */
#include "reaper.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "lifecycle.h"
#include "log.h"
#include "pool.h"

static volatile sig_atomic_t reaper_stop;

static void on_term(int sig)
{
    (void)sig;
    reaper_stop = 1;
}

/* 0: stopped (or already ended); 1: no longer expired (extended or claimed
 * since it was listed); -1: a failure. */
static int stop_id(struct app *app, arena_t *a, int64_t id, const char *end_state,
                   const char *reason, int64_t now)
{
    struct instance inst;
    bool found;
    struct cc_error err = {0};
    if (store_get_instance(app->store, a, id, &inst, &found, &err) < 0)
        return -1;
    if (!found || !inst.live)
        return 0;
    if (!lifecycle_expired(inst.deadline, now))
        return 1; /* extended (or claimed from the warm pool) since it was listed */
    if (strcmp(inst.account_kind, "pool") == 0)
        return pool_retire(app, inst.id, inst.name, end_state,
                           "unclaimed until its warm pool deadline", now, &err);
    return ops_stop(app, a, &inst, end_state, reason, now, &err);
}

int reaper_expire(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep)
{
    int64_t *ids;
    size_t n;
    struct cc_error err = {0};
    if (store_ids_expired(app->store, a, now, &ids, &n, &err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int rc = stop_id(app, a, ids[i], "expired", "deadline passed", now);
        if (rc == 0)
            rep->expired++;
        else if (rc < 0)
            rep->failures++;
    }
    return 0;
}

/* Rows stuck in starting or stopping belong to a process that died: remove
 * the engine object by name (idempotent) and end the row. */
static void stale(struct app *app, arena_t *a, const char *state, int64_t grace, int64_t now,
                  int *count, struct reconcile_report *rep)
{
    int64_t *ids;
    size_t n;
    struct cc_error err = {0};
    if (store_ids_stale(app->store, a, state, now - grace, &ids, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct instance inst;
        bool found, changed;
        if (store_get_instance(app->store, a, ids[i], &inst, &found, &err) < 0 || !found)
            continue;
        if (app->backend->ops->stop(app->backend, inst.name, &err) < 0) {
            rep->failures++;
            continue;
        }
        const char *end = strcmp(state, "starting") == 0 ? "failed"
                          : lifecycle_expired(inst.deadline, now) ? "expired"
                                                                  : "stopped";
        if (store_end(app->store, inst.id, end, "its stop or start did not finish; the reaper finished it", now,
                      &changed, &err) == 0 && changed)
            (*count)++;
    }
}

static bool listed(const struct backend_object *objs, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (objs[i].instance_id == id)
            return true;
    return false;
}

/* The live row ids, read once per pass (after the engine listing: every
 * listed object's row existed before the object did), sorted for lookups. */
struct live_set {
    int64_t *ids;
    size_t n;
};

static int cmp_id(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static bool is_live(const struct live_set *live, int64_t id)
{
    return bsearch(&id, live->ids, live->n, sizeof(int64_t), cmp_id) != NULL;
}

static void orphans(struct app *app, const struct backend_object *objs, size_t n,
                    const struct live_set *live, int64_t now, struct reconcile_report *rep)
{
    struct cc_error err = {0};
    for (size_t i = 0; i < n; i++) {
        if (objs[i].instance_id > 0 && is_live(live, objs[i].instance_id))
            continue;
        if (now - objs[i].created < app->cfg->orphan_grace_seconds)
            continue;
        if (app->backend->ops->stop(app->backend, objs[i].name, &err) == 0) {
            rep->orphans_removed++;
            log_info("reconcile: removed orphan %s (instance %lld)", objs[i].name,
                     (long long)objs[i].instance_id);
        } else {
            rep->failures++;
        }
    }
}

static void lost(struct app *app, arena_t *a, const struct backend_object *objs, size_t n,
                 const struct live_set *live, int64_t listed_at, struct reconcile_report *rep)
{
    const int64_t *ids = live->ids;
    struct cc_error err = {0};
    for (size_t i = 0; i < live->n; i++) {
        struct instance inst;
        bool found, changed;
        struct backend_object obj;
        if (listed(objs, n, ids[i]) ||
            store_get_instance(app->store, a, ids[i], &inst, &found, &err) < 0 || !found ||
            strcmp(inst.state, "running") != 0 || inst.started_at > listed_at - 5)
            continue;
        /* Confirm by name before declaring it lost: the listing may be stale. */
        if (app->backend->ops->inspect(app->backend, a, inst.name, &obj, &found, &err) < 0 ||
            (found && obj.running))
            continue;
        if (found)
            app->backend->ops->stop(app->backend, inst.name, &err);
        if (store_end(app->store, inst.id, "lost",
                      found ? "its container stopped by itself" : "its container disappeared",
                      time(NULL), &changed, &err) == 0 && changed) {
            rep->lost++;
            log_warn("reconcile: container %lld lost", (long long)inst.id);
        }
    }
}

/* Host ports of ended rows (a revert keeps them until its old container is
 * gone) are freed once the engine lists no object for the row. */
static void ended_ports(struct app *app, arena_t *a, const struct backend_object *objs, size_t n,
                        struct reconcile_report *rep)
{
    int64_t *ids;
    size_t nids;
    struct cc_error err = {0};
    if (store_ids_ports_ended(app->store, a, &ids, &nids, &err) < 0)
        return;
    for (size_t i = 0; i < nids; i++)
        if (!listed(objs, n, ids[i]) && store_free_ports(app->store, ids[i], &err) == 0)
            rep->ports_freed++;
}

static void save_report(struct app *app, const struct reconcile_report *r, int64_t now)
{
    char buf[256];
    struct cc_error err;
    snprintf(buf, sizeof(buf),
             "{\"expired\":%d,\"orphans_removed\":%d,\"lost\":%d,\"stale_starts\":%d,"
             "\"stale_stops\":%d,\"ports_freed\":%d,\"failures\":%d}",
             r->expired, r->orphans_removed, r->lost, r->stale_starts, r->stale_stops,
             r->ports_freed, r->failures);
    store_set_status(app->store, "reconcile", buf, now, &err);
}

int reaper_reconcile(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep)
{
    struct backend_object *objs;
    size_t n;
    struct cc_error err = {0};
    stale(app, a, "starting", app->cfg->starting_grace_seconds, now, &rep->stale_starts, rep);
    stale(app, a, "stopping", app->cfg->stopping_grace_seconds, now, &rep->stale_stops, rep);
    int64_t listed_at = time(NULL);
    if (app->backend->ops->list(app->backend, a, &objs, &n, &err) < 0) {
        log_warn("reconcile: engine listing failed (%s); nothing decided",
                 err_code_str(err.code));
        rep->failures++;
        return -1;
    }
    struct live_set live;
    if (store_ids_live(app->store, a, &live.ids, &live.n, &err) < 0) {
        rep->failures++;
        return -1; /* database trouble: decide nothing */
    }
    qsort(live.ids, live.n, sizeof(int64_t), cmp_id);
    orphans(app, objs, n, &live, now, rep);
    lost(app, a, objs, n, &live, listed_at, rep);
    ended_ports(app, a, objs, n, rep);
    save_report(app, rep, now);
    return 0;
}

void reaper_print(const struct reconcile_report *r, FILE *out)
{
    fprintf(out,
            "expired %d, orphans removed %d, lost %d, stale starts %d, stale stops %d, "
            "ports freed %d, failures %d\n",
            r->expired, r->orphans_removed, r->lost, r->stale_starts, r->stale_stops,
            r->ports_freed, r->failures);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL); /* SIGTERM interrupts it */
}

int reaper_run(const struct cc_config *cfg, const struct flag_keys *keys)
{
    log_set_role("reaper");
    child_signals(on_term);
    struct app app;
    if (child_open(&app, cfg, keys, "reaper") < 0)
        return 1;
    arena_t *a = arena_new(64 * 1024);
    int64_t last_reconcile = 0;
    while (!reaper_stop) {
        struct reconcile_report rep = {0};
        int64_t now = time(NULL);
        reaper_expire(&app, a, now, &rep);
        struct pool_report pool = {0};
        pool_tend(&app, a, now, &reaper_stop, &pool);
        if (now - last_reconcile >= cfg->reconcile_interval_seconds) {
            reaper_reconcile(&app, a, now, &rep);
            last_reconcile = now;
        }
        arena_reset(a);
        if (!reaper_stop)
            sleep_ms(cfg->reaper_interval_ms);
    }
    arena_free(a);
    child_close(&app);
    return 0;
}

/* reaper.c: expiry and reconciliation (see reaper.h).
 *
 * Deadlines live in the database, so a container expires on time even when
 * the app was stopped and restarted in between. Reconciliation is by level:
 * engine labels against rows, repeated until they agree; every action is
 * idempotent. Must not: touch engine objects without our label. */
#include "reaper.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "lifecycle.h"
#include "log.h"
#include "pool.h"
#include "tlsmap.h"

static volatile sig_atomic_t reaper_stop;

static void on_term(int sig)
{
    (void)sig;
    reaper_stop = 1;
}

static void note(struct report_ids *l, int64_t id)
{
    if (l->n < REPORT_IDS)
        l->id[l->n] = id;
    l->n++;
}

static void merge_ids(struct report_ids *to, const struct report_ids *from)
{
    for (int i = 0; i < from->n; i++)
        note(to, i < REPORT_IDS ? from->id[i] : 0);
}

static void merge(struct reconcile_report *to, const struct reconcile_report *from)
{
    to->expired += from->expired;
    to->orphans_removed += from->orphans_removed;
    to->lost += from->lost;
    to->stale_starts += from->stale_starts;
    to->stale_stops += from->stale_stops;
    to->ports_freed += from->ports_freed;
    to->failures += from->failures;
    merge_ids(&to->expired_ids, &from->expired_ids);
    merge_ids(&to->orphan_ids, &from->orphan_ids);
    merge_ids(&to->lost_ids, &from->lost_ids);
    merge_ids(&to->stale_ids, &from->stale_ids);
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
        if (rc == 0) {
            rep->expired++;
            note(&rep->expired_ids, ids[i]);
        } else if (rc < 0)
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
        struct backend *b = ops_backend(app, inst.backend, &err);
        if (b == NULL || b->ops->stop(b, inst.name, &err) < 0) {
            rep->failures++;
            continue;
        }
        const char *end = strcmp(state, "starting") == 0 ? "failed"
                          : lifecycle_expired(inst.deadline, now) ? "expired"
                                                                  : "stopped";
        if (store_end(app->store, inst.id, end, "its stop or start did not finish; the reaper finished it", now,
                      &changed, &err) == 0 && changed) {
            (*count)++;
            note(&rep->stale_ids, inst.id);
        }
    }
}

/* What one backend listed in this pass. */
struct listing {
    const char *name;
    struct backend *b;
    struct backend_object *objs;
    size_t n;
    bool ok;
};

static bool listed(const struct backend_object *objs, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (objs[i].instance_id == id && !objs[i].network_only)
            return true;
    return false;
}

/* Listed and running: a task that failed (swarm) or a container that exited
 * is confirmed by name before the row is declared lost. */
static bool listed_running(const struct backend_object *objs, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (objs[i].instance_id == id && !objs[i].network_only && objs[i].running)
            return true;
    return false;
}

/* The live rows (id and the backend each recorded), read before and after
 * the engine listings: every listed object's row existed before the object
 * did, and a row that ended between the two reads (a player's stop racing the
 * pass) still owns its object. Sorted by id (the store returns them so). */
struct live_set {
    int64_t *ids;
    const char **backends;
    size_t n;
};

static int cmp_id(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The backend a live row recorded, or NULL when the id is not live. */
static const char *live_backend(const struct live_set *live, int64_t id)
{
    const int64_t *p = bsearch(&id, live->ids, live->n, sizeof(int64_t), cmp_id);
    return p != NULL ? live->backends[p - live->ids] : NULL;
}

/* An object is an orphan when no live row claims it *in this backend*: a row
 * that fell back to another backend leaves the primary's leftover an orphan. */
static void orphans(struct app *app, const struct listing *l, const struct live_set *before,
                    const struct live_set *live, int64_t now, struct reconcile_report *rep)
{
    struct cc_error err = {0};
    for (size_t i = 0; i < l->n; i++) {
        const struct backend_object *o = &l->objs[i];
        const char *owner = o->instance_id > 0 ? live_backend(live, o->instance_id) : NULL;
        const char *owner0 = o->instance_id > 0 ? live_backend(before, o->instance_id) : NULL;
        if ((owner != NULL && strcmp(owner, l->name) == 0) ||
            (owner0 != NULL && strcmp(owner0, l->name) == 0))
            continue;
        if (now - o->created < app->cfg->orphan_grace_seconds)
            continue;
        if (l->b->ops->stop(l->b, o->name, &err) == 0) {
            rep->orphans_removed++;
            note(&rep->orphan_ids, o->instance_id);
            log_info("reconcile: removed orphan %s from %s (instance %lld)", o->name, l->name,
                     (long long)o->instance_id);
        } else {
            rep->failures++;
        }
    }
}

static const struct listing *listing_of(const struct listing *ls, size_t nl, const char *name)
{
    for (size_t i = 0; i < nl; i++)
        if (strcmp(ls[i].name, name) == 0)
            return &ls[i];
    return NULL;
}

/* Live running rows their own backend no longer lists (and does not find by
 * name) are lost. A row whose backend could not be listed is left alone. */
static void lost(struct app *app, arena_t *a, const struct listing *ls, size_t nl,
                 const struct live_set *live, int64_t listed_at, struct reconcile_report *rep)
{
    struct cc_error err = {0};
    for (size_t i = 0; i < live->n; i++) {
        const struct listing *l = listing_of(ls, nl, live->backends[i]);
        struct instance inst;
        bool found, changed;
        struct backend_object obj;
        if (l == NULL || !l->ok || listed_running(l->objs, l->n, live->ids[i]) ||
            store_get_instance(app->store, a, live->ids[i], &inst, &found, &err) < 0 || !found ||
            strcmp(inst.state, "running") != 0 || inst.started_at > listed_at - 5)
            continue;
        /* Confirm by name before declaring it lost: the listing may be stale. */
        if (l->b->ops->inspect(l->b, a, inst.name, &obj, &found, &err) < 0 ||
            (found && obj.running))
            continue;
        /* Stop is idempotent: it removes an exited container and, when the
         * container is gone already, what it leaves (its own network). */
        l->b->ops->stop(l->b, inst.name, &err);
        const char *why = found ? "its container stopped by itself" : "its container disappeared";
        if (store_end(app->store, inst.id, "lost", why, time(NULL), &changed, &err) == 0 &&
            changed) {
            rep->lost++;
            note(&rep->lost_ids, inst.id);
            log_warn("reconcile: container %lld lost: %s (backend %s)", (long long)inst.id, why,
                     l->name);
        }
    }
}

/* Host ports of ended rows (a revert keeps them until its old container is
 * gone) are freed once the row's own backend lists no object for it. */
static void ended_ports(struct app *app, arena_t *a, const struct listing *ls, size_t nl,
                        struct reconcile_report *rep)
{
    int64_t *ids;
    size_t nids;
    struct cc_error err = {0};
    if (store_ids_ports_ended(app->store, a, &ids, &nids, &err) < 0)
        return;
    for (size_t i = 0; i < nids; i++) {
        struct instance inst;
        bool found;
        if (store_get_instance(app->store, a, ids[i], &inst, &found, &err) < 0)
            continue;
        const struct listing *l = found ? listing_of(ls, nl, inst.backend) : NULL;
        if (found && (l == NULL || !l->ok || listed(l->objs, l->n, ids[i])))
            continue;
        if (store_free_ports(app->store, ids[i], &err) == 0)
            rep->ports_freed++;
    }
}

/* Add a backend name to the pass's listings (once; unknown or unbuilt names
 * are reported, not listed). */
static void add_listing(struct app *app, struct listing *ls, size_t *nl, const char *name,
                        struct reconcile_report *rep)
{
    if (name == NULL || name[0] == '\0' || listing_of(ls, *nl, name) != NULL ||
        *nl >= BACKEND_SET_MAX)
        return;
    struct cc_error err = {0};
    struct backend *b = backend_built(name) ? ops_backend(app, name, &err) : NULL;
    if (b == NULL) {
        log_warn("reconcile: backend '%.16s' is in use but not available in this build",
                 name);
        rep->failures++;
        return;
    }
    ls[(*nl)++] = (struct listing){.name = name, .b = b};
}

/* The backends in use: the global one, the fallback, every backend a row
 * (live, recently ended, or holding ports) recorded, every challenge override. */
static size_t backends_in_use(struct app *app, arena_t *a, int64_t now, struct listing *ls,
                              struct reconcile_report *rep)
{
    size_t nl = 0;
    const char **names;
    size_t n = 0;
    struct cc_error err = {0};
    add_listing(app, ls, &nl, app->cfg->backend, rep);
    add_listing(app, ls, &nl, app->cfg->fallback_backend, rep);
    if (store_backends_in_use(app->store, a, now - 86400, &names, &n, &err) < 0)
        rep->failures++;
    for (size_t i = 0; i < n; i++)
        add_listing(app, ls, &nl, names[i], rep);
    return nl;
}

static json_t *ids_json(const struct report_ids *l)
{
    json_t *arr = json_array();
    for (int i = 0; i < l->n && i < REPORT_IDS; i++)
        json_array_append_new(arr, json_integer((json_int_t)l->id[i]));
    return arr;
}

/* The stored status: the counts, and the first ids of each kind. */
void reaper_save_report(struct app *app, const struct reconcile_report *r, int64_t now)
{
    struct cc_error err;
    json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:o, s:o, s:o, s:o}}",
                          "expired", r->expired, "orphans_removed", r->orphans_removed, "lost",
                          r->lost, "stale_starts", r->stale_starts, "stale_stops",
                          r->stale_stops, "ports_freed", r->ports_freed, "failures",
                          r->failures, "ids", "expired", ids_json(&r->expired_ids), "orphans",
                          ids_json(&r->orphan_ids), "lost", ids_json(&r->lost_ids), "stale",
                          ids_json(&r->stale_ids));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text)
        store_set_status(app->store, "reconcile", text, now, &err);
    /* The last pass that did something stays visible after quiet passes. */
    if (text && reaper_report_any(r))
        store_set_status(app->store, "reconcile_action", text, now, &err);
    free(text);
    json_decref(j);
}

/* An object is an orphan only if its row was live neither just before nor
 * just after the listing: a row ended while the engine was listed (a player's
 * stop racing the pass) still owns its object, whose stopper removes it; if
 * it is left behind, the next pass finds it. */
int reaper_reconcile(struct app *app, arena_t *a, int64_t now, struct reconcile_report *rep)
{
    struct listing ls[BACKEND_SET_MAX];
    struct cc_error err = {0};
    stale(app, a, "starting", app->cfg->starting_grace_seconds, now, &rep->stale_starts, rep);
    stale(app, a, "stopping", app->cfg->stopping_grace_seconds, now, &rep->stale_stops, rep);
    struct live_set before, live;
    if (store_live_backends(app->store, a, &before.ids, &before.backends, &before.n, &err) < 0) {
        rep->failures++;
        return -1; /* database trouble: decide nothing */
    }
    size_t nl = backends_in_use(app, a, now, ls, rep);
    int64_t listed_at = time(NULL);
    size_t nok = 0;
    for (size_t i = 0; i < nl; i++) {
        ls[i].ok = ls[i].b->ops->list(ls[i].b, a, &ls[i].objs, &ls[i].n, &err) == 0;
        if (ls[i].ok) {
            nok++;
            continue;
        }
        /* One backend down must not stop the others' reconciliation. */
        log_warn("reconcile: %s listing failed (%s); nothing decided for it", ls[i].name,
                 err_code_str(err.code));
        ls[i].n = 0;
        rep->failures++;
    }
    if (store_live_backends(app->store, a, &live.ids, &live.backends, &live.n, &err) < 0) {
        rep->failures++;
        return -1;
    }
    for (size_t i = 0; i < nl; i++)
        if (ls[i].ok)
            orphans(app, &ls[i], &before, &live, now, rep);
    lost(app, a, ls, nl, &live, listed_at, rep);
    ended_ports(app, a, ls, nl, rep);
    return nok == nl ? 0 : -1;
}

static void print_ids(const struct report_ids *l, FILE *out)
{
    if (l->n == 0)
        return;
    fputs(" [", out);
    for (int i = 0; i < l->n && i < REPORT_IDS; i++)
        fprintf(out, i ? " %lld" : "%lld", (long long)l->id[i]);
    fputs(l->n > REPORT_IDS ? " ...]" : "]", out);
}

void reaper_print(const struct reconcile_report *r, FILE *out)
{
    fprintf(out, "expired %d", r->expired);
    print_ids(&r->expired_ids, out);
    fprintf(out, ", orphans removed %d", r->orphans_removed);
    print_ids(&r->orphan_ids, out);
    fprintf(out, ", lost %d", r->lost);
    print_ids(&r->lost_ids, out);
    fprintf(out, ", stale starts %d, stale stops %d", r->stale_starts, r->stale_stops);
    print_ids(&r->stale_ids, out);
    fprintf(out, ", ports freed %d, failures %d\n", r->ports_freed, r->failures);
}

bool reaper_report_any(const struct reconcile_report *r)
{
    return r->expired || r->orphans_removed || r->lost || r->stale_starts || r->stale_stops ||
           r->ports_freed || r->failures;
}

/* One log line per pass that did something: the same text as --reconcile-once. */
static void log_report(const struct reconcile_report *r)
{
    char buf[1024];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    if (f == NULL)
        return;
    reaper_print(r, f);
    fclose(f);
    buf[sizeof(buf) - 1] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    log_info("reconcile pass: %s", buf);
}

static int64_t reaper_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    /* What the reaper did since the last stored report: expiries between two
     * reconciliation passes count in the next one, so the status covers all. */
    struct reconcile_report since = {0};
    struct tlsmap_state tls = {0};
    while (!reaper_stop) {
        int64_t now = time(NULL);
        struct reconcile_report tick = {0};
        reaper_expire(&app, a, now, &tick);
        struct pool_report pool = {0};
        pool_tend(&app, a, now, &reaper_stop, &pool);
        tlsmap_sync(&app, a, &tls, reaper_now_ms());
        bool pass = now - last_reconcile >= cfg->reconcile_interval_seconds;
        if (pass)
            reaper_reconcile(&app, a, now, &tick);
        if (reaper_report_any(&tick))
            log_report(&tick);
        merge(&since, &tick);
        if (pass) {
            reaper_save_report(&app, &since, now);
            memset(&since, 0, sizeof(since));
            last_reconcile = now;
        }
        arena_reset(a);
        if (!reaper_stop)
            sleep_ms(cfg->reaper_interval_ms);
    }
    tlsmap_free(&tls);
    arena_free(a);
    child_close(&app);
    return 0;
}

/* pool.c: warm pools (see pool.h). The reaper fills and drains; the admission
 * transaction of a player's start claims. */
#include "pool.h"
#include "route.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lifecycle.h"
#include "log.h"

/* The reaper spends at most this long starting pool containers per pass, so
 * expiry keeps its pace. */
#define POOL_FILL_BUDGET_SECONDS 3

static int64_t memory_bytes(const struct cc_config *cfg, const struct ctfd_challenge *ch)
{
    return (ch->memory_mb > 0 ? ch->memory_mb : cfg->default_memory_mb) * 1048576;
}

static int64_t nano_cpus(const struct cc_config *cfg, const struct ctfd_challenge *ch)
{
    return (int64_t)((ch->cpus > 0 ? ch->cpus : cfg->default_cpus) * 1e9);
}

/* The challenge's ports, checked as a player's start checks them. */
static int pool_ports(const struct cc_config *cfg, const struct ctfd_challenge *ch,
                      struct backend_port *ports, size_t *n)
{
    double bits;
    char why[256];
    if (ops_parse_ports(ch->ports, ports, BACKEND_MAX_PORTS, n) < 0 ||
        flag_template_check(ch->flag_template, &bits, why, sizeof(why)) < 0 ||
        ch->image[0] == '\0' || (ch->backend && strcmp(ch->backend, cfg->backend) != 0))
        return -1;
    return 0;
}

int pool_spec_key(const struct cc_config *cfg, const struct ctfd_challenge *ch, char out[17])
{
    struct backend_port ports[BACKEND_MAX_PORTS];
    size_t n;
    out[0] = '\0';
    if (pool_ports(cfg, ch, ports, &n) < 0)
        return -1;
    char portlist[BACKEND_MAX_PORTS * 16] = "", mem[24], cpu[24], pids[24];
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(portlist + used, sizeof(portlist) - used, "%s%d/%s",
                                 i ? "," : "", ports[i].internal,
                                 ports[i].proto == PROTO_HTTP ? "http" : "tcp");
    snprintf(mem, sizeof(mem), "%" PRId64, memory_bytes(cfg, ch));
    snprintf(cpu, sizeof(cpu), "%" PRId64, nano_cpus(cfg, ch));
    snprintf(pids, sizeof(pids), "%" PRId64, cfg->pids_limit);
    const char *parts[] = {ch->image,      portlist,         ch->flag_template, ch->flag_env,
                           mem,            cpu,              pids,              cfg->cap_add,
                           cfg->bind_address, cfg->public_host, cfg->backend,   cfg->site};
    lifecycle_pool_spec_key(parts, sizeof(parts) / sizeof(parts[0]), out);
    return 0;
}

int pool_claim(struct app *app, const struct ctfd_challenge *ch, const char *account_kind,
               int64_t account_id, int64_t user_id, int64_t deadline, int64_t now, int64_t *id,
               bool *claimed, struct cc_error *err)
{
    char key[17];
    *claimed = false;
    if (pool_spec_key(app->cfg, ch, key) < 0)
        return 0;
    struct pool_claim c = {
        .challenge_id = ch->id, .spec = key, .min_deadline = lifecycle_pool_claim_after(now),
        .account_kind = account_kind, .account_id = account_id, .user_id = user_id,
        .deadline = deadline, .now = now};
    return store_pool_claim(app->store, &c, id, claimed, err);
}

int pool_retire(struct app *app, int64_t id, const char *name, const char *end_state,
                const char *reason, int64_t now, struct cc_error *err)
{
    bool changed;
    if (store_pool_retire(app->store, id, now, &changed, err) < 0)
        return -1;
    if (!changed)
        return 0; /* claimed (now a player's), or already ending */
    /* Pool rows are made on the global backend only (pool_spec_key names it);
     * a row left from before a switch that this stop misses is an orphan on
     * its own backend, which the reaper's per-backend reconcile removes. */
    struct backend *b = ops_backend(app, app->cfg->backend, err);
    if (b == NULL || b->ops->stop(b, name, err) < 0) {
        log_warn("warm pool container %lld: engine stop failed (%s); the reaper retries",
                 (long long)id, err_code_str(err->code));
        return -1; /* the row stays stopping: the stale-stop repair finishes it */
    }
    if (store_end(app->store, id, end_state, reason, now, &changed, err) < 0)
        return -1;
    log_info("warm pool container %lld %s (%s)", (long long)id, end_state, reason);
    return 0;
}

/* ---- the fill: one pool container, admitted under the 'pool' lock ---- */

struct pool_start {
    const struct ctfd_challenge *ch;
    const struct pool_need *need;
    const char *key;
    struct instance inst;
    struct backend_port ports[BACKEND_MAX_PORTS];
    size_t nports;
    char flag[FLAG_MAX_LEN + 1];
    struct challenge_exposure ex; /* network, capabilities, read-only root */
    char route[ROUTE_LEN + 1];    /* its name through nginx; shown only once claimed */
};

static int pool_flag(struct app *app, struct pool_start *ps, int64_t now, struct cc_error *err)
{
    const struct flag_keys *k = app->keys;
    char aad[32];
    snprintf(aad, sizeof(aad), "%" PRId64, ps->inst.id);
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned char nonce[FLAG_NONCE_LEN], ct[FLAG_CIPHERTEXT_MAX], digest[FLAG_DIGEST_LEN];
        size_t ctlen;
        bool dup;
        if (flag_generate(ps->ch->flag_template, ps->flag, sizeof(ps->flag)) < 0 ||
            flag_encrypt(k, ps->flag, aad, nonce, ct, sizeof(ct), &ctlen) < 0)
            return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
        flag_digest(k, ps->flag, digest);
        if (store_insert_flag(app->store, ps->inst.id, "pool", ps->inst.id, ps->ch->id,
                              k->key_id, nonce, ct, ctlen, digest, now, &dup, err) == 0)
            return 0;
        if (!dup)
            return -1;
    }
    return err_set(err, ERR_INTERNAL, NULL);
}

/* Under the lock: is one still missing? Then the row, its ports, its flag. */
static int pool_admit_locked(struct app *app, arena_t *a, struct pool_start *ps, int64_t now,
                             bool *admitted, struct cc_error *err)
{
    const struct cc_config *cfg = app->cfg;
    struct lc_pool p = {.size = ps->need->size, .max_total = cfg->warm_pool_max_total,
                        .last_failure = ps->need->last_failure,
                        .retry = cfg->warm_pool_retry_seconds};
    *admitted = false;
    if (store_pool_lock(app->store, ps->ch->id, &p.live_total, &p.live, err) < 0)
        return -1;
    if (lifecycle_pool_deficit(&p, now) <= 0)
        return 0;
    ps->inst = (struct instance){
        .account_kind = "pool", .account_id = 0, .user_id = 0, .challenge_id = ps->ch->id,
        .backend = cfg->backend, .image = ps->ch->image, .created_at = now,
        .deadline = now + cfg->warm_pool_lifetime_seconds};
    if (store_insert_instance(app->store, a, &ps->inst, err) < 0 ||
        store_pool_mark(app->store, ps->inst.id, ps->key, err) < 0 ||
        store_challenge_exposure(app->store, a, ps->ch->id, &ps->ex, err) < 0)
        return -1;
    char bad[32];
    if (ps->ex.cap_add != NULL && !route_caps_allowed(ps->ex.cap_add, bad, sizeof(bad)))
        return err_set(err, ERR_CAPABILITY_FORBIDDEN, NULL);
    bool dup = true;
    for (int attempt = 0; dup && attempt < 3; attempt++)
        if (route_generate(ps->route, sizeof(ps->route)) < 0 ||
            (store_set_route(app->store, ps->inst.id, ps->route, &dup, err) < 0 && !dup))
            return -1;
    if (dup)
        return err_set(err, ERR_INTERNAL, NULL);
    for (size_t i = 0; i < ps->nports; i++) {
        int64_t port;
        if (store_reserve_port(app->store, ps->inst.id, cfg->port_min, cfg->port_max, &port,
                               err) < 0)
            return -1;
        ps->ports[i].host_port = (int)port;
    }
    if (pool_flag(app, ps, now, err) < 0)
        return -1;
    *admitted = true;
    return 0;
}

struct pool_admit_args {
    struct app *app;
    arena_t *a;
    struct pool_start *ps;
    int64_t now;
    bool *admitted;
};

static int pool_admit_body(void *arg, struct cc_error *err)
{
    struct pool_admit_args *x = arg;
    return pool_admit_locked(x->app, x->a, x->ps, x->now, x->admitted, err);
}

static void pool_admit_undo(void *arg)
{
    struct pool_start *ps = ((struct pool_admit_args *)arg)->ps;
    flag_wipe(ps->flag, sizeof(ps->flag));
}

/* One transaction (nothing missing: it only read under the lock, and commits that). */
static int pool_admit(struct app *app, arena_t *a, struct pool_start *ps, int64_t now,
                      bool *admitted, struct cc_error *err)
{
    struct pool_admit_args x = {app, a, ps, now, admitted};
    return store_transaction(app->store, pool_admit_body, pool_admit_undo, &x, err);
}

static void pool_fill_spec(const struct cc_config *cfg, const struct pool_start *ps,
                           struct backend_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->name = ps->inst.name;
    spec->image = ps->ch->image;
    spec->flag_env = ps->ch->flag_env;
    spec->flag = ps->flag;
    spec->instance_id = ps->inst.id;
    spec->account_id = 0; /* label: started for the pool (the row says whose it is now) */
    spec->challenge_id = ps->ch->id;
    spec->expires = ps->inst.deadline;
    spec->memory_bytes = memory_bytes(cfg, ps->ch);
    spec->nano_cpus = nano_cpus(cfg, ps->ch);
    spec->pids_limit = cfg->pids_limit;
    spec->route = ps->route;
    spec->allow_internet = ps->ex.allow_internet;
    spec->read_only = ps->ex.read_only;
    spec->cap_add = ps->ex.cap_add;
    spec->nports = ps->nports;
    memcpy(spec->ports, ps->ports, sizeof(ps->ports));
}

/* Another process holds a host port we reserved: swap them for new ones (the
 * row is the reaper's own, still starting). */
static int pool_new_ports(struct app *app, arena_t *a, struct pool_start *ps,
                          struct cc_error *err)
{
    struct store *s = app->store;
    const char *state;
    if (store_begin(s, err) < 0)
        return -1;
    int rc = store_lock_live_state(s, a, ps->inst.id, &state, err);
    if (rc == 0 && (state == NULL || strcmp(state, "starting") != 0))
        rc = err_set(err, ERR_CONTAINER_BUSY, NULL);
    if (rc == 0)
        rc = store_free_ports(s, ps->inst.id, err);
    for (size_t i = 0; rc == 0 && i < ps->nports; i++) {
        int64_t port;
        rc = store_reserve_port(s, ps->inst.id, app->cfg->port_min, app->cfg->port_max, &port,
                                err);
        ps->ports[i].host_port = (int)port;
    }
    if (rc == 0 && store_commit(s, err) == 0)
        return 0;
    store_rollback(s);
    return -1;
}

/* The engine side, with up to two retries on a host port clash. */
static int pool_engine_start(struct app *app, arena_t *a, struct pool_start *ps,
                             struct backend_started *out, struct cc_error *err)
{
    struct backend_spec spec;
    int rc = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        pool_fill_spec(app->cfg, ps, &spec);
        err_clear(err);
        struct backend *b = ops_backend(app, app->cfg->backend, err);
        rc = b != NULL ? b->ops->start(b, a, &spec, out, err) : -1;
        if (rc == 0 || !(err->code == ERR_START_FAILED && err->temporary) || attempt == 2)
            break;
        if (pool_new_ports(app, a, ps, err) < 0)
            break;
    }
    flag_wipe(ps->flag, sizeof(ps->flag));
    return rc;
}

/* 1: one started; 0: none missing; -1: a failure (the row ends failed, and
 * its time starts the challenge's retry delay). */
static int pool_start_one(struct app *app, arena_t *a, struct pool_start *ps, int64_t now)
{
    struct cc_error err = {0};
    struct backend_started out = {0};
    bool admitted, changed;
    if (pool_admit(app, a, ps, now, &admitted, &err) < 0) {
        log_warn("warm pool of challenge %lld: admission failed (%s)", (long long)ps->ch->id,
                 err_code_str(err.code));
        return -1;
    }
    if (!admitted)
        return 0;
    if (pool_engine_start(app, a, ps, &out, &err) < 0) {
        struct cc_error e2;
        log_warn("warm pool container %lld (challenge %lld): start failed: %s (%s); retried in "
                 "%lld s",
                 (long long)ps->inst.id, (long long)ps->ch->id, err_code_str(err.code),
                 err_message(&err), (long long)app->cfg->warm_pool_retry_seconds);
        store_end(app->store, ps->inst.id, "failed", err_code_str(err.code), time(NULL),
                  &changed, &e2);
        return -1;
    }
    const char *ports = ops_format_ports(a, ps->ports, ps->nports);
    if (store_mark_running(app->store, ps->inst.id, out.engine_id, out.host, ports, time(NULL),
                           &changed, &err) < 0 ||
        !changed) {
        struct cc_error e2;
        struct backend *b = ops_backend(app, app->cfg->backend, &e2);
        if (b != NULL && b->ops->stop(b, ps->inst.name, &e2) == 0 && !changed &&
            err.code == ERR_OK)
            store_free_ports(app->store, ps->inst.id, &e2);
        return -1;
    }
    log_info("warm pool container %lld ready for challenge %lld", (long long)ps->inst.id,
             (long long)ps->ch->id);
    return 1;
}

/* ---- the pass ---- */

/* One challenge with warm_pool > 0, as this pass sees it. */
struct pool_entry {
    const struct pool_need *need;
    struct ctfd_challenge ch;
    char key[17];            /* "" = misconfigured or gone: keep nothing, start nothing */
    int64_t kept;            /* live pool containers kept this pass */
};

static struct pool_entry *entry_for(struct pool_entry *e, size_t n, int64_t cid)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].need->challenge_id == cid)
            return &e[i];
    return NULL;
}

/* Which live pool containers go: challenge no longer pooled, settings
 * changed, more than its size, more than the global cap (newest go first). */
static void pool_drain(struct app *app, struct pool_entry *e, size_t ne,
                       const struct pool_member *m, size_t nm, int64_t now,
                       struct pool_report *rep)
{
    int64_t total = 0;
    for (size_t i = 0; i < nm; i++) {
        struct pool_entry *pe = entry_for(e, ne, m[i].challenge_id);
        const char *why = NULL;
        if (pe != NULL && (pe->key[0] == '\0' || strcmp(pe->key, m[i].spec) != 0))
            why = "the challenge's settings changed";
        else if (pe == NULL || pe->kept >= pe->need->size ||
                 total >= app->cfg->warm_pool_max_total)
            why = "warm pool drained";
        if (why == NULL || strcmp(m[i].state, "running") != 0) {
            if (pe)
                pe->kept++;
            total++;
            continue; /* kept (a starting one is counted: it is about to run) */
        }
        struct cc_error err = {0};
        if (pool_retire(app, m[i].id, m[i].name, "stopped", why, now, &err) == 0)
            rep->retired++;
    }
}

void pool_tend(struct app *app, arena_t *a, int64_t now, const volatile sig_atomic_t *stop,
               struct pool_report *rep)
{
    static int64_t warned_at;
    struct pool_need *needs;
    struct pool_member *members;
    size_t nn, nm;
    struct cc_error err = {0};
    if (store_pool_needs(app->store, a, &needs, &nn, &err) < 0) {
        if (now - warned_at >= 60) {
            log_warn("warm pools: cannot read docker_challenge.warm_pool (%s); is the plugin's "
                     "migration applied?", err_code_str(err.code));
            warned_at = now;
        }
        return;
    }
    if (store_pool_members(app->store, a, &members, &nm, &err) < 0)
        return;
    if (nn == 0 && nm == 0)
        return;
    struct pool_entry *e = arena_alloc(a, sizeof(*e) * (nn ? nn : 1));
    for (size_t i = 0; i < nn; i++) {
        bool found;
        e[i].need = &needs[i];
        e[i].kept = 0;
        e[i].key[0] = '\0';
        if (store_challenge(app->store, a, needs[i].challenge_id, &e[i].ch, &found, &err) < 0)
            return; /* database trouble: decide nothing */
        if (found && pool_spec_key(app->cfg, &e[i].ch, e[i].key) < 0)
            log_debug("warm pool of challenge %lld: misconfigured, not filled",
                      (long long)needs[i].challenge_id);
    }
    pool_drain(app, e, nn, members, nm, now, rep);
    time_t until = time(NULL) + POOL_FILL_BUDGET_SECONDS;
    for (size_t i = 0; i < nn && !*stop && time(NULL) < until; i++) {
        if (e[i].key[0] == '\0' || e[i].kept >= e[i].need->size)
            continue;
        struct pool_start ps = {.ch = &e[i].ch, .need = e[i].need, .key = e[i].key};
        if (pool_ports(app->cfg, &e[i].ch, ps.ports, &ps.nports) < 0)
            continue;
        int rc = 0;
        while (!*stop && time(NULL) < until &&
               (rc = pool_start_one(app, a, &ps, time(NULL))) == 1)
            rep->started++;
        if (rc < 0)
            rep->failed++;
    }
}

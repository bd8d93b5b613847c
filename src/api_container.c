/* api_container.c: /api/v1/container: status, start (or revert), extend, stop
 * of the caller's own container for one challenge.
 *
 * Every limit is decided inside one transaction under the account's row lock
 * (and the capacity row when a global limit is set); the engine is called
 * only after that transaction commits. Must not: call libcurl or MariaDB
 * directly, or put a flag anywhere but the engine request and the store. */
#include <inttypes.h>
#include <string.h>

#include "api.h"
#include "lifecycle.h"
#include "log.h"
#include "pool.h"
#include "route.h"

void api_fail(struct ctx *c, const struct cc_error *err)
{
    http_reply_error(c->resp, err);
}

static struct lc_limits limits_for(const struct cc_config *cfg, const struct ctfd_challenge *ch)
{
    struct lc_limits l = {
        .max_per_account = cfg->max_containers_per_account,
        .max_total = cfg->max_containers,
        .max_renewals = cfg->max_renewals,
        .cooldown = cfg->cooldown_seconds,
        .lifetime = cfg->timeout_seconds,
        .extend = cfg->extend_seconds,
    };
    if (ch && ch->lifetime > 0)
        l.lifetime = ch->lifetime;
    if (ch && ch->max_renewals >= 0)
        l.max_renewals = ch->max_renewals;
    return l;
}

json_t *api_container_json(const struct instance *inst, int64_t max_renewals, int64_t now)
{
    struct backend_port ports[BACKEND_MAX_PORTS];
    size_t n = 0;
    ops_parse_stored_ports(inst->ports, ports, BACKEND_MAX_PORTS, &n);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char conn[512];
        if (ports[i].proto == PROTO_HTTP)
            snprintf(conn, sizeof(conn), "http://%s:%d/", inst->host, ports[i].host_port);
        else
            snprintf(conn, sizeof(conn), "nc %s %d", inst->host, ports[i].host_port);
        json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:i, s:s}", "port",
                                              ports[i].internal, "protocol",
                                              ports[i].proto == PROTO_HTTP ? "http" : "tcp",
                                              "host", inst->host, "host_port", ports[i].host_port,
                                              "connection", conn));
    }
    int64_t left = max_renewals - inst->renewals;
    return json_pack("{s:I, s:I, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "id",
                     (json_int_t)inst->id, "challenge_id", (json_int_t)inst->challenge_id,
                     "state", inst->state, "ports", list, "created_at",
                     (json_int_t)inst->created_at, "deadline", (json_int_t)inst->deadline,
                     "seconds_left", (json_int_t)lifecycle_seconds_left(inst->deadline, now),
                     "renewals_used", (json_int_t)inst->renewals, "renewals_left",
                     (json_int_t)(left > 0 ? left : 0), "max_renewals", (json_int_t)max_renewals);
}

/* The player's view adds what an extend would add (the panel's "+N min") and
 * how to reach each port (route names, TLS, the challenge's connect style). */
static json_t *player_json(struct ctx *c, const struct instance *inst, const struct lc_limits *l)
{
    json_t *o = api_container_json(inst, l->max_renewals, c->now);
    json_object_set_new(o, "extend_seconds", json_integer(l->extend));
    struct challenge_exposure ex;
    const char *route = NULL;
    struct cc_error err = {0};
    if (store_get_route(c->app->store, c->arena, inst->id, &route, &err) == 0 &&
        store_challenge_exposure(c->app->store, c->arena, inst->challenge_id, &ex, &err) == 0)
        api_route_connection(c->arena, c->app->cfg, o, route, ex.connect);
    return o;
}

/* The challenge the caller may act on now, or an error saying why not. */
static int load_challenge(struct ctx *c, int64_t challenge_id, struct ctfd_challenge *ch,
                          struct cc_error *err)
{
    bool found;
    bool admin = c->id.user.admin;
    if (store_challenge(c->app->store, c->arena, challenge_id, ch, &found, err) < 0)
        return -1;
    if (!found || (strcmp(ch->state, "hidden") == 0 && !admin))
        return err_set(err, ERR_CHALLENGE_NOT_FOUND, NULL);
    if (strcmp(ch->state, "locked") == 0 && !admin)
        return err_set(err, ERR_CHALLENGE_LOCKED, NULL);
    enum cc_err e = lifecycle_check_ctf_time(c->id.settings.start, c->id.settings.end,
                                             c->id.settings.paused, admin, c->now);
    if (e != ERR_OK)
        return err_set(err, e, NULL);
    return 0;
}

/* CTFd's rule: every prerequisite that still exists must be solved by the
 * account; ids that are not integers never match and are ignored. */
static int check_prereqs(struct ctx *c, const struct ctfd_challenge *ch, struct cc_error *err)
{
    if (ch->requirements == NULL || c->id.user.admin)
        return 0;
    json_t *req = json_loads(ch->requirements, 0, NULL);
    json_t *list = json_is_object(req) ? json_object_get(req, "prerequisites") : NULL;
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    int64_t *pre = arena_alloc(c->arena, sizeof(int64_t) * (n + 1));
    int64_t *exist = arena_alloc(c->arena, sizeof(int64_t) * (n + 1));
    size_t np = 0, ne = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0 && np < 256; i++) {
        json_t *v = json_array_get(list, i);
        if (!json_is_integer(v))
            continue;
        pre[np++] = json_integer_value(v);
        bool found;
        rc = store_challenge_exists(c->app->store, pre[np - 1], &found, err);
        if (rc == 0 && found)
            exist[ne++] = pre[np - 1];
    }
    json_decref(req);
    if (rc < 0 || np == 0)
        return rc;
    int64_t *solved;
    size_t ns;
    if (store_solved(c->app->store, c->arena, c->id.settings.team_mode, c->id.account_id, &solved,
                     &ns, err) < 0)
        return -1;
    if (!lifecycle_prereqs_met(pre, np, solved, ns, exist, ne))
        return err_set(err, ERR_PREREQUISITES_UNMET, NULL);
    return 0;
}

/* The challenge id from the JSON body (POST) or the query (GET/PATCH/DELETE). */
static int challenge_arg(struct ctx *c, bool from_body, int64_t *id, struct cc_error *err)
{
    static const char *const only_cid[] = {"challenge_id", NULL};
    if (!from_body) {
        if (http_query_only(c->req, only_cid, err) < 0)
            return -1;
        return http_query_id(c->req, "challenge_id", true, id, err);
    }
    static const char *const none[] = {NULL};
    if (http_query_only(c->req, none, err) < 0)
        return -1;
    json_t *body = http_body_json(c->req, false, err);
    if (body == NULL)
        return -1;
    int rc = http_json_id(body, "challenge_id", true, id, err);
    json_decref(body);
    return rc;
}

static int resolve(struct ctx *c, struct cc_error *err)
{
    return identity_resolve(c->req, c->app->store, NEED_PLAYER, &c->id, err);
}

void api_container_status(struct ctx *c)
{
    struct cc_error err = {0};
    int64_t cid;
    struct instance inst;
    bool found;
    if (http_query(c->req, "stopcontainer") != NULL) {
        err_set(&err, ERR_METHOD_NOT_ALLOWED,
                "Use DELETE /api/v1/container?challenge_id=N to stop a container.");
        return api_fail(c, &err);
    }
    if (challenge_arg(c, false, &cid, &err) < 0 || resolve(c, &err) < 0 ||
        store_find_live(c->app->store, c->arena, c->id.account_kind, c->id.account_id, cid, &inst,
                        &found, &err) < 0)
        return api_fail(c, &err);
    if (!found)
        return http_reply_json(c->resp, 200, json_object());
    struct ctfd_challenge ch;
    bool chfound;
    if (store_challenge(c->app->store, c->arena, cid, &ch, &chfound, &err) < 0)
        return api_fail(c, &err);
    struct lc_limits l = limits_for(c->app->cfg, chfound ? &ch : NULL);
    http_reply_json(c->resp, 200, player_json(c, &inst, &l));
}

/* What the admission transaction decided. */
struct admission {
    struct instance inst;
    struct instance old;      /* the container a revert replaces */
    bool revert;
    bool claimed;             /* a warm pool container became the account's: no engine start */
    char flag[FLAG_MAX_LEN + 1];
    struct backend_port ports[BACKEND_MAX_PORTS];
    size_t nports;
    int64_t prev_action;      /* the cooldown clock before this start touched it */
    struct challenge_exposure ex; /* network, capabilities, read-only root */
    char route[ROUTE_LEN + 1];
    const char *backend;      /* the backend this start uses (the row records it) */
};

static int new_flag(struct ctx *c, const struct ctfd_challenge *ch, struct admission *ad,
                    struct cc_error *err)
{
    const struct flag_keys *k = c->app->keys;
    char aad[32];
    snprintf(aad, sizeof(aad), "%" PRId64, ad->inst.id);
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned char nonce[FLAG_NONCE_LEN], ct[FLAG_CIPHERTEXT_MAX], digest[FLAG_DIGEST_LEN];
        size_t ctlen;
        bool dup;
        if (flag_generate(ch->flag_template, ad->flag, sizeof(ad->flag)) < 0 ||
            flag_encrypt(k, ad->flag, aad, nonce, ct, sizeof(ct), &ctlen) < 0)
            return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
        flag_digest(k, ad->flag, digest);
        if (store_insert_flag(c->app->store, ad->inst.id, c->id.account_kind, c->id.account_id,
                              ch->id, k->key_id, nonce, ct, ctlen, digest, c->now, &dup,
                              err) == 0)
            return 0;
        if (!dup)
            return -1;
    }
    return err_set(err, ERR_INTERNAL, NULL);
}

/* Decide under lock: revert the live container for this challenge, or admit
 * a new one within the account's and the global limits. */
static int admit_locked(struct ctx *c, const struct ctfd_challenge *ch, const struct lc_limits *l,
                        struct admission *ad, struct cc_error *err)
{
    struct store *s = c->app->store;
    struct lc_account acc = {0};
    bool found;
    int retry = 0;
    enum cc_err e;
    if (store_lock_account(s, c->id.account_kind, c->id.account_id, &ad->prev_action, err) < 0 ||
        store_find_live(s, c->arena, c->id.account_kind, c->id.account_id, ch->id, &ad->old,
                        &found, err) < 0)
        return -1;
    acc.last_action_at = ad->prev_action;
    ad->revert = found;
    if (found) {
        e = lifecycle_check_revert(l, &acc, lifecycle_state_parse(ad->old.state), c->now, &retry);
    } else {
        if (store_count_live_account(s, c->id.account_kind, c->id.account_id, &acc.live_count,
                                     err) < 0)
            return -1;
        if (l->max_total > 0 &&
            (store_lock_capacity(s, err) < 0 || store_count_live_total(s, &acc.live_total, err) < 0))
            return -1;
        e = lifecycle_check_start(l, &acc, c->now, &retry);
    }
    if (e != ERR_OK) {
        err_set(err, e, NULL);
        err->retry_after = retry;
        return -1;
    }
    /* The old row ends now (its slot goes to the new one); its host ports stay
     * reserved until its engine object is gone. */
    bool changed;
    if (found && store_end_keep_ports(s, ad->old.id, "reverted", "reverted by its account",
                                      c->now, &changed, err) < 0)
        return -1;
    return 0;
}

/* A fresh random route name for the row (a collision, ~2^-50 per pair, retried). */
static int new_route(struct ctx *c, struct admission *ad, struct cc_error *err)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        bool dup;
        if (route_generate(ad->route, sizeof(ad->route)) < 0)
            return err_set(err, ERR_INTERNAL, NULL);
        if (store_set_route(c->app->store, ad->inst.id, ad->route, &dup, err) == 0)
            return 0;
        if (!dup)
            return -1;
    }
    return err_set(err, ERR_INTERNAL, NULL);
}

static int reserve(struct ctx *c, const struct ctfd_challenge *ch, const struct lc_limits *l,
                   struct admission *ad, struct cc_error *err)
{
    struct store *s = c->app->store;
    const struct cc_config *cfg = c->app->cfg;
    ad->inst = (struct instance){
        .account_kind = c->id.account_kind, .account_id = c->id.account_id,
        .user_id = c->id.user.id, .challenge_id = ch->id,
        .backend = ad->backend, .image = ch->image,
        .created_at = c->now, .deadline = lifecycle_deadline(l, c->now)};
    if (store_insert_instance(s, c->arena, &ad->inst, err) < 0 || new_route(c, ad, err) < 0)
        return -1;
    /* No host ports for a backend that chooses its own (whale), unless the
     * fallback may need them. */
    const char *fb = cfg->fallback_backend;
    bool need_ports = !backend_chooses_ports(ad->backend) ||
                      (fb[0] != '\0' && !backend_chooses_ports(fb));
    for (size_t i = 0; need_ports && i < ad->nports; i++) {
        int64_t port;
        if (store_reserve_port(s, ad->inst.id, cfg->port_min, cfg->port_max, &port, err) < 0)
            return -1;
        ad->ports[i].host_port = (int)port;
    }
    if (new_flag(c, ch, ad, err) < 0)
        return -1;
    return store_touch_account(s, c->id.account_kind, c->id.account_id, c->now, err);
}

/* The admitted container: a warm pool one of the challenge if there is one
 * (its row and flag become the account's in this transaction), else a new
 * row for a cold start. */
static int claim_or_reserve(struct ctx *c, const struct ctfd_challenge *ch,
                            const struct lc_limits *l, struct admission *ad,
                            struct cc_error *err)
{
    int64_t id;
    ad->claimed = false;
    if (pool_claim(c->app, ch, c->id.account_kind, c->id.account_id, c->id.user.id,
                   lifecycle_deadline(l, c->now), c->now, &id, &ad->claimed, err) < 0)
        return -1;
    if (!ad->claimed)
        return reserve(c, ch, l, ad, err);
    ad->inst = (struct instance){.id = id};
    return store_touch_account(c->app->store, c->id.account_kind, c->id.account_id, c->now,
                               err);
}

struct admit_args {
    struct ctx *c;
    const struct ctfd_challenge *ch;
    const struct lc_limits *l;
    struct admission *ad;
};

static int admit_body(void *arg, struct cc_error *err)
{
    struct admit_args *x = arg;
    return admit_locked(x->c, x->ch, x->l, x->ad, err) == 0 &&
                   claim_or_reserve(x->c, x->ch, x->l, x->ad, err) == 0
               ? 0
               : -1;
}

static void admit_undo(void *arg)
{
    struct admission *ad = ((struct admit_args *)arg)->ad;
    flag_wipe(ad->flag, sizeof(ad->flag));
}

static int admit(struct ctx *c, const struct ctfd_challenge *ch, const struct lc_limits *l,
                 struct admission *ad, struct cc_error *err)
{
    struct admit_args x = {c, ch, l, ad};
    return store_transaction(c->app->store, admit_body, admit_undo, &x, err);
}

static int check_spec(struct ctx *c, const struct ctfd_challenge *ch, struct admission *ad,
                      struct cc_error *err)
{
    double bits;
    char why[256];
    if (ops_parse_ports(ch->ports, ad->ports, BACKEND_MAX_PORTS, &ad->nports) < 0) {
        log_error("challenge %lld: bad ports spec", (long long)ch->id);
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
    }
    if (flag_template_check(ch->flag_template, &bits, why, sizeof(why)) < 0) {
        log_error("challenge %lld: %s", (long long)ch->id, why);
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
    }
    if (ch->image[0] == '\0')
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
    if (store_challenge_exposure(c->app->store, c->arena, ch->id, &ad->ex, err) < 0)
        return -1;
    char bad[32];
    if (ad->ex.cap_add != NULL && !route_caps_allowed(ad->ex.cap_add, bad, sizeof(bad))) {
        log_error("challenge %lld: capability '%s' is not on the allow-list; refused",
                  (long long)ch->id, bad);
        return err_set(err, ERR_CAPABILITY_FORBIDDEN, NULL);
    }
    /* The canary: a challenge's own backend, else the global one. */
    ad->backend = ch->backend ? ch->backend : c->app->cfg->backend;
    if (!backend_built(ad->backend)) {
        log_error("challenge %lld: backend '%.16s' is not built into this binary",
                  (long long)ch->id, ad->backend);
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
    }
    return 0;
}

static void fill_spec(struct ctx *c, const struct ctfd_challenge *ch, const struct admission *ad,
                      struct backend_spec *spec)
{
    const struct cc_config *cfg = c->app->cfg;
    memset(spec, 0, sizeof(*spec));
    spec->name = ad->inst.name;
    spec->image = ch->image;
    spec->flag_env = ch->flag_env;
    spec->flag = ad->flag;
    spec->instance_id = ad->inst.id;
    spec->account_id = ad->inst.account_id;
    spec->challenge_id = ch->id;
    spec->expires = ad->inst.deadline;
    spec->memory_bytes = (ch->memory_mb > 0 ? ch->memory_mb : cfg->default_memory_mb) * 1048576;
    spec->nano_cpus = (int64_t)((ch->cpus > 0 ? ch->cpus : cfg->default_cpus) * 1e9);
    spec->pids_limit = cfg->pids_limit;
    spec->route = ad->route;
    spec->allow_internet = ad->ex.allow_internet;
    spec->read_only = ad->ex.read_only;
    spec->cap_add = ad->ex.cap_add;
    spec->nports = ad->nports;
    memcpy(spec->ports, ad->ports, sizeof(ad->ports));
    spec->user_id = c->id.user.id;
    spec->placement = ch->placement;
}

/* The player's own CTFd credentials, for a backend that must act as the
 * player (whale). Only the fields nginx forwards (see docs/whale-guide.md). */
static const struct backend_caller *caller_of(struct ctx *c)
{
    struct backend_caller *who = arena_alloc(c->arena, sizeof(*who));
    who->user_id = c->id.user.id;
    who->cookie = http_param(c->req, "CTFD_FORWARD_COOKIE");
    who->csrf_token = http_param(c->req, "CTFD_FORWARD_CSRF_TOKEN");
    who->authorization = http_param(c->req, "CTFD_FORWARD_AUTHORIZATION");
    return who;
}

/* Remove the container a revert replaced, then free its host ports. A
 * failure leaves both to the reaper (the row is no longer live: an orphan). */
static void remove_reverted(struct app *app, const struct instance *old)
{
    struct cc_error err = {0};
    struct backend *b = ops_backend(app, old->backend, &err);
    if (b == NULL || b->ops->stop(b, old->name, &err) < 0) {
        log_warn("container %lld: removing the reverted container failed (%s); the reaper "
                 "retries", (long long)old->id, err_code_str(err.code));
        return;
    }
    store_free_ports(app->store, old->id, &err);
}

/* A start that failed gives back its slot and its cooldown. */
static void start_failed(struct ctx *c, const struct admission *ad, const struct cc_error *err)
{
    struct cc_error e2;
    bool changed;
    log_warn("container %lld: start failed: %s (%s)", (long long)ad->inst.id,
             err_code_str(err->code), err_message(err));
    store_end(c->app->store, ad->inst.id, "failed", err_code_str(err->code), c->now, &changed,
              &e2);
    store_restore_action(c->app->store, c->id.account_kind, c->id.account_id, c->now,
                         ad->prev_action, &e2);
}

/* Another process holds a host port we reserved: reserve new ones and retry. */
static int new_ports(struct ctx *c, struct admission *ad, struct cc_error *err)
{
    struct store *s = c->app->store;
    const char *state;
    if (store_begin(s, err) < 0)
        return -1;
    /* Lock the row first: a stop that ended it must not get ports back. */
    int rc = store_lock_live_state(s, c->arena, ad->inst.id, &state, err);
    if (rc == 0 && (state == NULL || strcmp(state, "starting") != 0))
        rc = err_set(err, ERR_CONTAINER_BUSY, "The container was stopped while it was starting.");
    if (rc == 0)
        rc = store_free_ports(s, ad->inst.id, err);
    for (size_t i = 0; rc == 0 && i < ad->nports; i++) {
        int64_t port;
        rc = store_reserve_port(s, ad->inst.id, c->app->cfg->port_min, c->app->cfg->port_max,
                                &port, err);
        ad->ports[i].host_port = (int)port;
    }
    if (rc == 0 && store_commit(s, err) == 0)
        return 0;
    store_rollback(s);
    return -1;
}

/* Start on one backend, retrying with other host ports after a clash. */
static int start_on(struct ctx *c, const struct ctfd_challenge *ch, struct admission *ad,
                    struct backend *b, struct backend_started *out, struct cc_error *err)
{
    struct backend_spec spec;
    int rc = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        fill_spec(c, ch, ad, &spec);
        spec.caller = caller_of(c);
        err_clear(err); /* a retry's outcome must not carry the clash it retried */
        memset(out, 0, sizeof(*out));
        rc = b->ops->start(b, c->arena, &spec, out, err);
        if (rc == 0 || !(err->code == ERR_START_FAILED && err->temporary) || attempt == 2)
            break;
        log_info("container %lld: %s; trying other host ports", (long long)ad->inst.id,
                 err_message(err));
        if (new_ports(c, ad, err) < 0)
            break;
    }
    return rc;
}

/* The fallback: only for a new start, only while the primary answers with
 * ENGINE_UNAVAILABLE, only to a different backend. The row is moved to the
 * fallback before it starts there, so whoever cleans up uses the right one;
 * whatever the primary may have left behind is an orphan there, which the
 * reaper removes once the primary answers again. */
static int try_fallback(struct ctx *c, const struct ctfd_challenge *ch, struct admission *ad,
                        struct backend_started *out, struct cc_error *err)
{
    const char *fb = c->app->cfg->fallback_backend;
    const char *primary = ad->backend;
    struct cc_error e2 = {0};
    bool changed = false;
    if (err->code != ERR_ENGINE_UNAVAILABLE || fb == NULL || fb[0] == '\0' ||
        strcmp(fb, primary) == 0)
        return -1;
    struct backend *b = ops_backend(c->app, fb, &e2);
    if (b == NULL ||
        store_set_backend(c->app->store, ad->inst.id, fb, &changed, &e2) < 0 || !changed)
        return -1; /* keep the primary's error: it is what the player should see */
    log_warn("container %lld: backend %s unavailable (%s); starting on the fallback %s",
             (long long)ad->inst.id, primary, err_message(err), fb);
    ad->backend = fb;
    ad->inst.backend = fb;
    if (start_on(c, ch, ad, b, out, err) < 0)
        return -1;
    char detail[160];
    snprintf(detail, sizeof(detail), "%s unavailable; started on %s", primary, fb);
    ops_audit(c->app, "fallback_start", 0, &ad->inst, detail, c->now);
    log_warn("container %lld: fallback start on %s (primary %s unavailable)",
             (long long)ad->inst.id, fb, primary);
    return 0;
}

/* A whale start brings its own flag: keep it (encrypted) in place of ours. */
static int take_engine_flag(struct ctx *c, struct admission *ad, struct backend_started *out,
                            struct cc_error *err)
{
    const struct flag_keys *k = c->app->keys;
    unsigned char nonce[FLAG_NONCE_LEN], ct[FLAG_CIPHERTEXT_MAX], digest[FLAG_DIGEST_LEN];
    size_t ctlen;
    char aad[32];
    snprintf(aad, sizeof(aad), "%" PRId64, ad->inst.id);
    size_t len = strlen(out->engine_flag);
    int rc = -1;
    if (len > 0 && len <= FLAG_MAX_LEN &&
        flag_encrypt(k, out->engine_flag, aad, nonce, ct, sizeof(ct), &ctlen) == 0) {
        flag_digest(k, out->engine_flag, digest);
        rc = store_replace_flag(c->app->store, ad->inst.id, k->key_id, nonce, ct, ctlen, digest,
                                err);
    } else {
        err_set(err, ERR_INTERNAL, NULL);
    }
    flag_wipe(out->engine_flag, len);
    out->engine_flag = NULL;
    return rc;
}

/* Run the engine side of an admitted start, then publish the row. */
static int launch(struct ctx *c, const struct ctfd_challenge *ch, struct admission *ad,
                  struct cc_error *err)
{
    struct app *app = c->app;
    struct backend_started out = {0};
    bool changed;
    if (ad->revert)
        remove_reverted(app, &ad->old);
    if (ad->claimed)
        return 0; /* a warm pool container: it runs already */
    struct backend *b = ops_backend(app, ad->backend, err);
    int rc = b != NULL ? start_on(c, ch, ad, b, &out, err) : -1;
    if (rc < 0 && b != NULL && try_fallback(c, ch, ad, &out, err) == 0) {
        rc = 0;
        b = ops_backend(app, ad->backend, err);
    }
    flag_wipe(ad->flag, sizeof(ad->flag));
    if (rc == 0 && out.engine_flag != NULL && take_engine_flag(c, ad, &out, err) < 0) {
        struct cc_error e3;
        b->ops->stop(b, ad->inst.name, &e3);
        rc = -1;
    }
    if (rc < 0) {
        start_failed(c, ad, err);
        return -1;
    }
    const char *ports = out.own_ports ? ops_format_ports(c->arena, out.ports, out.nports)
                                      : ops_format_ports(c->arena, ad->ports, ad->nports);
    if (store_mark_running(app->store, ad->inst.id, out.engine_id, out.host, ports, c->now,
                           &changed, err) < 0 ||
        !changed) {
        /* Stopped while starting (or the database failed): remove what we made,
         * then free the ports the stopper left reserved for us. */
        struct cc_error e2;
        if (b->ops->stop(b, ad->inst.name, &e2) == 0 && changed == false &&
            err->code == ERR_OK)
            store_free_ports(app->store, ad->inst.id, &e2);
        if (err->code == ERR_OK)
            err_set(err, ERR_CONTAINER_BUSY, "The container was stopped while it was starting.");
        return -1;
    }
    return 0;
}

void api_container_start(struct ctx *c)
{
    struct cc_error err = {0};
    int64_t cid;
    struct ctfd_challenge ch;
    struct admission *ad = arena_alloc(c->arena, sizeof(*ad));
    if (challenge_arg(c, true, &cid, &err) < 0 || resolve(c, &err) < 0 ||
        load_challenge(c, cid, &ch, &err) < 0 || check_prereqs(c, &ch, &err) < 0 ||
        check_spec(c, &ch, ad, &err) < 0)
        return api_fail(c, &err);
    struct lc_limits l = limits_for(c->app->cfg, &ch);
    if (admit(c, &ch, &l, ad, &err) < 0 || launch(c, &ch, ad, &err) < 0)
        return api_fail(c, &err);
    struct instance inst;
    bool found;
    if (store_get_instance(c->app->store, c->arena, ad->inst.id, &inst, &found, &err) < 0 || !found)
        return api_fail(c, &err);
    log_info("container %lld started for %s %lld, challenge %lld%s%s", (long long)inst.id,
             inst.account_kind, (long long)inst.account_id, (long long)cid,
             ad->revert ? " (revert)" : "", ad->claimed ? " (from the warm pool)" : "");
    http_reply_json(c->resp, 200, player_json(c, &inst, &l));
}

static int extend_locked(struct ctx *c, const struct lc_limits *l, int64_t cid,
                         struct instance *inst, struct cc_error *err)
{
    struct store *s = c->app->store;
    struct lc_account acc = {0};
    bool found, changed;
    int retry = 0;
    if (store_lock_account(s, c->id.account_kind, c->id.account_id, &acc.last_action_at, err) < 0 ||
        store_find_live(s, c->arena, c->id.account_kind, c->id.account_id, cid, inst, &found,
                        err) < 0)
        return -1;
    if (!found)
        return err_set(err, ERR_CONTAINER_NOT_FOUND, NULL);
    enum cc_err e = lifecycle_check_extend(l, &acc, lifecycle_state_parse(inst->state),
                                           inst->renewals, c->now, &retry);
    if (e != ERR_OK) {
        err_set(err, e, NULL);
        err->retry_after = retry;
        return -1;
    }
    int64_t deadline = lifecycle_extended_deadline(l, inst->deadline);
    if (store_extend(s, inst->id, inst->renewals, deadline, c->now, &changed, err) < 0)
        return -1;
    if (!changed)
        return err_set(err, ERR_CONTAINER_BUSY, NULL);
    inst->deadline = deadline;
    inst->renewals++;
    return store_touch_account(s, c->id.account_kind, c->id.account_id, c->now, err);
}


struct extend_args {
    struct ctx *c;
    const struct lc_limits *l;
    int64_t cid;
    struct instance *inst;
};

static int extend_body(void *arg, struct cc_error *err)
{
    struct extend_args *x = arg;
    return extend_locked(x->c, x->l, x->cid, x->inst, err);
}

void api_container_extend(struct ctx *c)
{
    struct cc_error err = {0};
    int64_t cid;
    struct ctfd_challenge ch;
    struct instance inst;
    bool from_body = strcmp(c->req->path, "/api/v1/container/extend") == 0;
    if (challenge_arg(c, from_body, &cid, &err) < 0 || resolve(c, &err) < 0 ||
        load_challenge(c, cid, &ch, &err) < 0)
        return api_fail(c, &err);
    struct lc_limits l = limits_for(c->app->cfg, &ch);
    struct extend_args x = {c, &l, cid, &inst};
    if (store_transaction(c->app->store, extend_body, NULL, &x, &err) < 0)
        return api_fail(c, &err);
    ops_engine_extend(c->app, c->arena, &inst);
    http_reply_json(c->resp, 200, player_json(c, &inst, &l));
}

void api_container_stop(struct ctx *c)
{
    struct cc_error err = {0};
    int64_t cid;
    struct instance inst;
    bool found;
    if (challenge_arg(c, false, &cid, &err) < 0 || resolve(c, &err) < 0 ||
        store_find_live(c->app->store, c->arena, c->id.account_kind, c->id.account_id, cid, &inst,
                        &found, &err) < 0)
        return api_fail(c, &err);
    if (!found)
        return api_fail(c, (err_set(&err, ERR_CONTAINER_NOT_FOUND, NULL), &err));
    if (ops_stop(c->app, c->arena, &inst, "stopped", "stopped by its account", c->now, &err) < 0)
        return api_fail(c, &err);
    http_reply_json(c->resp, 200, json_object());
}

/* The FastCGI floor for benchmarks: no query, no identity, no database. */
void api_ping(struct ctx *c)
{
    http_reply_json(c->resp, 200, NULL);
}

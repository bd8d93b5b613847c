/* backend_whale.c: drives an existing ctfd-whale (frankli0324/ctfd-whale on
 * the same CTFd) instead of an engine. A start is ctfd-whale's player API,
 * called with the player's own CTFd session (nginx forwards it, opt-in: see
 * docs/whale-guide.md), because ctfd-whale starts containers only for its
 * current user. Every other operation (stop, extend, the reaper's) uses
 * ctfd-whale's admin API with an admin's access token, which ctfd-whale's
 * per-session rate limit does not apply to. What ctfd-whale made (its uuid,
 * its flag, its port) is read from its own table whale_container in the same
 * database, never guessed from its HTML answers alone.
 *
 * It must not know other backends, must not log or return a flag, a token or
 * a cookie, and must leave no whale container behind when a start fails
 * after ctfd-whale made one. ctfd-whale allows one instance per user: a
 * start for a user who runs one for another challenge is refused instead of
 * letting ctfd-whale replace it silently. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "curlx.h"
#include "log.h"
#include "store.h"

#define WHALE_PLAYER "/api/v1/plugins/ctfd-whale/container"
#define WHALE_ADMIN "/api/v1/plugins/ctfd-whale/admin/container"

struct whale {
    struct curlx *cx;
};

static struct whale *W(struct backend *b)
{
    return b->impl;
}

/* "http://host:port[/]" -> "tcp://host:port" for curlx (http only). */
static int whale_open(struct backend *b, struct cc_error *err)
{
    const char *url = b->cfg->whale_url;
    char ep[300];
    if (url == NULL || strncmp(url, "http://", 7) != 0 || strlen(url) > 250)
        return err_set(err, ERR_INTERNAL, "whale_url must be http://host:port");
    snprintf(ep, sizeof(ep), "tcp://%s", url + 7);
    size_t n = strlen(ep);
    if (n > 0 && ep[n - 1] == '/')
        ep[n - 1] = '\0';
    if (strchr(ep + 6, ':') == NULL)
        strncat(ep, ":80", sizeof(ep) - strlen(ep) - 1);
    struct whale *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return err_set(err, ERR_INTERNAL, "out of memory");
    w->cx = curlx_open(ep, NULL, NULL, NULL, (long)b->cfg->whale_timeout_seconds, err);
    if (w->cx == NULL) {
        free(w);
        return err_set(err, ERR_INTERNAL, "whale_url must be http://host:port");
    }
    b->impl = w;
    return 0;
}

static void whale_destroy(struct backend *b)
{
    struct whale *w = W(b);
    if (w == NULL)
        return;
    curlx_close(w->cx);
    free(w);
    b->impl = NULL;
}

static int whale_ping(struct backend *b, struct cc_error *err)
{
    arena_t *a = arena_new(8192);
    struct curlx_reply r;
    int rc = curlx_request(W(b)->cx, a, "GET", "/healthcheck", NULL, false, &r, err);
    if (rc == 0 && r.status >= 500)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "ctfd-whale's CTFd answered HTTP %ld", r.status);
    arena_free(a);
    return rc;
}

/* ---- ctfd-whale's answers, in our words -------------------------------------- */

static const char *whale_message(const struct curlx_reply *r)
{
    const char *m = json_string_value(json_object_get(r->json, "message"));
    return m != NULL ? m : "";
}

/* Map a refusal of ctfd-whale (its 403 messages, CTFd's statuses). */
static int whale_refusal(const char *what, const struct curlx_reply *r, struct cc_error *err)
{
    const char *m = whale_message(r);
    log_warn("whale: %s: HTTP %ld: %.200s", what, r->status, m);
    if (r->status >= 500)
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "ctfd-whale failed to %s (HTTP %ld)", what,
                       r->status);
    if (strstr(m, "Frequency limit") != NULL || strstr(m, "Request Too Fast") != NULL) {
        err_set(err, ERR_COOLDOWN, "ctfd-whale's own rate limit: wait a minute.");
        err->retry_after = strstr(m, "Frequency") ? 60 : 10;
        return -1;
    }
    if (strstr(m, "Max container count") != NULL)
        return err_set(err, ERR_CAPACITY_FULL, NULL);
    if (strstr(m, "No available ports") != NULL)
        return err_set(err, ERR_PORTS_EXHAUSTED, NULL);
    if (strstr(m, "Server busy") != NULL) {
        err_set(err, ERR_CONTAINER_BUSY, NULL);
        err->temporary = true;
        return -1;
    }
    if (strstr(m, "not visible") != NULL || r->status == 404)
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, NULL);
    if (strstr(m, "creation failed") != NULL)
        return err_set(err, ERR_START_FAILED, "ctfd-whale could not create the container.");
    if (r->status == 401 || r->status == 403 || r->status == 302)
        return err_set(err, r->json ? ERR_START_FAILED : ERR_NOT_AUTHENTICATED,
                       r->json ? "ctfd-whale refused: %.120s"
                               : "ctfd-whale did not accept your CTFd session.",
                       m);
    return err_set(err, ERR_INTERNAL, "ctfd-whale refused to %s (HTTP %ld)", what, r->status);
}

/* One call to the admin API (?user_id=N) with the admin token. */
static int whale_admin(struct backend *b, arena_t *a, const char *method, int64_t user_id,
                       struct curlx_reply *r, struct cc_error *err)
{
    const char *tok = b->cfg->whale_admin_token;
    if (tok == NULL || tok[0] == '\0')
        return err_set(err, ERR_INTERNAL, "whale_admin_token is not set");
    const char *hdr[] = {arena_printf(a, "Authorization: Token %s", tok), NULL};
    int rc = curlx_request_headers(W(b)->cx, a, method,
                                   arena_printf(a, WHALE_ADMIN "?user_id=%lld", (long long)user_id),
                                   NULL, true, hdr, r, err);
    explicit_bzero((char *)hdr[0], strlen(hdr[0]));
    return rc;
}

/* The player's headers, as nginx forwarded them; NULL if there are none. */
static const char **whale_player_headers(arena_t *a, const struct backend_caller *who)
{
    const char **h = arena_alloc(a, sizeof(char *) * 4);
    size_t n = 0;
    if (who == NULL)
        return NULL;
    if (who->authorization && who->authorization[0])
        h[n++] = arena_printf(a, "Authorization: %s", who->authorization);
    if (who->cookie && who->cookie[0])
        h[n++] = arena_printf(a, "Cookie: %s", who->cookie);
    if (who->csrf_token && who->csrf_token[0])
        h[n++] = arena_printf(a, "CSRF-Token: %s", who->csrf_token);
    h[n] = NULL;
    return n > 0 ? h : NULL;
}

static void whale_wipe_headers(const char **h)
{
    for (size_t i = 0; h != NULL && h[i] != NULL; i++)
        explicit_bzero((char *)h[i], strlen(h[i]));
}

/* ctfd-whale's access string -> where players connect:
 * "nc HOST PORT" (direct) or "<a ... href="http://HOST[:PORT]/">" (http).
 * Exported for its fuzz target (tests/fuzz/fuzz_whale_access.c). */
int whale_parse_access(arena_t *a, const char *s, struct backend_started *out)
{
    static const char stop[] = " \t\r\n\"'<>/:";
    const char *h, *p;
    enum backend_proto proto;
    if (strncmp(s, "nc ", 3) == 0) {
        h = s + 3;
        p = h + strcspn(h, stop);
        if (*p != ' ')
            return -1;
        proto = PROTO_TCP;
    } else if ((h = strstr(s, "href=\"http://")) != NULL) {
        h += 13;
        p = h + strcspn(h, stop);
        if (*p != ':' && *p != '/')
            return -1;
        proto = PROTO_HTTP;
    } else {
        return -1;
    }
    size_t n = (size_t)(p - h);
    if (n == 0 || n >= 256)
        return -1;
    long port = 80;
    if (proto == PROTO_TCP || *p == ':') {
        char *end;
        const char *digits = p + 1;
        if (*digits < '0' || *digits > '9')
            return -1;
        port = strtol(digits, &end, 10);
        if (end - digits > 5 || (proto == PROTO_TCP && *end != '\0' && *end != '\n') ||
            (proto == PROTO_HTTP && *end != '/'))
            return -1;
    }
    if (port < 1 || port > 65535)
        return -1;
    char *host = arena_alloc(a, n + 1);
    memcpy(host, h, n);
    host[n] = '\0';
    out->host = host;
    out->ports[0].proto = proto;
    out->ports[0].host_port = (int)port;
    out->nports = 1;
    out->own_ports = true;
    return 0;
}

/* GET as the player: ctfd-whale's access string for its container. */
static int whale_access(struct backend *b, arena_t *a, const struct backend_spec *spec,
                        const char **hdr, struct backend_started *out, struct cc_error *err)
{
    struct curlx_reply r;
    const char *path =
        arena_printf(a, WHALE_PLAYER "?challenge_id=%lld", (long long)spec->challenge_id);
    if (curlx_request_headers(W(b)->cx, a, "GET", path, NULL, true, hdr, &r, err) < 0)
        return -1;
    const char *acc =
        json_string_value(json_object_get(json_object_get(r.json, "data"), "user_access"));
    int rc = 0;
    if (r.status != 200 || acc == NULL)
        rc = r.status != 200 ? whale_refusal("read the access", &r, err)
                             : err_set(err, ERR_START_FAILED, "ctfd-whale shows no container.");
    else if (whale_parse_access(a, acc, out) < 0)
        rc = err_set(err, ERR_START_FAILED, "ctfd-whale's access string is not understood.");
    json_decref(r.json);
    if (rc == 0)
        out->ports[0].internal = spec->nports > 0 ? spec->ports[0].internal : 0;
    return rc;
}

/* ---- operations ---------------------------------------------------------------- */

/* Refuse when ctfd-whale runs a container of this user for another challenge:
 * its POST would silently replace it (one instance per user). */
static int whale_check_slot(struct backend *b, arena_t *a, const struct backend_spec *spec,
                            struct cc_error *err)
{
    struct whale_row row;
    bool found;
    if (b->store == NULL)
        return err_set(err, ERR_INTERNAL, "backend whale needs the database");
    if (store_whale_find(b->store, a, spec->user_id, NULL, &row, &found, err) < 0)
        return -1;
    if (found && row.challenge_id != spec->challenge_id)
        return err_set(err, ERR_CONTAINER_LIMIT_REACHED,
                       "ctfd-whale runs one container per player: stop your other one first.");
    return 0;
}

/* After ctfd-whale said "created": its row (uuid, flag), the access, readiness. */
static int whale_finish(struct backend *b, arena_t *a, const struct backend_spec *spec,
                        const char **hdr, struct backend_started *out, struct cc_error *err)
{
    struct whale_row row;
    bool found;
    if (store_whale_find(b->store, a, spec->user_id, NULL, &row, &found, err) < 0)
        return -1;
    if (!found || row.challenge_id != spec->challenge_id || row.flag == NULL)
        return err_set(err, ERR_START_FAILED, "ctfd-whale keeps no container for this start.");
    out->engine_id = arena_strdup(a, row.uuid);
    out->engine_flag = arena_strdup(a, row.flag);
    explicit_bzero((char *)row.flag, strlen(row.flag));
    if (whale_access(b, a, spec, hdr, out, err) < 0)
        return -1;
    if (!b->cfg->whale_ready_check)
        return 0;
    return backend_wait_ready(out->host, out->ports[0].host_port, out->ports[0].proto,
                              (int)b->cfg->ready_timeout_seconds * 1000, err);
}

static int whale_start(struct backend *b, arena_t *a, const struct backend_spec *spec,
                       struct backend_started *out, struct cc_error *err)
{
    const char **hdr = whale_player_headers(a, spec->caller);
    if (hdr == NULL)
        return err_set(err, ERR_INTERNAL,
                       "backend whale needs the player's CTFd session (nginx forwarding)");
    if (whale_check_slot(b, a, spec, err) < 0) {
        whale_wipe_headers(hdr);
        return -1;
    }
    struct curlx_reply r;
    json_t *body = json_object();
    const char *path =
        arena_printf(a, WHALE_PLAYER "?challenge_id=%lld", (long long)spec->challenge_id);
    int rc = curlx_request_headers(W(b)->cx, a, "POST", path, body, true, hdr, &r, err);
    json_decref(body);
    if (rc == 0 && (r.status != 200 || !json_is_true(json_object_get(r.json, "success"))))
        rc = whale_refusal("start", &r, err);
    if (rc == 0 || r.json)
        json_decref(r.json);
    if (rc == 0 && whale_finish(b, a, spec, hdr, out, err) < 0) {
        rc = -1; /* ctfd-whale made it: remove it (its admin API, by user) */
        struct cc_error e2;
        struct curlx_reply d;
        if (whale_admin(b, a, "DELETE", spec->user_id, &d, &e2) == 0)
            json_decref(d.json);
        if (out->engine_flag)
            explicit_bzero(out->engine_flag, strlen(out->engine_flag));
        out->engine_flag = NULL;
    }
    whale_wipe_headers(hdr);
    return rc;
}

/* Our row by name, and ctfd-whale's container it started (uuid; for a row
 * whose start never finished, the user's container for its challenge). */
static int whale_lookup(struct backend *b, arena_t *a, const char *name, struct instance *inst,
                        struct whale_row *row, bool *found, struct cc_error *err)
{
    bool have;
    *found = false;
    memset(row, 0, sizeof(*row));
    if (b->store == NULL)
        return err_set(err, ERR_INTERNAL, "backend whale needs the database");
    if (store_instance_by_name(b->store, a, name, inst, &have, err) < 0)
        return -1;
    if (!have)
        return 0;
    const char *uuid = inst->engine_id && inst->engine_id[0] ? inst->engine_id : NULL;
    if (store_whale_find(b->store, a, inst->user_id, uuid, row, found, err) < 0)
        return -1;
    if (row->flag != NULL)
        explicit_bzero((char *)row->flag, strlen(row->flag));
    row->flag = NULL;
    if (*found && uuid == NULL && row->challenge_id != inst->challenge_id)
        *found = false;
    return 0;
}

static int whale_stop(struct backend *b, const char *name, struct cc_error *err)
{
    arena_t *a = arena_new(16384);
    struct instance inst;
    struct whale_row row;
    struct curlx_reply r = {0};
    bool found;
    int rc = whale_lookup(b, a, name, &inst, &row, &found, err);
    if (rc == 0 && found)
        rc = whale_admin(b, a, "DELETE", row.user_id, &r, err);
    if (rc == 0 && found && r.status != 200)
        rc = whale_refusal("stop", &r, err);
    else if (rc == 0 && found && !json_is_true(json_object_get(r.json, "success")) &&
             strstr(whale_message(&r), "No such container") == NULL)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "ctfd-whale could not remove it (retried)");
    json_decref(r.json);
    arena_free(a);
    return rc;
}

static int whale_extend(struct backend *b, arena_t *a, const char *name, int64_t deadline,
                        struct cc_error *err)
{
    struct instance inst;
    struct whale_row row;
    struct curlx_reply r = {0};
    bool found;
    (void)deadline; /* ctfd-whale's renew restarts its own timer: it cannot take ours */
    int rc = whale_lookup(b, a, name, &inst, &row, &found, err);
    if (rc == 0 && !found)
        return err_set(err, ERR_CONTAINER_NOT_FOUND, NULL);
    if (rc == 0)
        rc = whale_admin(b, a, "PATCH", row.user_id, &r, err);
    if (rc == 0 && (r.status != 200 || !json_is_true(json_object_get(r.json, "success"))))
        rc = whale_refusal("renew", &r, err);
    json_decref(r.json);
    return rc;
}

static void whale_object(arena_t *a, const struct whale_row *row, const char *name,
                         int64_t instance_id, int64_t deadline, int64_t account_id,
                         struct backend_object *o)
{
    memset(o, 0, sizeof(*o));
    o->engine_id = arena_strdup(a, row->uuid);
    o->name = name;
    o->instance_id = instance_id;
    o->account_id = account_id;
    o->challenge_id = row->challenge_id;
    o->expires = deadline;
    o->created = row->start_time;
    o->running = true; /* ctfd-whale keeps no state: a row is a running service */
    o->status = "running";
}

static int whale_inspect(struct backend *b, arena_t *a, const char *name,
                         struct backend_object *out, bool *found, struct cc_error *err)
{
    struct instance inst;
    struct whale_row row;
    if (whale_lookup(b, a, name, &inst, &row, found, err) < 0)
        return -1;
    if (*found)
        whale_object(a, &row, arena_strdup(a, name), inst.id, inst.deadline, inst.account_id, out);
    return 0;
}

static int whale_list(struct backend *b, arena_t *a, struct backend_object **out, size_t *n,
                      struct cc_error *err)
{
    struct whale_row *rows;
    size_t nrows;
    if (b->store == NULL)
        return err_set(err, ERR_INTERNAL, "backend whale needs the database");
    if (store_whale_ours(b->store, a, &rows, &nrows, err) < 0)
        return -1;
    *out = arena_alloc(a, sizeof(struct backend_object) * (nrows ? nrows : 1));
    *n = nrows;
    for (size_t i = 0; i < nrows; i++)
        whale_object(a, &rows[i], rows[i].name, rows[i].instance_id, rows[i].deadline, 0,
                     &(*out)[i]);
    return 0;
}

const struct backend_ops backend_whale_ops = {
    .name = "whale",
    .open = whale_open,
    .ping = whale_ping,
    .start = whale_start,
    .stop = whale_stop,
    .inspect = whale_inspect,
    .list = whale_list,
    .destroy = whale_destroy,
    .extend = whale_extend,
    .chooses_ports = true,
};

/* ops.c: see ops.h. */
#include "ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "log.h"

static int end_row(struct app *app, const struct instance *inst, const char *end_state,
                   const char *reason, int64_t now, struct cc_error *err)
{
    bool changed;
    if (store_end(app->store, inst->id, end_state, reason, now, &changed, err) < 0)
        return -1;
    if (changed)
        log_info("container %lld %s (%s)", (long long)inst->id, end_state, reason);
    return 0;
}

int ops_stop(struct app *app, arena_t *a, const struct instance *inst, const char *end_state,
             const char *reason, int64_t now, struct cc_error *err)
{
    bool changed = false;
    const char *state = inst->state;
    if (strcmp(state, "starting") == 0) {
        /* Ending the row is enough: the starter's mark_running fails and it
         * removes its own engine object and frees the ports. Only if it is
         * still starting: if it just turned running, stop it as running. */
        if (store_end_if_state(app->store, inst->id, "starting", end_state, reason, now,
                               &changed, err) < 0)
            return -1;
        if (changed) {
            log_info("container %lld %s while starting (%s)", (long long)inst->id, end_state,
                     reason);
            return 0;
        }
        struct instance again;
        bool found;
        if (store_get_instance(app->store, a, inst->id, &again, &found, err) < 0)
            return -1;
        if (!found || !again.live)
            return 0;
        state = again.state;
    }
    if (strcmp(state, "running") == 0) {
        if (store_cas_state(app->store, inst->id, "running", "stopping", now, &changed, err) < 0)
            return -1;
        if (!changed) {
            struct instance again;
            bool found;
            if (store_get_instance(app->store, a, inst->id, &again, &found, err) < 0)
                return -1;
            if (!found || !again.live)
                return 0; /* somebody else ended it */
        }
    }
    /* Remove first, then end the row: a row is never ended while its engine
     * object might still run. The row's own backend removes it, whatever the
     * global backend is now (a switch leaves running containers alone). */
    struct backend *b = ops_backend(app, inst->backend, err);
    if (b == NULL || b->ops->stop(b, inst->name, err) < 0) {
        log_warn("container %lld: engine stop failed (%s); the reaper retries",
                 (long long)inst->id, err_code_str(err->code));
        return -1;
    }
    return end_row(app, inst, end_state, reason, now, err);
}

struct backend *ops_backend(struct app *app, const char *name, struct cc_error *err)
{
    return backend_get(&app->backends, name, err);
}

void ops_engine_extend(struct app *app, arena_t *a, const struct instance *inst)
{
    struct cc_error err = {0};
    struct backend *b = ops_backend(app, inst->backend, &err);
    if (b != NULL && b->ops->extend == NULL)
        return;
    if (b == NULL || b->ops->extend(b, a, inst->name, inst->deadline, &err) < 0)
        log_warn("container %lld: the %s backend did not take the new deadline (%s); the "
                 "reaper still ends it at the deadline", (long long)inst->id,
                 inst->backend ? inst->backend : "?", err_code_str(err.code));
}

static const char *proto_name(enum backend_proto p)
{
    return p == PROTO_HTTP ? "http" : "tcp";
}

/* One "PORT/PROTO" item; end points past it. */
static int parse_item(const char *s, const char **end, struct backend_port *p)
{
    char *e;
    if (*s < '0' || *s > '9')
        return -1; /* strtol would take a sign or blanks */
    long port = strtol(s, &e, 10);
    if (e == s || port < 1 || port > 65535 || *e != '/')
        return -1;
    s = e + 1;
    if (strncmp(s, "http", 4) == 0) {
        p->proto = PROTO_HTTP;
        s += 4;
    } else if (strncmp(s, "tcp", 3) == 0) {
        p->proto = PROTO_TCP;
        s += 3;
    } else {
        return -1;
    }
    p->internal = (int)port;
    p->host_port = 0;
    *end = s;
    return 0;
}

int ops_parse_ports(const char *spec, struct backend_port *ports, size_t cap, size_t *n)
{
    *n = 0;
    const char *s = spec;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return -1;
    while (*s) {
        if (*n >= cap || parse_item(s, &s, &ports[*n]) < 0)
            return -1;
        for (size_t i = 0; i < *n; i++)
            if (ports[i].internal == ports[*n].internal)
                return -1; /* one container port, one published port */
        (*n)++;
        while (*s == ' ')
            s++;
        if (*s == ',') {
            s++;
            while (*s == ' ')
                s++;
            if (*s == '\0')
                return -1;
        } else if (*s != '\0') {
            return -1;
        }
    }
    return 0;
}

const char *ops_format_ports(arena_t *a, const struct backend_port *ports, size_t n)
{
    strbuf_t sb;
    sb_init(&sb, a);
    for (size_t i = 0; i < n; i++)
        sb_printf(&sb, "%s%d/%s:%d", i ? "," : "", ports[i].internal,
                  proto_name(ports[i].proto), ports[i].host_port);
    return sb_str(&sb);
}

int ops_parse_stored_ports(const char *s, struct backend_port *ports, size_t cap, size_t *n)
{
    *n = 0;
    while (s && *s) {
        char *e;
        if (*n >= cap || parse_item(s, &s, &ports[*n]) < 0 || *s != ':')
            return -1;
        long hp = strtol(s + 1, &e, 10);
        if (e == s + 1 || hp < 0 || hp > 65535)
            return -1;
        ports[(*n)++].host_port = (int)hp;
        if (*e != ',' && *e != '\0')
            return -1;
        if (*e == ',' && e[1] == '\0')
            return -1;
        s = *e == ',' ? e + 1 : e;
    }
    return 0;
}

void ops_stop_all(struct app *app, arena_t *a, struct instance_filter *f, int64_t now,
                  int64_t *stopped, int64_t *failed)
{
    *stopped = *failed = 0;
    /* Rows that fail to stop stay listed: a round that stops none of what it
     * saw is the last. */
    for (int round = 0; round < 1000; round++) {
        struct instance *rows;
        size_t n;
        int64_t total;
        struct cc_error err = {0};
        if (store_list(app->store, a, f, &rows, &n, &total, &err) < 0 || n == 0 ||
            (int64_t)n == *failed)
            return;
        *failed = 0;
        for (size_t i = 0; i < n; i++) {
            if (ops_stop(app, a, &rows[i], "stopped", "stopped by an admin (all)", now, &err) == 0)
                (*stopped)++;
            else
                (*failed)++;
        }
    }
}

int ops_reveal_flag(struct app *app, arena_t *a, int64_t id, struct instance *inst, char *out,
                    size_t outlen, struct cc_error *err)
{
    struct stored_flag sf;
    bool found;
    char aad[32];
    if (store_get_instance(app->store, a, id, inst, &found, err) < 0)
        return -1;
    /* A warm pool container's flag is never shown: it may be claimed next. */
    if (!found || ops_is_pool(inst))
        return err_set(err, ERR_CONTAINER_NOT_FOUND, NULL);
    if (store_get_flag(app->store, a, inst->id, &sf, &found, err) < 0)
        return -1;
    snprintf(aad, sizeof(aad), "%" PRId64, inst->id);
    if (!found || strcmp(sf.key_id, app->keys->key_id) != 0 ||
        flag_decrypt(app->keys, sf.nonce, sf.ct, sf.ctlen, aad, out, outlen) < 0) {
        log_error("container %lld: its flag cannot be decrypted with the current key",
                  (long long)inst->id);
        return err_set(err, ERR_INTERNAL, NULL);
    }
    return 0;
}

void ops_audit(struct app *app, const char *kind, int64_t actor, const struct instance *inst,
               const char *detail, int64_t now)
{
    struct cc_error err;
    if (store_event(app->store, kind, actor, inst ? inst->id : 0,
                    inst ? inst->account_kind : NULL, inst ? inst->account_id : 0,
                    inst ? inst->challenge_id : 0, detail, now, &err) < 0)
        log_error("audit event %s could not be written", kind);
}

int64_t ops_max_renewals(const struct cc_config *cfg, const struct instance *inst)
{
    return inst->challenge_max_renewals >= 0 ? inst->challenge_max_renewals : cfg->max_renewals;
}

int ops_get_live(struct app *app, arena_t *a, int64_t id, struct instance *inst,
                 struct cc_error *err)
{
    bool found;
    if (store_get_instance(app->store, a, id, inst, &found, err) < 0)
        return -1;
    if (!found || !inst->live || ops_is_pool(inst))
        return err_set(err, ERR_CONTAINER_NOT_FOUND, NULL);
    return 0;
}

bool ops_is_pool(const struct instance *inst)
{
    return inst->account_kind && strcmp(inst->account_kind, "pool") == 0;
}

int ops_admin_extend(struct app *app, arena_t *a, int64_t id, int64_t actor, const char *detail,
                     int64_t now, struct instance *inst, struct cc_error *err)
{
    bool changed;
    int retry;
    if (ops_get_live(app, a, id, inst, err) < 0)
        return -1;
    struct lc_limits l = {.max_renewals = ops_max_renewals(app->cfg, inst),
                          .extend = app->cfg->extend_seconds};
    struct lc_account acc = {0};
    enum cc_err e = lifecycle_check_extend(&l, &acc, lifecycle_state_parse(inst->state),
                                           inst->renewals, now, &retry);
    if (e != ERR_OK)
        return err_set(err, e, NULL);
    int64_t deadline = lifecycle_extended_deadline(&l, inst->deadline);
    if (store_extend(app->store, inst->id, inst->renewals, deadline, now, &changed, err) < 0)
        return -1;
    if (!changed)
        return err_set(err, ERR_CONTAINER_BUSY, NULL);
    inst->deadline = deadline;
    inst->renewals++;
    ops_engine_extend(app, a, inst);
    ops_audit(app, "admin_extend", actor, inst, detail, now);
    return 0;
}

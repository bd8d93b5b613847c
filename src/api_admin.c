/* api_admin.c: /api/v1/admin/containers: list (paginated, filtered), extend,
 * stop, stop all (with confirm=all), flag reveal (audited), reaper status.
 * Admins only (users.type = 'admin', read from CTFd's table).
 *
 * Must not: change state on GET (the flag reveal only writes its audit
 * event), or log a revealed flag. */
#include <inttypes.h>
#include <string.h>

#include "api.h"
#include "lifecycle.h"
#include "log.h"

static int admin(struct ctx *c, struct cc_error *err)
{
    return identity_resolve(c->req, c->app->store, NEED_ADMIN, &c->id, err);
}

static json_t *admin_row(struct ctx *c, const struct instance *i)
{
    json_t *o = api_container_json(i, ops_max_renewals(c->app->cfg, i), c->now);
    json_object_set_new(o, "account_kind", json_string(i->account_kind));
    json_object_set_new(o, "account_id", json_integer(i->account_id));
    json_object_set_new(o, "account_name", json_string(i->account_name ? i->account_name : ""));
    json_object_set_new(o, "challenge_name",
                        json_string(i->challenge_name ? i->challenge_name : ""));
    json_object_set_new(o, "user_id", json_integer(i->user_id));
    json_object_set_new(o, "name", json_string(i->name ? i->name : ""));
    json_object_set_new(o, "image", json_string(i->image ? i->image : ""));
    json_object_set_new(o, "backend", json_string(i->backend ? i->backend : ""));
    json_object_set_new(o, "host", json_string(i->host));
    if (i->end_reason)
        json_object_set_new(o, "end_reason", json_string(i->end_reason));
    return o;
}

void api_admin_list(struct ctx *c)
{
    static const char *const keys[] = {"page", "per_page", "challenge_id", "account_id", "state",
                                       NULL};
    struct cc_error err = {0};
    struct instance_filter f = {0};
    if (admin(c, &err) < 0 || http_query_only(c->req, keys, &err) < 0 ||
        http_query_int(c->req, "page", 1, 100000, 1, &f.page, &err) < 0 ||
        http_query_int(c->req, "per_page", 1, 100, 50, &f.per_page, &err) < 0 ||
        http_query_id(c->req, "challenge_id", false, &f.challenge_id, &err) < 0 ||
        http_query_id(c->req, "account_id", false, &f.account_id, &err) < 0)
        return api_fail(c, &err);
    f.state = http_query(c->req, "state");
    if (f.state && strcmp(f.state, "live") && lifecycle_state_parse(f.state) < 0)
        return api_fail(c, (err_set(&err, ERR_INVALID_FIELD,
                                    "'state' must be live or a container state."),
                            &err));
    struct instance *rows;
    size_t n;
    int64_t total;
    if (store_list(c->app->store, c->arena, &f, &rows, &n, &total, &err) < 0)
        return api_fail(c, &err);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, admin_row(c, &rows[i]));
    int64_t pages = (total + f.per_page - 1) / f.per_page;
    json_t *meta = json_pack("{s:I, s:I, s:I, s:I}", "page", (json_int_t)f.page, "per_page",
                             (json_int_t)f.per_page, "total", (json_int_t)total, "pages",
                             (json_int_t)pages);
    json_t *doc = json_pack("{s:b, s:o, s:o}", "success", 1, "data", list, "meta", meta);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(doc);
    c->resp->status = 200;
    sb_puts(&c->resp->body, s ? s : "{}");
    free(s);
}

static void audit(struct ctx *c, const char *kind, const struct instance *i, const char *detail)
{
    ops_audit(c->app, kind, c->id.user.id, i, detail, c->now);
}

/* Admins extend without the account's cooldown, within the renewal limit. */
void api_admin_extend(struct ctx *c)
{
    static const char *const none[] = {NULL};
    struct cc_error err = {0};
    struct instance inst;
    if (admin(c, &err) < 0 || http_query_only(c->req, none, &err) < 0 ||
        ops_admin_extend(c->app, c->arena, c->path_id, c->id.user.id, "", c->now, &inst,
                         &err) < 0)
        return api_fail(c, &err);
    http_reply_json(c->resp, 200, admin_row(c, &inst));
}

void api_admin_stop(struct ctx *c)
{
    static const char *const none[] = {NULL};
    struct cc_error err = {0};
    struct instance inst;
    if (admin(c, &err) < 0 || http_query_only(c->req, none, &err) < 0 ||
        ops_get_live(c->app, c->arena, c->path_id, &inst, &err) < 0)
        return api_fail(c, &err);
    if (ops_stop(c->app, c->arena, &inst, "stopped", "stopped by an admin", c->now, &err) < 0)
        return api_fail(c, &err);
    audit(c, "admin_stop", &inst, "");
    http_reply_json(c->resp, 200, json_object());
}

void api_admin_stop_all(struct ctx *c)
{
    static const char *const keys[] = {"confirm", "challenge_id", NULL};
    struct cc_error err = {0};
    struct instance_filter f = {.page = 1, .per_page = 100};
    const char *confirm;
    if (admin(c, &err) < 0 || http_query_only(c->req, keys, &err) < 0 ||
        http_query_id(c->req, "challenge_id", false, &f.challenge_id, &err) < 0)
        return api_fail(c, &err);
    confirm = http_query(c->req, "confirm");
    if (confirm == NULL || strcmp(confirm, "all") != 0)
        return api_fail(c, (err_set(&err, ERR_CONFIRM_REQUIRED, NULL), &err));
    int64_t stopped, failed;
    ops_stop_all(c->app, c->arena, &f, c->now, &stopped, &failed);
    char detail[64];
    snprintf(detail, sizeof(detail), "stopped %lld, failed %lld", (long long)stopped,
             (long long)failed);
    audit(c, "admin_stop_all", NULL, detail);
    http_reply_json(c->resp, 200,
                    json_pack("{s:I, s:I}", "stopped", (json_int_t)stopped, "failed",
                              (json_int_t)failed));
}

void api_admin_flag(struct ctx *c)
{
    static const char *const none[] = {NULL};
    struct cc_error err = {0};
    struct instance inst;
    char flag[FLAG_MAX_LEN + 1];
    if (admin(c, &err) < 0 || http_query_only(c->req, none, &err) < 0 ||
        ops_reveal_flag(c->app, c->arena, c->path_id, &inst, flag, sizeof(flag), &err) < 0)
        return api_fail(c, &err);
    audit(c, "flag_reveal", &inst, "");
    http_reply_json(c->resp, 200,
                    json_pack("{s:I, s:s}", "id", (json_int_t)inst.id, "flag", flag));
    flag_wipe(flag, sizeof(flag));
}

void api_admin_status(struct ctx *c)
{
    static const char *const none[] = {NULL};
    struct cc_error err = {0};
    const char *report;
    int64_t at, live, warm;
    if (admin(c, &err) < 0 || http_query_only(c->req, none, &err) < 0 ||
        store_get_status(c->app->store, c->arena, "reconcile", &report, &at, &err) < 0 ||
        store_count_live_total(c->app->store, &live, &err) < 0 ||
        store_pool_count(c->app->store, &warm, &err) < 0)
        return api_fail(c, &err);
    const char *action;
    int64_t action_at;
    if (store_get_status(c->app->store, c->arena, "reconcile_action", &action, &action_at,
                         &err) < 0)
        return api_fail(c, &err);
    /* switch, canary, fallback: how many starts the fallback took, and the last */
    struct event *fb;
    size_t nfb;
    int64_t fallbacks;
    if (store_events(c->app->store, c->arena, "fallback_start", 1, 1, &fb, &nfb, &fallbacks,
                     &err) < 0)
        return api_fail(c, &err);
    json_t *rep = report ? json_loads(report, 0, NULL) : NULL;
    json_t *act = action ? json_loads(action, 0, NULL) : NULL;
    const char *fbname = c->app->cfg->fallback_backend;
    http_reply_json(c->resp, 200,
                    json_pack("{s:I, s:I, s:o, s:o, s:s, s:o, s:I, s:o, s:I}", "live",
                              (json_int_t)live, "reconciled_at", (json_int_t)at,
                              "last_reconcile", rep ? rep : json_null(), "last_action",
                              act ? json_pack("{s:I, s:o}", "at", (json_int_t)action_at,
                                              "report", act)
                                  : json_null(),
                              "backend", c->app->cfg->backend, "fallback_backend",
                              fbname[0] ? json_string(fbname) : json_null(), "fallback_starts",
                              (json_int_t)fallbacks, "last_fallback_at",
                              nfb ? json_integer(fb[0].at) : json_null(), "warm_pool",
                              (json_int_t)warm));
}

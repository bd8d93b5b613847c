/* admin_page.c: /admin/containers, the HTML admin page, from the templates in
 * templates/ (compiled in; see template.h). Admins only, by CTFd's users.type.
 *
 * Every value reaches the HTML through tpl_set() (escaped); tpl_set_raw() is
 * used only to put a fragment this file rendered with the engine into the
 * layout. Actions are POST forms carrying the session's nonce (handed to the
 * app by the auth endpoint as CTFD_NONCE) in their action's query string, and
 * answer 303 back to the page. Must not: change state on GET, reflect request
 * text into a page except through the escaping engine, or log a flag. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "lifecycle.h"
#include "log.h"
#include "template.h"

void admin_page_error(struct ctx *c, const struct cc_error *err);

#define PAGE_PER_PAGE_DEFAULT 25
#define PAGE_PER_PAGE_MAX 100

/* ---- rendering ---------------------------------------------------------- */

static void set_stylesheets(struct tpl_ctx *t, arena_t *a, const char *list)
{
    char *copy = arena_strdup(a, list), *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        while (*s == ' ')
            s++;
        if (*s)
            tpl_set(tpl_add_item(t, "stylesheets"), "href", s);
    }
}

/* A fragment (a row, the pagination, the empty state) rendered by the engine
 * from our own template, for the page to insert with tpl_set_raw(). A failure
 * is a bug in a template: the page then answers 500 (see page()). */
static bool fragment_failed;

static const char *fragment(struct ctx *c, const char *name, const struct tpl_ctx *t)
{
    char err[256];
    strbuf_t sb;
    sb_init(&sb, c->arena);
    if (tpl_render(t, tpl_get(name), &sb, err, sizeof(err)) < 0) {
        log_error("admin page: template %s: %s", name, err);
        fragment_failed = true;
        return "";
    }
    return sb_str(&sb);
}

static void empty_state(struct ctx *c, struct tpl_ctx *t, bool empty, const char *heading,
                        const char *text)
{
    struct tpl_ctx *e = tpl_ctx_new(c->arena);
    tpl_set(e, "heading", heading);
    tpl_set(e, "text", text);
    tpl_set_raw(t, "empty_html", empty ? fragment(c, "empty.html", e) : "");
}

/* Render a content template, then the layout around it. */
static void page(struct ctx *c, int status, const char *heading, const char *name,
                 struct tpl_ctx *content)
{
    char err[256];
    strbuf_t body, html;
    sb_init(&body, c->arena);
    sb_init(&html, c->arena);
    struct tpl_ctx *layout = tpl_ctx_new(c->arena);
    set_stylesheets(layout, c->arena, c->app->cfg->ctfd_admin_stylesheets);
    tpl_set(layout, "title", heading);
    tpl_set(layout, "heading", heading);
    tpl_set(layout, "version", PACKAGE_VERSION);
    tpl_set_flag(layout, "team_mode", c->id.settings.team_mode);
    if (fragment_failed || tpl_render(content, tpl_get(name), &body, err, sizeof(err)) < 0 ||
        (tpl_set_raw(layout, "content", sb_str(&body)),
         tpl_render(layout, tpl_get("layout.html"), &html, err, sizeof(err)) < 0)) {
        if (!fragment_failed)
            log_error("admin page: template %s: %s", name, err);
        fragment_failed = false;
        status = 500;
        sb_init(&html, c->arena);
        sb_puts(&html, "<!DOCTYPE html><title>Error</title><p>The page could not be rendered.</p>");
    }
    http_reply_html(c->resp, status, html.data ? html.data : "", html.len);
}

void admin_page_error(struct ctx *c, const struct cc_error *err)
{
    struct tpl_ctx *t = tpl_ctx_new(c->arena);
    int status = err_status(err->code);
    tpl_set(t, "title", status == 404 ? "Not found" : status < 500 ? "Refused" : "Error");
    tpl_set(t, "message", err->code == ERR_INTERNAL ? err_default_message(err->code)
                                                      : err_message(err));
    tpl_set(t, "code", err_code_str(err->code));
    tpl_set_int(t, "status", status);
    c->resp->retry_after = err->retry_after;
    page(c, status, "Containers", "error.html", t);
}

static void error_page(struct ctx *c, const struct cc_error *err)
{
    admin_page_error(c, err);
}

static int admin(struct ctx *c, struct cc_error *err)
{
    if (identity_resolve(c->req, c->app->store, NEED_ADMIN, &c->id, err) < 0)
        return -1;
    return store_settings(c->app->store, c->arena, &c->id.settings, err);
}

static const char *utc(arena_t *a, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        return "";
    return arena_printf(a, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "07:13:20": the date is in the cell's title (events of one event day). */
static const char *clock_of(arena_t *a, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        return "";
    return arena_printf(a, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *duration(arena_t *a, int64_t s)
{
    if (s >= 3600)
        return arena_printf(a, "%" PRId64 "h %02" PRId64 "m", s / 3600, s % 3600 / 60);
    if (s >= 60)
        return arena_printf(a, "%" PRId64 "m %02" PRId64 "s", s / 60, s % 60);
    return arena_printf(a, "%" PRId64 "s", s);
}

static const char *account_href(arena_t *a, const char *kind, int64_t id)
{
    return arena_printf(a, "/admin/%s/%" PRId64, kind && strcmp(kind, "team") == 0 ? "teams" : "users",
                        id);
}

/* ---- the list ----------------------------------------------------------- */

struct list_query {
    struct instance_filter f;
    const char *sort;
};

static int list_query(struct ctx *c, struct list_query *q, struct cc_error *err)
{
    static const char *const keys[] = {"page",  "per_page", "challenge_id", "account_id",
                                       "state", "sort",     "done",         "error",
                                       "n",     NULL};
    memset(q, 0, sizeof(*q));
    if (http_query_only(c->req, keys, err) < 0 ||
        http_query_int(c->req, "page", 1, 1000000, 1, &q->f.page, err) < 0 ||
        http_query_int(c->req, "per_page", 1, PAGE_PER_PAGE_MAX, PAGE_PER_PAGE_DEFAULT,
                       &q->f.per_page, err) < 0 ||
        http_query_id(c->req, "challenge_id", false, &q->f.challenge_id, err) < 0 ||
        http_query_id(c->req, "account_id", false, &q->f.account_id, err) < 0)
        return -1;
    const char *st = http_query(c->req, "state");
    q->f.state = st && *st ? st : "live";
    if (strcmp(q->f.state, "live") != 0 && lifecycle_state_parse(q->f.state) < 0)
        return err_set(err, ERR_INVALID_FIELD, "'state' must be live or a container state.");
    const char *sort = http_query(c->req, "sort");
    q->sort = sort && *sort ? sort : "time_left";
    if (strcmp(q->sort, "time_left") != 0 && strcmp(q->sort, "-time_left") != 0)
        return err_set(err, ERR_INVALID_FIELD, "'sort' must be time_left or -time_left.");
    q->f.newest_deadline_first = q->sort[0] == '-';
    return 0;
}

/* The link to another page of the same listing. */
static const char *page_href(struct ctx *c, const char *path, const struct list_query *q,
                             int64_t page)
{
    strbuf_t sb;
    sb_init(&sb, c->arena);
    sb_printf(&sb, "%s?page=%" PRId64 "&per_page=%" PRId64, path, page, q->f.per_page);
    if (q->f.challenge_id)
        sb_printf(&sb, "&challenge_id=%" PRId64, q->f.challenge_id);
    if (q->f.account_id)
        sb_printf(&sb, "&account_id=%" PRId64, q->f.account_id);
    if (q->f.state && strcmp(q->f.state, "live") != 0)
        sb_printf(&sb, "&state=%s", q->f.state); /* validated: a state word */
    if (q->sort && q->sort[0] == '-')
        sb_puts(&sb, "&sort=-time_left");
    return sb_str(&sb);
}

static void add_page_link(struct tpl_ctx *t, const char *label, const char *href, bool current,
                          bool disabled)
{
    struct tpl_ctx *p = tpl_add_item(t, "pages");
    tpl_set(p, "label", label);
    tpl_set(p, "href", href);
    tpl_set_flag(p, "current", current);
    tpl_set_flag(p, "disabled", disabled);
}

/* Previous, a window of page numbers around the current one, next. */
static void pagination(struct ctx *c, struct tpl_ctx *t, const char *path,
                       const struct list_query *q, int64_t total, const char *noun)
{
    int64_t pages = (total + q->f.per_page - 1) / q->f.per_page, page = q->f.page;
    tpl_set_raw(t, "pagination_html", "");
    if (pages <= 1 && page == 1)
        return;
    struct tpl_ctx *p = tpl_ctx_new(c->arena);
    tpl_set(p, "noun", noun);
    tpl_set_int(p, "total", total);
    tpl_set_int(p, "page", page);
    tpl_set_int(p, "pages_total", pages);
    add_page_link(p, "Previous", page_href(c, path, q, page > 1 ? page - 1 : 1), false, page <= 1);
    int64_t from = page - 3 > 1 ? page - 3 : 1, to = page + 3 < pages ? page + 3 : pages;
    for (int64_t i = from; i <= to; i++)
        add_page_link(p, arena_printf(c->arena, "%" PRId64, i), page_href(c, path, q, i),
                      i == page, false);
    add_page_link(p, "Next", page_href(c, path, q, page < pages ? page + 1 : pages), false,
                  page >= pages);
    tpl_set_raw(t, "pagination_html", fragment(c, "pagination.html", p));
}

static void row(struct ctx *c, strbuf_t *rows, const struct instance *i)
{
    struct tpl_ctx *r = tpl_ctx_new(c->arena);
    const char *n = http_param(c->req, "CTFD_NONCE");
    tpl_set(r, "nonce", n ? n : "");
    int64_t left = lifecycle_seconds_left(i->deadline, c->now);
    tpl_set_int(r, "id", i->id);
    tpl_set(r, "account_href", account_href(c->arena, i->account_kind, i->account_id));
    tpl_set(r, "account_name", i->account_name && *i->account_name
                                   ? i->account_name
                                   : arena_printf(c->arena, "#%" PRId64, i->account_id));
    tpl_set_int(r, "challenge_id", i->challenge_id);
    tpl_set(r, "challenge_name", i->challenge_name && *i->challenge_name
                                     ? i->challenge_name
                                     : arena_printf(c->arena, "#%" PRId64, i->challenge_id));
    tpl_set(r, "engine_id", i->engine_id ? i->engine_id : "");
    tpl_set(r, "short_id", i->engine_id ? arena_strndup(c->arena, i->engine_id, 12) : "");
    tpl_set(r, "image", i->image ? i->image : "");
    tpl_set(r, "backend", i->backend ? i->backend : "");
    int64_t started = i->started_at ? i->started_at : i->created_at;
    tpl_set(r, "started", utc(c->arena, started));
    tpl_set(r, "started_time", clock_of(c->arena, started));
    tpl_set(r, "deadline", utc(c->arena, i->deadline));
    tpl_set(r, "deadline_time", clock_of(c->arena, i->deadline));
    tpl_set(r, "left", i->live ? duration(c->arena, left) : "0s");
    tpl_set(r, "left_class", i->live && left < 300 ? "cc-left-low" : "");
    tpl_set_int(r, "renewals", i->renewals);
    tpl_set_int(r, "max_renewals", ops_max_renewals(c->app->cfg, i));
    tpl_set(r, "state", i->state ? i->state : "");
    tpl_set_flag(r, "live", i->live);
    json_t *j = api_container_json(i, 0, c->now);
    json_t *ports = json_object_get(j, "ports");
    for (size_t k = 0; k < json_array_size(ports); k++)
        tpl_set(tpl_add_item(r, "ports"), "connection",
                json_string_value(json_object_get(json_array_get(ports, k), "connection")));
    json_decref(j);
    sb_puts(rows, fragment(c, "container_row.html", r));
}

/* After a 303, the page says what happened: fixed texts chosen by a key, and
 * error messages from the error table by code; no request text is shown. */
static void notice(struct ctx *c, struct tpl_ctx *t)
{
    static const struct {
        const char *key, *text;
    } done[] = {{"stopped", "Container stopped."},
                {"extended", "Container extended."},
                {"stopped_all", "Stopped every live container of the selection."}};
    const char *d = http_query(c->req, "done"), *e = http_query(c->req, "error");
    for (size_t i = 0; d && i < sizeof(done) / sizeof(done[0]); i++)
        if (strcmp(d, done[i].key) == 0) {
            struct tpl_ctx *n = tpl_add_item(t, "notice");
            tpl_set(n, "kind", "success");
            const char *count = http_query(c->req, "n");
            int64_t k;
            struct cc_error ignore;
            tpl_set(n, "text", count && http_valid_int("n", count, 0, 1000000, &k, &ignore) == 0
                                   ? arena_printf(c->arena, "%s (%" PRId64 ")", done[i].text, k)
                                   : done[i].text);
        }
    enum cc_err code = e ? err_from_str(e) : ERR__MAX;
    if (code != ERR__MAX && code != ERR_OK) {
        struct tpl_ctx *n = tpl_add_item(t, "notice");
        tpl_set(n, "kind", "danger");
        tpl_set(n, "text", err_default_message(code));
    }
}

static void filters(struct ctx *c, struct tpl_ctx *t, const struct list_query *q)
{
    static const char *const states[] = {"live",    "starting", "running",  "stopping", "stopped",
                                         "expired", "reverted", "failed",   "lost",     NULL};
    for (size_t i = 0; states[i]; i++) {
        struct tpl_ctx *s = tpl_add_item(t, "states");
        tpl_set(s, "value", states[i]);
        tpl_set_flag(s, "selected", strcmp(states[i], q->f.state) == 0);
    }
    tpl_set(t, "f_challenge",
            q->f.challenge_id ? arena_printf(c->arena, "%" PRId64, q->f.challenge_id) : "");
    tpl_set(t, "f_account",
            q->f.account_id ? arena_printf(c->arena, "%" PRId64, q->f.account_id) : "");
    tpl_set_flag(t, "sort_asc", !q->f.newest_deadline_first);
    tpl_set_flag(t, "sort_desc", q->f.newest_deadline_first);
    tpl_set_int(t, "per_page", q->f.per_page);
    if (q->f.challenge_id)
        tpl_set_int(tpl_add_item(t, "filter_challenge"), "challenge_id", q->f.challenge_id);
}

static int counts(struct ctx *c, struct tpl_ctx *t, struct cc_error *err)
{
    struct challenge_count *cc;
    size_t n;
    int64_t live = 0;
    if (store_live_by_challenge(c->app->store, c->arena, &cc, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct tpl_ctx *r = tpl_add_item(t, "counts");
        tpl_set_int(r, "challenge_id", cc[i].challenge_id);
        tpl_set(r, "challenge_name", *cc[i].challenge_name
                                         ? cc[i].challenge_name
                                         : arena_printf(c->arena, "#%" PRId64, cc[i].challenge_id));
        tpl_set_int(r, "live", cc[i].live);
    }
    if (store_count_live_total(c->app->store, &live, err) < 0)
        return -1;
    tpl_set_int(t, "live_total", live);
    if (c->app->cfg->max_containers > 0)
        tpl_set_int(tpl_add_item(t, "capacity"), "max", c->app->cfg->max_containers);
    return 0;
}

static const char *nonce(struct ctx *c)
{
    const char *n = http_param(c->req, "CTFD_NONCE");
    return n ? n : "";
}

void admin_page_list(struct ctx *c)
{
    struct cc_error err = {0};
    struct list_query q;
    struct instance *rows;
    size_t n;
    int64_t total;
    if (admin(c, &err) < 0 || list_query(c, &q, &err) < 0 ||
        store_list(c->app->store, c->arena, &q.f, &rows, &n, &total, &err) < 0)
        return error_page(c, &err);
    struct tpl_ctx *t = tpl_ctx_new(c->arena);
    if (counts(c, t, &err) < 0)
        return error_page(c, &err);
    tpl_set(t, "nonce", nonce(c));
    tpl_set(t, "account_word", c->id.settings.team_mode ? "Team" : "User");
    notice(c, t);
    filters(c, t, &q);
    strbuf_t html;
    sb_init(&html, c->arena);
    for (size_t i = 0; i < n; i++)
        row(c, &html, &rows[i]);
    tpl_set_raw(t, "rows_html", sb_str(&html));
    tpl_set_flag(t, "has_rows", n > 0);
    empty_state(c, t, n == 0, "No containers here",
                total > 0 ? "This page is past the last one."
                : strcmp(q.f.state, "live") == 0
                    ? "No team or user has a live container matching these filters."
                    : "No container matches these filters.");
    pagination(c, t, "/admin/containers", &q, total, "container(s)");
    page(c, 200, "Containers", "containers.html", t);
}

/* ---- events ------------------------------------------------------------- */

static const char *event_badge(const char *kind)
{
    if (strcmp(kind, "flag_share") == 0)
        return "badge-danger";
    if (strcmp(kind, "flag_reveal") == 0)
        return "badge-warning";
    return "badge-secondary";
}

static void event_row(struct ctx *c, struct tpl_ctx *t, const struct event *e)
{
    struct tpl_ctx *r = tpl_add_item(t, "rows");
    tpl_set(r, "at", utc(c->arena, e->at));
    tpl_set(r, "kind", e->kind);
    tpl_set(r, "badge", event_badge(e->kind));
    tpl_set(r, "detail", e->detail);
    if (e->actor_user_id) {
        struct tpl_ctx *a = tpl_add_item(r, "actor");
        tpl_set_int(a, "actor_id", e->actor_user_id);
        tpl_set(a, "actor_name", *e->actor_name ? e->actor_name
                                                : arena_printf(c->arena, "#%" PRId64,
                                                               e->actor_user_id));
    }
    if (e->account_kind) {
        struct tpl_ctx *a = tpl_add_item(r, "account");
        tpl_set(a, "account_href", account_href(c->arena, e->account_kind, e->account_id));
        tpl_set(a, "account_name", *e->account_name ? e->account_name
                                                    : arena_printf(c->arena, "#%" PRId64,
                                                                   e->account_id));
    }
    if (e->challenge_id) {
        struct tpl_ctx *a = tpl_add_item(r, "challenge");
        tpl_set_int(a, "challenge_id", e->challenge_id);
        tpl_set(a, "challenge_name", *e->challenge_name ? e->challenge_name
                                                        : arena_printf(c->arena, "#%" PRId64,
                                                                       e->challenge_id));
    }
    if (e->instance_id)
        tpl_set_int(tpl_add_item(r, "instance"), "instance_id", e->instance_id);
}

void admin_page_events(struct ctx *c)
{
    static const char *const keys[] = {"page", "per_page", "kind", NULL};
    static const char *const kinds[][2] = {
        {"", "every kind"},          {"flag_share", "flag sharing"},
        {"flag_reveal", "flag reveals"}, {"admin_stop", "admin stops"},
        {"admin_stop_all", "admin stop-all"}, {"admin_extend", "admin extends"},
        {"fallback_start", "fallback starts"}};
    struct cc_error err = {0};
    struct list_query q = {.f = {.state = "live"}};
    if (admin(c, &err) < 0 || http_query_only(c->req, keys, &err) < 0 ||
        http_query_int(c->req, "page", 1, 1000000, 1, &q.f.page, &err) < 0 ||
        http_query_int(c->req, "per_page", 1, PAGE_PER_PAGE_MAX, 50, &q.f.per_page, &err) < 0)
        return error_page(c, &err);
    const char *kind = http_query(c->req, "kind");
    bool known = kind == NULL;
    struct tpl_ctx *t = tpl_ctx_new(c->arena);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct tpl_ctx *k = tpl_add_item(t, "kinds");
        bool sel = kind && strcmp(kind, kinds[i][0]) == 0;
        known |= sel;
        tpl_set(k, "value", kinds[i][0]);
        tpl_set(k, "label", kinds[i][1]);
        tpl_set_flag(k, "selected", sel);
    }
    if (!known)
        return error_page(c, (err_set(&err, ERR_INVALID_FIELD, "Unknown event kind."), &err));
    struct event *rows;
    size_t n;
    int64_t total;
    if (store_events(c->app->store, c->arena, kind, q.f.page, q.f.per_page, &rows, &n, &total,
                     &err) < 0)
        return error_page(c, &err);
    tpl_set(t, "account_word", c->id.settings.team_mode ? "Team" : "User");
    for (size_t i = 0; i < n; i++)
        event_row(c, t, &rows[i]);
    tpl_set_flag(t, "has_rows", n > 0);
    empty_state(c, t, n == 0, total > 0 ? "No events here" : "No events yet",
                total > 0 ? "This page is past the last one."
                          : "Flag sharing and admin actions appear here, newest first.");
    pagination(c, t, "/admin/containers/events", &q, total, "event(s)");
    page(c, 200, "Container events", "events.html", t);
}

/* ---- actions ------------------------------------------------------------ */

/* Equal strings, compared in time independent of where they differ. */
static bool same_secret(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b))
        return false;
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* An action's preconditions: an admin, the session's own nonce (handed to us
 * by the auth endpoint) in the query string, and a well-formed form. */
static int action(struct ctx *c, struct http_kv *form, size_t *nform, struct cc_error *err)
{
    static const char *const keys[] = {"nonce", NULL};
    if (admin(c, err) < 0 || http_query_only(c->req, keys, err) < 0)
        return -1;
    const char *sent = http_query(c->req, "nonce"), *mine = nonce(c);
    if (sent == NULL || *mine == '\0' || !same_secret(sent, mine))
        return err_set(err, ERR_NONCE_INVALID, NULL);
    return http_body_form(c->req, form, HTTP_MAX_PARAMS, nform, err);
}

static int form_id(const struct http_kv *form, size_t n, int64_t *id, struct cc_error *err)
{
    const char *v = http_kv_get(form, n, "id");
    if (v == NULL)
        return err_set(err, ERR_INVALID_FIELD, "'id' is required.");
    return http_valid_id("id", v, id, err);
}

static void back(struct ctx *c, const char *query)
{
    http_redirect(c->resp, arena_printf(c->arena, "/admin/containers?%s", query));
}

static void back_error(struct ctx *c, const struct cc_error *err)
{
    /* A stale action on a container that is gone is a notice on the page, not
     * an error page: the admin is back where they were. */
    back(c, arena_printf(c->arena, "error=%s", err_code_str(err->code)));
}

static void audit(struct ctx *c, const char *kind, const struct instance *i, const char *detail)
{
    ops_audit(c->app, kind, c->id.user.id, i, detail, c->now);
}

void admin_page_extend(struct ctx *c)
{
    struct cc_error err = {0};
    struct http_kv form[HTTP_MAX_PARAMS];
    size_t nform;
    int64_t id;
    struct instance inst;
    if (action(c, form, &nform, &err) < 0)
        return error_page(c, &err);
    if (form_id(form, nform, &id, &err) < 0 ||
        ops_admin_extend(c->app, c->arena, id, c->id.user.id, "from the admin page", c->now,
                         &inst, &err) < 0)
        return back_error(c, &err);
    back(c, "done=extended");
}

void admin_page_stop(struct ctx *c)
{
    struct cc_error err = {0};
    struct http_kv form[HTTP_MAX_PARAMS];
    size_t nform;
    int64_t id;
    struct instance inst;
    if (action(c, form, &nform, &err) < 0)
        return error_page(c, &err);
    if (form_id(form, nform, &id, &err) < 0 ||
        ops_get_live(c->app, c->arena, id, &inst, &err) < 0 ||
        ops_stop(c->app, c->arena, &inst, "stopped", "stopped by an admin", c->now, &err) < 0)
        return back_error(c, &err);
    audit(c, "admin_stop", &inst, "from the admin page");
    back(c, "done=stopped");
}

/* GET: the confirmation step, naming how many containers would stop. */
void admin_page_stop_all_confirm(struct ctx *c)
{
    static const char *const keys[] = {"challenge_id", NULL};
    struct cc_error err = {0};
    struct instance_filter f = {.page = 1, .per_page = 1, .state = "live"};
    struct instance *rows;
    size_t n;
    int64_t total;
    if (admin(c, &err) < 0 || http_query_only(c->req, keys, &err) < 0 ||
        http_query_id(c->req, "challenge_id", false, &f.challenge_id, &err) < 0 ||
        store_list(c->app->store, c->arena, &f, &rows, &n, &total, &err) < 0)
        return error_page(c, &err);
    struct tpl_ctx *t = tpl_ctx_new(c->arena);
    tpl_set_int(t, "count", total);
    tpl_set(t, "nonce", nonce(c));
    if (f.challenge_id) {
        struct tpl_ctx *fc = tpl_add_item(t, "filter_challenge");
        struct ctfd_challenge ch;
        bool found;
        tpl_set_int(fc, "challenge_id", f.challenge_id);
        tpl_set(fc, "challenge_name",
                store_challenge(c->app->store, c->arena, f.challenge_id, &ch, &found, &err) == 0 &&
                        found
                    ? ch.name
                    : arena_printf(c->arena, "#%" PRId64, f.challenge_id));
    } else {
        tpl_set_flag(t, "all_challenges", true);
    }
    page(c, 200, "Stop all containers", "stop_all.html", t);
}

void admin_page_stop_all(struct ctx *c)
{
    struct cc_error err = {0};
    struct http_kv form[HTTP_MAX_PARAMS];
    size_t nform;
    struct instance_filter f = {.page = 1, .per_page = 100, .state = "live"};
    if (action(c, form, &nform, &err) < 0)
        return error_page(c, &err);
    const char *confirm = http_kv_get(form, nform, "confirm");
    const char *cid = http_kv_get(form, nform, "challenge_id");
    if (confirm == NULL || strcmp(confirm, "all") != 0)
        return back_error(c, (err_set(&err, ERR_CONFIRM_REQUIRED, NULL), &err));
    if (cid && http_valid_id("challenge_id", cid, &f.challenge_id, &err) < 0)
        return back_error(c, &err);
    int64_t stopped, failed;
    ops_stop_all(c->app, c->arena, &f, c->now, &stopped, &failed);
    audit(c, "admin_stop_all", NULL,
          arena_printf(c->arena, "stopped %" PRId64 ", failed %" PRId64 "%s", stopped, failed,
                       f.challenge_id ? arena_printf(c->arena, ", challenge %" PRId64,
                                                     f.challenge_id)
                                      : ""));
    back(c, arena_printf(c->arena, "done=stopped_all&n=%" PRId64, stopped));
}

/* The reveal answers with the flag itself (200, not cached) instead of a
 * redirect: showing a secret after a 303 would mean storing it, or a GET
 * that changes state. Each reveal writes its own audit event. */
void admin_page_flag(struct ctx *c)
{
    struct cc_error err = {0};
    struct http_kv form[HTTP_MAX_PARAMS];
    size_t nform;
    int64_t id;
    struct instance inst;
    char flag[FLAG_MAX_LEN + 1];
    if (action(c, form, &nform, &err) < 0)
        return error_page(c, &err);
    if (form_id(form, nform, &id, &err) < 0)
        return back_error(c, &err);
    if (ops_reveal_flag(c->app, c->arena, id, &inst, flag, sizeof(flag), &err) < 0)
        return err.code == ERR_CONTAINER_NOT_FOUND ? back_error(c, &err) : error_page(c, &err);
    audit(c, "flag_reveal", &inst, "from the admin page");
    struct tpl_ctx *t = tpl_ctx_new(c->arena);
    tpl_set_int(t, "id", inst.id);
    tpl_set(t, "account_name", inst.account_name ? inst.account_name : "");
    tpl_set(t, "challenge_name", inst.challenge_name ? inst.challenge_name : "");
    tpl_set(t, "flag", flag);
    flag_wipe(flag, sizeof(flag));
    page(c, 200, "Flag", "flag.html", t);
}

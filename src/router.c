/* router.c: the route table (DESIGN.md's routes). Paths match exactly; the
 * only variable part is a container id, parsed with the bounded validator.
 * Must not: let a GET reach a handler that changes state. */
#include "router.h"

#include <string.h>

struct route {
    const char *prefix;  /* whole path, or the part before the id */
    const char *suffix;  /* NULL: no id; "" or "/flag": after the id */
    handler_fn on[M_OTHER];
    const char *allowed;
};

static const struct route routes[] = {
    {"/api/v1/container", NULL,
     {[M_GET] = api_container_status, [M_POST] = api_container_start,
      [M_PATCH] = api_container_extend, [M_DELETE] = api_container_stop},
     "GET, POST, PATCH, DELETE"},
    {"/api/v1/container/extend", NULL, {[M_POST] = api_container_extend}, "POST"},
    {"/api/v1/admin/containers", NULL, {[M_GET] = api_admin_list, [M_DELETE] = api_admin_stop_all},
     "GET, DELETE"},
    {"/api/v1/admin/containers/status", NULL, {[M_GET] = api_admin_status}, "GET"},
    {"/api/v1/admin/containers/", "", {[M_PATCH] = api_admin_extend, [M_DELETE] = api_admin_stop},
     "PATCH, DELETE"},
    {"/api/v1/admin/containers/", "/flag", {[M_GET] = api_admin_flag}, "GET"},
    {"/admin/containers", NULL, {[M_GET] = admin_page_list}, "GET"},
    {"/admin/containers/events", NULL, {[M_GET] = admin_page_events}, "GET"},
    {"/admin/containers/stop-all", NULL,
     {[M_GET] = admin_page_stop_all_confirm, [M_POST] = admin_page_stop_all}, "GET, POST"},
    {"/admin/containers/extend", NULL, {[M_POST] = admin_page_extend}, "POST"},
    {"/admin/containers/stop", NULL, {[M_POST] = admin_page_stop}, "POST"},
    {"/admin/containers/flag", NULL, {[M_POST] = admin_page_flag}, "POST"},
    /* benchmarks: answered without identity; only a bench nginx location routes it */
    {"/_ctfd_containers/ping", NULL, {[M_GET] = api_ping}, "GET"},
};

/* Under /admin/containers errors are pages; elsewhere JSON. */
static void fail(struct ctx *c, const struct cc_error *err)
{
    if (strncmp(c->req->path, "/admin/containers", 17) == 0)
        admin_page_error(c, err);
    else
        api_fail(c, err);
}

/* Does path match the route? Sets *id for routes with an id. */
static bool matches(const struct route *r, const char *path, int64_t *id)
{
    size_t n = strlen(r->prefix);
    if (r->suffix == NULL)
        return strcmp(path, r->prefix) == 0;
    if (strncmp(path, r->prefix, n) != 0)
        return false;
    const char *p = path + n, *q = p;
    while (*q >= '0' && *q <= '9')
        q++;
    if (q == p || q - p > 10 || strcmp(q, r->suffix) != 0)
        return false;
    char digits[12];
    memcpy(digits, p, (size_t)(q - p));
    digits[q - p] = '\0';
    struct cc_error ignore;
    return http_valid_id("id", digits, id, &ignore) == 0;
}

void router_dispatch(struct ctx *c)
{
    struct cc_error err = {0};
    /* nginx's route lookup is a subrequest carrying the original method. */
    if (strcmp(c->req->path, "/_cc/route") == 0)
        return api_route_lookup(c);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *r = &routes[i];
        if (!matches(r, c->req->path, &c->path_id))
            continue;
        handler_fn h = c->req->method < M_OTHER ? r->on[c->req->method] : NULL;
        if (h == NULL) {
            err_set(&err, ERR_METHOD_NOT_ALLOWED, "Allowed here: %s.", r->allowed);
            return fail(c, &err);
        }
        return h(c);
    }
    err_set(&err, ERR_NOT_FOUND, NULL);
    fail(c, &err);
}

/* api_route.c: the route lookup nginx makes (auth_request) for every request
 * to NAME.route_domain: which upstream serves this Host, if any.
 *
 * Step "lookup" answers nginx's auth_request, which passes on only 2xx, 401
 * and 403: 200 with X-CC-Upstream (host:port to proxy to), 401 when the
 * challenge wants its owner only, 403 when no running container has the
 * name. Step "owner" is a plain FastCGI request nginx makes after CTFd's
 * auth endpoint named the player (CTFD_USER_ID): 200 with X-Accel-Redirect
 * to nginx's internal proxy location when the player's account owns the
 * container (or is an admin), 403 when not. nginx turns 401/403 into pages
 * (nginx/ctfd-containers-routes.conf).
 * Must not: answer for a container that is not running, trust anything but
 * the parameters nginx sets, or log a rejected host verbatim. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "route.h"

/* The host port serving container port `want` (0: the first) of protocol p. */
static int pick_port(const char *stored, enum backend_proto p, int want)
{
    struct backend_port ports[BACKEND_MAX_PORTS];
    size_t n = 0;
    if (ops_parse_stored_ports(stored, ports, BACKEND_MAX_PORTS, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ports[i].proto == p && (want == 0 || ports[i].internal == want))
            return ports[i].host_port;
    return 0;
}

static void answer(struct ctx *c, int status, enum cc_err code)
{
    struct cc_error err;
    err_set(&err, code, NULL);
    http_reply_error(c->resp, &err);
    c->resp->status = status; /* nginx's auth_request reads only 401 and 403 */
}

/* The owner step: the caller (CTFD_USER_ID, from CTFd's answer) must be the
 * container's account, or an admin. */
static bool owner_ok(struct ctx *c, const struct route_target *t)
{
    struct cc_error err = {0};
    if (identity_resolve(c->req, c->app->store, NEED_PLAYER, &c->id, &err) < 0)
        return false;
    if (c->id.user.admin)
        return true;
    return strcmp(c->id.account_kind, t->account_kind) == 0 && c->id.account_id == t->account_id;
}

void api_route_lookup(struct ctx *c)
{
    const struct cc_config *cfg = c->app->cfg;
    const char *host = http_param(c->req, "CC_ROUTE_HOST");
    const char *step = http_param(c->req, "CC_ROUTE_STEP");
    char name[ROUTE_NAME_MAX + 1];
    int port = 0;
    if (cfg->route_domain[0] == '\0' || host == NULL ||
        route_parse_host(host, cfg->route_domain, name, sizeof(name), &port) < 0)
        return answer(c, 403, ERR_ROUTE_NOT_FOUND);
    struct route_target t;
    bool found;
    struct cc_error err = {0};
    if (store_route_lookup(c->app->store, c->arena, name, &t, &found, &err) < 0)
        return api_fail(c, &err); /* a 5xx: nginx answers its own 500 page */
    int host_port = found ? pick_port(t.ports, PROTO_HTTP, port) : 0;
    if (host_port == 0)
        return answer(c, 403, ERR_ROUTE_NOT_FOUND);
    bool owner_step = step != NULL && strcmp(step, "owner") == 0;
    if (t.owner_only && !owner_step)
        return answer(c, 401, ERR_NOT_AUTHENTICATED);
    if (t.owner_only && !owner_ok(c, &t))
        return answer(c, 403, ERR_ROUTE_NOT_FOUND);
    const char *up = arena_printf(c->arena, "%s:%d", cfg->route_upstream_host, host_port);
    if (owner_step) /* a FastCGI answer, not a subrequest: nginx redirects to its proxy */
        c->resp->accel = arena_printf(c->arena, "/_cc_owned/%s", up);
    else
        c->resp->upstream = up;
    http_reply_json(c->resp, 200, json_object());
}

/* ---- connection info (the player's container object) ---------------------- */

/* NAME.domain, or NAME-PORT.domain for any port but the first of its protocol. */
static const char *route_host(arena_t *a, const char *route, const char *domain, int internal,
                              bool first)
{
    return first ? arena_printf(a, "%s.%s", route, domain)
                 : arena_printf(a, "%s-%d.%s", route, internal, domain);
}

static void http_entry(arena_t *a, const struct cc_config *cfg, json_t *e, const char *host)
{
    bool dflt = cfg->route_public_port == 0 ||
                (cfg->route_public_port == 443 && strcmp(cfg->route_scheme, "https") == 0) ||
                (cfg->route_public_port == 80 && strcmp(cfg->route_scheme, "http") == 0);
    const char *url = dflt ? arena_printf(a, "%s://%s/", cfg->route_scheme, host)
                           : arena_printf(a, "%s://%s:%lld/", cfg->route_scheme, host,
                                          (long long)cfg->route_public_port);
    json_object_set_new(e, "url", json_string(url));
    json_object_set_new(e, "connection", json_string(url));
}

static void tcp_entry(arena_t *a, const struct cc_config *cfg, json_t *e, const char *sni,
                      const char *connect)
{
    const char *host = json_string_value(json_object_get(e, "host"));
    json_int_t port = json_integer_value(json_object_get(e, "host_port"));
    const char *nc = arena_printf(a, "nc %s %lld", host ? host : "", (long long)port);
    json_object_set_new(e, "nc", json_string(nc));
    const char *line = nc;
    if (sni != NULL) {
        long long tp = (long long)cfg->tls_port;
        json_object_set_new(e, "sni", json_string(sni));
        json_object_set_new(e, "tls_port", json_integer(cfg->tls_port));
        json_object_set_new(e, "openssl",
                            json_string(arena_printf(a,
                                                     "openssl s_client -quiet -connect %s:%lld "
                                                     "-servername %s",
                                                     sni, tp, sni)));
        if (connect && strcmp(connect, "openssl") == 0)
            line = json_string_value(json_object_get(e, "openssl"));
        else if (connect && strcmp(connect, "pwntools") == 0)
            line = arena_printf(a, "remote(\"%s\", %lld, ssl=True, sni=\"%s\")", sni, tp, sni);
    } else if (connect && strcmp(connect, "pwntools") == 0) {
        line = arena_printf(a, "remote(\"%s\", %lld)", host ? host : "", (long long)port);
    }
    json_object_set_new(e, "connect", json_string(connect ? connect : "nc"));
    json_object_set_new(e, "connection", json_string(line));
}

void api_route_connection(arena_t *a, const struct cc_config *cfg, json_t *obj, const char *route,
                          const char *connect)
{
    json_t *ports = json_object_get(obj, "ports");
    bool routed = route != NULL && route[0] != '\0' && cfg->route_domain[0] != '\0';
    bool first_http = true, first_tcp = true;
    size_t i;
    json_t *e;
    if (routed)
        json_object_set_new(obj, "route", json_string(route));
    json_array_foreach(ports, i, e)
    {
        const char *proto = json_string_value(json_object_get(e, "protocol"));
        int internal = (int)json_integer_value(json_object_get(e, "port"));
        bool http = proto != NULL && strcmp(proto, "http") == 0;
        bool *first = http ? &first_http : &first_tcp;
        const char *name =
            routed ? route_host(a, route, cfg->route_domain, internal, *first) : NULL;
        *first = false;
        if (http && name != NULL)
            http_entry(a, cfg, e, name);
        else if (!http)
            tcp_entry(a, cfg, e, cfg->tls_port > 0 ? name : NULL, connect);
    }
}

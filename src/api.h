/* api.h: what a handler gets, and the handlers the router table names.
 *
 * Handlers call store_* and backend->ops only: never libcurl or MariaDB. */
#ifndef CC_API_H
#define CC_API_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "flag.h"
#include "http.h"
#include "identity.h"
#include "store.h"

#include "ops.h"

/* Per request. */
struct ctx {
    struct app *app;
    struct http_req *req;
    struct http_resp *resp;
    arena_t *arena;
    struct identity id;
    int64_t path_id;   /* the ID in /api/v1/admin/containers/ID */
    int64_t now;
};

typedef void (*handler_fn)(struct ctx *c);

void api_container_status(struct ctx *c);
void api_container_start(struct ctx *c);
void api_container_extend(struct ctx *c);
void api_container_stop(struct ctx *c);
void api_admin_list(struct ctx *c);
void api_admin_extend(struct ctx *c);
void api_admin_stop(struct ctx *c);
void api_admin_stop_all(struct ctx *c);
void api_admin_flag(struct ctx *c);
void api_admin_status(struct ctx *c);
/* nginx's route lookup for NAME.route_domain (api_route.c). */
void api_route_lookup(struct ctx *c);
/* Add each port's ways in (url, nc, sni, openssl, the challenge's `connect`
 * style as `connection`) to a container object (api_route.c). */
void api_route_connection(arena_t *a, const struct cc_config *cfg, json_t *obj, const char *route,
                          const char *connect);
/* The HTML admin page (admin_page.c). */
void admin_page_list(struct ctx *c);
void admin_page_events(struct ctx *c);
void admin_page_stop_all_confirm(struct ctx *c);
void admin_page_stop_all(struct ctx *c);
void admin_page_extend(struct ctx *c);
void admin_page_stop(struct ctx *c);
void admin_page_flag(struct ctx *c);
/* An error as an HTML page in the admin layout (for the router's 404/405). */
void admin_page_error(struct ctx *c, const struct cc_error *err);

/* GET /_ctfd_containers/ping: 200 and no work, no identity (api_container.c). The
 * shipped nginx files do not route it; benchmarks measure the FastCGI floor with it. */
void api_ping(struct ctx *c);

/* Shared by both APIs (api_container.c): a container as JSON. */
json_t *api_container_json(const struct instance *inst, int64_t max_renewals, int64_t now);
void api_fail(struct ctx *c, const struct cc_error *err);

#endif

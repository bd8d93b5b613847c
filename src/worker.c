/* worker.c: FCGX_Accept_r loop -> request -> router -> response; nothing else.
 *
 * One arena per request, reset after it; one MariaDB connection and one
 * backend (curl handle) per process, opened after fork. SIGTERM lets the
 * request in flight finish, then the loop ends. */
#include "worker.h"

#include <fcgiapp.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "child.h"
#include "log.h"
#include "router.h"

static volatile sig_atomic_t worker_stop;

static void on_term(int sig)
{
    (void)sig;
    worker_stop = 1;
    FCGX_ShutdownPending();
}

static long read_body(void *ctx, char *buf, size_t n)
{
    return FCGX_GetStr(buf, (int)(n > 65536 ? 65536 : n), ((FCGX_Request *)ctx)->in);
}

static void put(FCGX_Request *rq, const char *s, size_t n)
{
    if (n)
        FCGX_PutStr(s, (int)n, rq->out);
}

static void send_response(FCGX_Request *rq, struct http_resp *w)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "Status: %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     /* the admin page's forms must not be framed (clickjacking) */
                     "X-Frame-Options: DENY\r\nReferrer-Policy: same-origin\r\n",
                     http_status_line(w->status), w->content_type);
    if (w->location && n < (int)sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Location: %s\r\n", w->location);
    if (w->retry_after > 0 && n < (int)sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Retry-After: %d\r\n", w->retry_after);
    if (w->upstream && n < (int)sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "X-CC-Upstream: %s\r\n", w->upstream);
    if (w->accel && n < (int)sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "X-Accel-Redirect: %s\r\n", w->accel);
    if (n < (int)sizeof(head))
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    put(rq, head, n < (int)sizeof(head) ? (size_t)n : 0);
    put(rq, w->body.data ? w->body.data : "", w->body.len);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void handle(struct app *app, FCGX_Request *rq, arena_t *arena)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct http_req req;
    struct http_resp resp;
    http_req_init(&req, arena, rq->envp, read_body, rq, (size_t)app->cfg->max_body_bytes);
    http_resp_init(&resp, arena);
    struct ctx c = {.app = app, .req = &req, .resp = &resp, .arena = arena, .now = time(NULL)};
#ifdef CC_TEST_FAULTS
    if (strcmp(req.path, "/api/v1/container/test-crash") == 0)
        raise(SIGSEGV); /* test builds only: a worker that faults mid-request */
#endif
    router_dispatch(&c);
    send_response(rq, &resp);
    /* The path only: a query or body could carry something private. nginx's
     * route lookups (one per request to a container's site) only at debug. */
    log_msg(strcmp(req.path, "/_cc/route") == 0 ? LOG_DEBUG : LOG_INFO, "%s %s %d %.1fms user=%s",
            req.method_str ? req.method_str : "-", req.path, resp.status, ms_since(&t0),
            http_param(&req, "CTFD_USER_ID") ? http_param(&req, "CTFD_USER_ID") : "-");
}

int worker_run(const struct cc_config *cfg, int listen_fd, const struct flag_keys *keys)
{
    log_set_role("worker");
    child_signals(on_term);
    struct app app;
    if (child_open(&app, cfg, keys, "worker") < 0)
        return 1;
    FCGX_Request rq;
    FCGX_InitRequest(&rq, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
    arena_t *arena = arena_new(64 * 1024);
    while (!worker_stop && FCGX_Accept_r(&rq) >= 0) {
        handle(&app, &rq, arena);
        FCGX_Finish_r(&rq);
        arena_reset(arena);
    }
    FCGX_Free(&rq, 0);
    arena_free(arena);
    child_close(&app);
    return 0;
}

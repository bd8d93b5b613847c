/* backend.c: the table from a backend name to its implementation, the engine
 * object name, and the readiness probe every backend shares.
 *
 * It must not know how any engine works (that is backend_*.c) and must not
 * sleep in steps longer than 20 ms: the probe uses nonblocking sockets and
 * poll, and its only traffic is one "GET /" or a bare connect. */
#include "backend.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

#define PROBE_RETRY_MS 20       /* between attempts (docker-proxy drops for ~20 ms) */
#define PROBE_TCP_QUIET_MS 150  /* an open, silent TCP connection this long is ready */
#define PROBE_CONNECT_MAX_MS 1000 /* one connect attempt */
#define PROBE_REPLY_MAX_MS 5000   /* one wait for an HTTP reply on an open connection */

static const struct {
    const char *name;
    const struct backend_ops *ops; /* NULL: named but not built yet */
} backend_table[] = {
    {"docker", &backend_docker_ops},
    {"swarm", &backend_swarm_ops},
    {"whale", &backend_whale_ops},
};
#define BACKEND_NTABLE (sizeof(backend_table) / sizeof(backend_table[0]))

static int backend_index(const char *name)
{
    for (size_t i = 0; i < BACKEND_NTABLE; i++)
        if (strcmp(backend_table[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int backend_lookup(const char *name, const struct backend_ops **ops, struct cc_error *err)
{
    for (size_t i = 0; i < sizeof(backend_table) / sizeof(backend_table[0]); i++) {
        if (strcmp(backend_table[i].name, name) != 0)
            continue;
        *ops = backend_table[i].ops;
        if (*ops == NULL)
            return err_set(err, ERR_INTERNAL, "backend '%s' is not built yet", name);
        return 0;
    }
    return err_set(err, ERR_INTERNAL, "unknown backend '%.64s' (docker, swarm or whale)", name);
}

struct backend *backend_open(const char *name, const struct cc_config *cfg,
                             struct cc_error *err)
{
    const struct backend_ops *ops = NULL;
    if (name == NULL)
        name = cfg->backend != NULL ? cfg->backend : "docker";
    if (backend_lookup(name, &ops, err) < 0)
        return NULL;
    struct backend *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        err_set(err, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    b->ops = ops;
    b->cfg = cfg;
    b->store = NULL;
    if (ops->open != NULL && ops->open(b, err) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

void backend_close(struct backend *b)
{
    if (b == NULL)
        return;
    if (b->ops->destroy != NULL)
        b->ops->destroy(b);
    free(b);
}

/* ---- the set of backends one process uses --------------------------------- */

bool backend_known(const char *name)
{
    return name != NULL && backend_index(name) >= 0;
}

bool backend_built(const char *name)
{
    int i = name != NULL ? backend_index(name) : -1;
    return i >= 0 && backend_table[i].ops != NULL;
}

bool backend_chooses_ports(const char *name)
{
    int i = name != NULL ? backend_index(name) : -1;
    return i >= 0 && backend_table[i].ops != NULL && backend_table[i].ops->chooses_ports;
}

void backend_set_init(struct backend_set *set, const struct cc_config *cfg, struct store *store)
{
    memset(set, 0, sizeof(*set));
    set->cfg = cfg;
    set->store = store;
}

struct backend *backend_get(struct backend_set *set, const char *name, struct cc_error *err)
{
    if (name == NULL || name[0] == '\0')
        name = set->cfg->backend;
    int i = backend_index(name);
    if (i < 0 || i >= BACKEND_SET_MAX) {
        err_set(err, ERR_INTERNAL, "unknown backend '%.64s' (docker, swarm or whale)", name);
        return NULL;
    }
    if (set->open[i] == NULL) {
        set->open[i] = backend_open(name, set->cfg, err);
        if (set->open[i] != NULL)
            set->open[i]->store = set->store;
    }
    return set->open[i];
}

void backend_set_close(struct backend_set *set)
{
    for (size_t i = 0; i < BACKEND_SET_MAX; i++) {
        backend_close(set->open[i]);
        set->open[i] = NULL;
    }
}

/* ---- readiness probe ---------------------------------------------------- */

static int64_t backend_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the absolute time `until`: poll's revents, 0 on timeout. */
static short backend_poll_until(int fd, short events, int64_t until)
{
    for (;;) {
        int64_t left = until - backend_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return p.revents;
        if (r == 0 || errno != EINTR)
            return r == 0 ? 0 : POLLERR;
    }
}

/* 1 connected, 0 not (refused, reset, timed out). */
static int backend_probe_connect(int fd, const struct addrinfo *ai, int64_t until)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 1;
    if (errno != EINPROGRESS)
        return 0;
    if (!(backend_poll_until(fd, POLLOUT, until) & (POLLOUT | POLLERR | POLLHUP)))
        return 0;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0)
        return 0;
    return 1;
}

/* 1 when at least one byte arrives before `until`; 0 on close, reset or timeout. */
static int backend_probe_read(int fd, int64_t until)
{
    short ev = backend_poll_until(fd, POLLIN, until);
    if (ev == 0)
        return 0;
    char c;
    return recv(fd, &c, 1, 0) == 1 ? 1 : 0;
}

static int backend_probe_http(int fd, int64_t deadline)
{
    static const char req[] = "GET / HTTP/1.0\r\nHost: ready\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
        return 0;
    int64_t until = backend_now_ms() + PROBE_REPLY_MAX_MS;
    return backend_probe_read(fd, until < deadline ? until : deadline);
}

/* Ready on a byte, or when the connection stays open and silent for 150 ms. */
static int backend_probe_tcp(int fd, int64_t deadline)
{
    int64_t quiet_end = backend_now_ms() + PROBE_TCP_QUIET_MS;
    if (quiet_end > deadline)
        return 0; /* not enough time left to tell */
    short ev = backend_poll_until(fd, POLLIN, quiet_end);
    if (ev == 0)
        return 1;
    char c;
    return recv(fd, &c, 1, 0) == 1 ? 1 : 0;
}

/* One attempt: 1 ready, 0 not yet, -1 no socket. */
static int backend_probe_once(const struct addrinfo *ai, enum backend_proto proto,
                              int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    int64_t until = backend_now_ms() + PROBE_CONNECT_MAX_MS;
    int r = backend_probe_connect(fd, ai, until < deadline ? until : deadline);
    if (r == 1)
        r = proto == PROTO_HTTP ? backend_probe_http(fd, deadline)
                                : backend_probe_tcp(fd, deadline);
    close(fd);
    return r;
}

static int backend_resolve(const char *host, int port, struct addrinfo **res,
                           struct cc_error *err)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    if (port < 1 || port > 65535 || getaddrinfo(host, service, &hints, res) != 0)
        return err_set(err, ERR_INTERNAL, "readiness probe cannot resolve the engine host");
    return 0;
}

int backend_wait_ready(const char *host, int port, enum backend_proto proto, int timeout_ms,
                       struct cc_error *err)
{
    struct addrinfo *res = NULL;
    if (backend_resolve(host, port, &res, err) < 0)
        return -1;
    int64_t deadline = backend_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int r = 0;
    for (;;) {
        int64_t started = backend_now_ms();
        r = backend_probe_once(res, proto, deadline);
        if (r != 0 || started >= deadline)
            break;
        int64_t next = started + PROBE_RETRY_MS;
        int64_t wait = (next < deadline ? next : deadline) - backend_now_ms();
        if (wait > 0)
            poll(NULL, 0, (int)wait);
        if (backend_now_ms() >= deadline)
            break;
    }
    freeaddrinfo(res);
    if (r == 1)
        return 0;
    if (r < 0)
        return err_set(err, ERR_INTERNAL, "readiness probe cannot open a socket");
    return err_set(err, ERR_START_FAILED, "port %d did not answer within %d ms", port,
                   timeout_ms);
}

/* ---- what every engine backend puts on its objects ---- */

static void label_int(json_t *labels, const char *key, int64_t value)
{
    char name[64], text[24];
    snprintf(name, sizeof(name), "ctfd-containers.%s", key);
    snprintf(text, sizeof(text), "%" PRId64, value);
    json_object_set_new(labels, name, json_string(text));
}

json_t *backend_labels(const struct cc_config *cfg, const struct backend_spec *spec)
{
    json_t *labels = json_object();
    json_object_set_new(labels, "ctfd-containers.site", json_string(cfg->site));
    label_int(labels, "instance", spec->instance_id);
    label_int(labels, "account", spec->account_id);
    label_int(labels, "challenge", spec->challenge_id);
    label_int(labels, "expires", spec->expires);
    json_object_set_new(labels, "ctfd-containers.managed", json_string("1"));
    return labels;
}

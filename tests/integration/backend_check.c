/* backend_check.c: the backend contract suite, as TAP: the same cases run
 * against each backend on a real engine. `backend_check [docker|swarm]`
 * (default docker). It starts the demo images (build them with
 * scripts/build-images), reads flags from them, checks labels, limits and the
 * failure paths, and removes every object it labelled.
 *
 * docker: the engine on /var/run/docker.sock (or the endpoint below).
 * swarm: a swarm manager named by CC_TEST_SWARM_ENDPOINT (scripts/swarm-lab
 * makes one in network namespaces; test_swarm.py runs this so), with
 * CC_TEST_SWARM_PLACEMENT pinning the cases to one node, CC_TEST_SWARM_ADDR
 * (that node's address, where ports are read), CC_TEST_SWARM_PUBLIC_HOST
 * (its ctfd-containers.public_host label) and CC_TEST_SWARM_NETNS (its
 * network namespace, to hold a port there). A whale backend plugs in the
 * same way: a name, a config, and the few engine-specific checks below.
 *
 * CC_TEST_DOCKER_ENDPOINT (e.g. tcp://127.0.0.1:2376) replaces the socket,
 * with CC_TEST_DOCKER_TLS_CA, _CERT and _KEY for TLS (test_docker_tls.py runs
 * it so). Published ports bind to, and are probed and read on, 127.0.0.1, so
 * the engine must run on this host. CC_TEST_PORT_BASE sets the first of the
 * three host ports it publishes on (default 32000 + 3 * (pid % 250)).
 *
 * It must not touch containers it did not create: everything it starts
 * carries an instance id in this run's own range, and the final clean-up
 * removes only those. Skips when no engine answers. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "arena.h"
#include "backend.h"
#include "config.h"
#include "curlx.h"
#include "errors.h"

#define SOCK "unix:///var/run/docker.sock"
#define WEB_IMAGE "ctfd-containers/demo-web:latest"
#define TCP_IMAGE "ctfd-containers/demo-tcp:latest"
#define MISSING_IMAGE "ctfd-containers/no-such-image:latest"
#define TEST_COUNT 41
#define SWARM_EXTRA 3 /* the swarm-only cases (placement) */

static int test_n;
static int64_t id_base;   /* this run's instance ids: id_base .. id_base + 99 */
static int port_base;     /* this run's host ports: port_base .. port_base + 2 */
static char flag[64];
static const char *backend_name = "docker";
static const char *conn_host = "127.0.0.1"; /* where published ports are read */
static const char *want_host = "ctf.example.org"; /* what start reports as the host */

static bool is_swarm(void)
{
    return strcmp(backend_name, "swarm") == 0;
}

static void ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", cond ? "ok" : "not ok", ++test_n);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An environment variable, or NULL when unset or empty. */
static char *env_or_null(const char *name)
{
    char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The engine under test: the unix socket unless the environment names another. */
static char *test_endpoint(void)
{
    char *e = env_or_null(is_swarm() ? "CC_TEST_SWARM_ENDPOINT" : "CC_TEST_DOCKER_ENDPOINT");
    return e != NULL ? e : SOCK;
}

static void test_config(struct cc_config *c)
{
    memset(c, 0, sizeof(*c));
    c->backend = (char *)backend_name;
    c->docker_endpoint = test_endpoint();
    c->docker_tls_ca = env_or_null("CC_TEST_DOCKER_TLS_CA");
    c->docker_tls_cert = env_or_null("CC_TEST_DOCKER_TLS_CERT");
    c->docker_tls_key = env_or_null("CC_TEST_DOCKER_TLS_KEY");
    c->docker_timeout_seconds = 30;
    c->public_host = "ctf.example.org";
    c->bind_address = "127.0.0.1";
    c->ready_timeout_seconds = 20;
    c->default_memory_mb = 64;
    c->default_cpus = 0.5;
    c->pids_limit = 64;
    c->cap_add = "CHOWN, SETUID";
    c->site = "ccbackendtest";
    c->swarm_endpoint = "";
    c->swarm_node_endpoints = "";
    c->swarm_placement = env_or_null("CC_TEST_SWARM_PLACEMENT");
    if (c->swarm_placement == NULL)
        c->swarm_placement = "";
    c->swarm_network_per_container =
        env_or_null("CC_TEST_SWARM_NETWORK") ? atoi(env_or_null("CC_TEST_SWARM_NETWORK")) : 1;
    /* Each container on its own network (docs/exposure.md). */
    c->network_mode = "isolated";
    c->network_pool = "10.213.0.0/16";
    c->network_prefix = 28;
}

static struct backend_spec web_spec(int64_t k, int host_port)
{
    struct backend_spec s = {0};
    s.image = WEB_IMAGE;
    s.flag_env = "FLAG";
    s.flag = flag;
    s.instance_id = id_base + k;
    s.account_id = 7;
    s.challenge_id = 11;
    s.expires = (int64_t)time(NULL) + 600;
    s.nports = 1;
    s.ports[0] = (struct backend_port){.internal = 8080, .proto = PROTO_HTTP,
                                       .host_port = host_port};
    return s;
}

/* The host port of case k: docker reuses port_base once a case removed its
 * container; on a swarm node a removed service's task holds its port for a
 * second or more, so each case there gets a port of its own. */
static int case_port(int k)
{
    return is_swarm() ? port_base + 10 + k : port_base;
}

static bool jeq(json_t *v, const char *want)
{
    const char *s = json_string_value(v);
    return s != NULL && strcmp(s, want) == 0;
}

static bool no_flag(const struct cc_error *e)
{
    return strstr(e->message, flag) == NULL;
}

/* ---- helpers that talk to the engine or the container directly ------------- */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    strbuf_t *sb = ud;
    sb_putn(sb, p, size * n);
    return size * n;
}

/* GET http://127.0.0.1:port/ -> body (arena), or NULL. */
static const char *http_get(arena_t *a, int port)
{
    CURL *c = curl_easy_init();
    strbuf_t sb;
    sb_init(&sb, a);
    char url[64];
    snprintf(url, sizeof(url), "http://%s:%d/", conn_host, port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return rc == CURLE_OK && status == 200 ? sb_str(&sb) : NULL;
}

/* Everything a TCP service says before it closes (5 s at most). */
static const char *tcp_read(arena_t *a, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, conn_host, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    strbuf_t sb;
    sb_init(&sb, a);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        char buf[256];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
            sb_putn(&sb, buf, (size_t)n);
    }
    close(fd);
    return sb_str(&sb);
}

/* A listening socket on conn_host:port that is not the engine's. For a swarm
 * node the socket is made inside the node's network namespace (a socket stays
 * in the namespace it was created in), then this process returns to its own. */
static int listen_on(int port)
{
    const char *ns = is_swarm() ? env_or_null("CC_TEST_SWARM_NETNS") : NULL;
    int home = -1, there = -1;
    if (ns != NULL) {
        home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        there = open(ns, O_RDONLY | O_CLOEXEC);
        if (home < 0 || there < 0 || setns(there, CLONE_NEWNET) < 0) {
            if (home >= 0)
                close(home);
            if (there >= 0)
                close(there);
            return -1;
        }
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ns != NULL ? "0.0.0.0" : conn_host, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        close(fd);
        fd = -1;
    }
    if (ns != NULL) {
        if (setns(home, CLONE_NEWNET) < 0) {
            fprintf(stderr, "cannot return to this process's network namespace\n");
            exit(1);
        }
        close(home);
        close(there);
    }
    return fd;
}

/* Raw engine JSON for GET path (caller json_decref), or NULL. */
static json_t *engine_get(struct curlx *cx, arena_t *a, const char *path, long *status)
{
    struct curlx_reply r;
    struct cc_error e;
    *status = 0;
    if (curlx_request(cx, a, "GET", arena_printf(a, "/v1.41%s", path), NULL, true, &r, &e) < 0)
        return NULL;
    *status = r.status;
    return r.json;
}

static bool container_exists(struct backend *b, arena_t *a, const char *name)
{
    struct backend_object o;
    bool found = true;
    struct cc_error e;
    if (b->ops->inspect(b, a, name, &o, &found, &e) < 0)
        return true; /* cannot tell: count it as left behind */
    return found;
}

/* Does any container of this run carry the instance label k? */
static bool listed(struct backend *b, arena_t *a, int64_t k, struct backend_object *hit)
{
    struct backend_object *all = NULL;
    size_t n = 0;
    struct cc_error e;
    if (b->ops->list(b, a, &all, &n, &e) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (all[i].instance_id == id_base + k) {
            if (hit != NULL)
                *hit = all[i];
            return true;
        }
    return false;
}

/* ---- cases ------------------------------------------------------------------ */

static void case_ping(struct backend *b)
{
    struct cc_error e;
    err_clear(&e);
    ok(b->ops->ping(b, &e) == 0, "ping answers");
}

/* swarm: the service spec says the same as the docker container's HostConfig. */
static void check_service_spec(struct curlx *cx, arena_t *a, const char *name)
{
    long status;
    json_t *j = engine_get(cx, a, arena_printf(a, "/services/%s", name), &status);
    json_t *tt = json_object_get(json_object_get(j, "Spec"), "TaskTemplate");
    json_t *cs = json_object_get(tt, "ContainerSpec");
    json_t *lim = json_object_get(json_object_get(tt, "Resources"), "Limits");
    json_t *caps = json_object_get(cs, "CapabilityAdd");
    json_t *port = json_array_get(
        json_object_get(json_object_get(json_object_get(j, "Spec"), "EndpointSpec"), "Ports"), 0);
    ok(json_integer_value(json_object_get(lim, "MemoryBytes")) == 64LL * 1024 * 1024 &&
           json_integer_value(json_object_get(lim, "NanoCPUs")) == 500000000LL &&
           json_integer_value(json_object_get(lim, "Pids")) == 64,
       "Limits: MemoryBytes 64 MiB, NanoCPUs 0.5e9, Pids 64 from the defaults");
    ok(jeq(json_array_get(json_object_get(cs, "CapabilityDrop"), 0), "ALL") &&
           json_array_size(caps) == 2 && jeq(json_array_get(caps, 0), "CAP_CHOWN") &&
           jeq(json_array_get(caps, 1), "CAP_SETUID") &&
           jeq(json_object_get(json_object_get(cs, "Labels"), "ctfd-containers.instance"),
               arena_printf(a, "%lld", (long long)(id_base + 1))),
       "CapabilityDrop [ALL], CapabilityAdd [CAP_CHOWN, CAP_SETUID], labels on the container");
    ok(jeq(json_object_get(json_object_get(tt, "RestartPolicy"), "Condition"), "none") &&
           json_integer_value(json_object_get(
               json_object_get(json_object_get(json_object_get(j, "Spec"), "Mode"),
                               "Replicated"),
               "Replicas")) == 1,
       "one replica, RestartPolicy condition none (a failed task is not retried)");
    ok(jeq(json_object_get(port, "PublishMode"), "host") &&
           json_integer_value(json_object_get(port, "PublishedPort")) == port_base &&
           json_integer_value(json_object_get(port, "TargetPort")) == 8080,
       "port 8080/tcp published in host mode on %d", port_base);
    bool has_networks = json_object_get(tt, "Networks") != NULL;
    json_decref(j);
    bool own = env_or_null("CC_TEST_SWARM_NETWORK") == NULL ||
               atoi(env_or_null("CC_TEST_SWARM_NETWORK")) == 1;
    j = engine_get(cx, a, arena_printf(a, "/networks/%s", name), &status);
    if (own)
        ok(status == 200 && jeq(json_object_get(j, "Driver"), "overlay") &&
               json_is_true(json_object_get(j, "Attachable")),
           "swarm_network_per_container = 1: an attachable overlay network of its own");
    else
        ok(status == 404 && !has_networks,
           "swarm_network_per_container = 0: no network of its own (the node's bridge)");
    json_decref(j);
}

static void check_host_config(struct curlx *cx, arena_t *a, const char *name)
{
    if (is_swarm()) {
        check_service_spec(cx, a, name);
        return;
    }
    long status;
    json_t *j = engine_get(cx, a, arena_printf(a, "/containers/%s/json", name), &status);
    json_t *hc = json_object_get(j, "HostConfig");
    json_t *cap_add = json_object_get(hc, "CapAdd");
    json_t *bindings = json_object_get(hc, "PortBindings");
    json_t *pb = json_array_get(json_object_get(bindings, "8080/tcp"), 0);
    ok(json_integer_value(json_object_get(hc, "Memory")) == 64LL * 1024 * 1024 &&
           json_integer_value(json_object_get(hc, "NanoCpus")) == 500000000LL &&
           json_integer_value(json_object_get(hc, "PidsLimit")) == 64,
       "Memory 64 MiB, NanoCpus 0.5e9, PidsLimit 64 from the defaults");
    ok(json_array_size(json_object_get(hc, "CapDrop")) == 1 &&
           jeq(json_array_get(json_object_get(hc, "CapDrop"), 0), "ALL") &&
           json_array_size(cap_add) == 2 && jeq(json_array_get(cap_add, 0), "CHOWN") &&
           jeq(json_array_get(cap_add, 1), "SETUID"),
       "CapDrop [ALL], CapAdd [CHOWN, SETUID]");
    ok(jeq(json_array_get(json_object_get(hc, "SecurityOpt"), 0), "no-new-privileges:true") &&
           jeq(json_object_get(json_object_get(hc, "RestartPolicy"), "Name"), "no"),
       "SecurityOpt no-new-privileges, RestartPolicy no");
    ok(jeq(json_object_get(pb, "HostIp"), "127.0.0.1") &&
           jeq(json_object_get(pb, "HostPort"), arena_printf(a, "%d", port_base)),
       "port 8080/tcp published on 127.0.0.1:%d", port_base);
    json_t *net = engine_get(cx, a, arena_printf(a, "/networks/%s", name), &status);
    json_t *opts = json_object_get(net, "Options");
    const char *br = json_string_value(json_object_get(opts, "com.docker.network.bridge.name"));
    ok(jeq(json_object_get(hc, "NetworkMode"), name) && status == 200 &&
           jeq(json_object_get(json_object_get(net, "Labels"), "ctfd-containers.site"),
               "ccbackendtest") &&
           jeq(json_object_get(opts, "com.docker.network.bridge.enable_icc"), "false") &&
           jeq(json_object_get(opts, "com.docker.network.bridge.enable_ip_masquerade"), "false") &&
           br != NULL && strncmp(br, "ccp-", 4) == 0 &&
           json_object_size(json_object_get(net, "Containers")) == 1,
       "on a network of its own (%s): labelled, no icc, no NAT, bridge %s", name, br ? br : "?");
    json_decref(net);
    json_decref(j);
}

static bool network_gone(struct curlx *cx, arena_t *a, const char *name)
{
    long status;
    json_t *j = engine_get(cx, a, arena_printf(a, "/networks/%s", name), &status);
    json_decref(j);
    return status == 404;
}

static void check_labels(struct backend *b, arena_t *a, const struct backend_spec *s,
                         const char *engine_id)
{
    struct backend_object o;
    bool found = false;
    struct cc_error e;
    int rc = b->ops->inspect(b, a, s->name, &o, &found, &e);
    ok(rc == 0 && found && o.running && strcmp(o.status, "running") == 0 &&
           strcmp(o.name, s->name) == 0 && strcmp(o.engine_id, engine_id) == 0,
       "inspect: found, running, name and id match");
    ok(found && o.instance_id == s->instance_id && o.account_id == 7 && o.challenge_id == 11 &&
           o.expires == s->expires && llabs((long long)(o.created - time(NULL))) < 120,
       "inspect: labels (instance, account, challenge, expires) and created time");
    struct backend_object l = {0};
    ok(listed(b, a, s->instance_id - id_base, &l) && l.running && l.account_id == 7 &&
           l.challenge_id == 11 && strcmp(l.name, s->name) == 0 && l.created == o.created,
       "list: the container is there with its labels");
}

static void case_web(struct backend *b, struct curlx *cx, arena_t *a)
{
    struct backend_spec s = web_spec(1, port_base);
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int64_t t0 = now_ms();
    int rc = b->ops->start(b, a, &s, &out, &e);
    int64_t t1 = now_ms();
    ok(rc == 0 && out.engine_id != NULL && strlen(out.engine_id) == (is_swarm() ? 25 : 64) &&
           strcmp(out.host, want_host) == 0,
       "start demo-web on host port %d (%lld ms)%s%s", port_base, (long long)(t1 - t0),
       rc == 0 ? "" : ": ", rc == 0 ? "" : err_message(&e));
    const char *body = http_get(a, port_base);
    ok(body != NULL && strncmp(body, flag, strlen(flag)) == 0 && body[strlen(flag)] == '\n',
       "GET / right after start returns the flag");
    check_labels(b, a, &s, rc == 0 ? out.engine_id : "");
    check_host_config(cx, a, s.name);
}

static void case_clash_engine(struct backend *b, arena_t *a)
{
    struct backend_spec s = web_spec(2, port_base);
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int rc = b->ops->start(b, a, &s, &out, &e);
    char want[64];
    snprintf(want, sizeof(want), "host port %d is in use", port_base);
    ok(rc < 0 && e.code == ERR_START_FAILED && e.temporary && strcmp(e.message, want) == 0,
       "a second container on the same host port: START_FAILED temporary (%s)",
       err_message(&e));
    ok(!container_exists(b, a, s.name) && !listed(b, a, 2, NULL),
       "the clashing container is removed");
}

static void case_clash_listener(struct backend *b, arena_t *a)
{
    int port = port_base + 2;
    int fd = listen_on(port);
    struct backend_spec s = web_spec(3, port);
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int rc = fd < 0 ? 0 : b->ops->start(b, a, &s, &out, &e);
    char want[64];
    snprintf(want, sizeof(want), "host port %d is in use", port);
    ok(fd >= 0 && rc < 0 && e.code == ERR_START_FAILED && e.temporary &&
           strcmp(e.message, want) == 0,
       "host port held by another process: START_FAILED temporary (%s)", err_message(&e));
    ok(!container_exists(b, a, s.name), "and that container is removed");
    if (fd >= 0)
        close(fd);
}

static void case_stop(struct backend *b, struct curlx *cx, arena_t *a)
{
    const char *name = arena_printf(a, "ccbackendtest-%lld", (long long)(id_base + 1));
    struct cc_error e;
    err_clear(&e);
    int64_t t0 = now_ms();
    int rc = b->ops->stop(b, name, &e);
    ok(rc == 0, "stop removes the container (%lld ms)", (long long)(now_ms() - t0));
    err_clear(&e);
    ok(b->ops->stop(b, name, &e) == 0, "a second stop succeeds (already gone)");
    struct backend_object o;
    bool found = true;
    rc = b->ops->inspect(b, a, name, &o, &found, &e);
    ok(rc == 0 && !found, "inspect after stop: not found");
    ok(!listed(b, a, 1, NULL), "list after stop: not there");
    /* swarm: the node kills the task's container a moment after the service
     * is gone (the manager tells the node); docker: at once. */
    int64_t t1 = now_ms();
    bool answers = http_get(a, port_base) != NULL;
    while (answers && is_swarm() && now_ms() - t1 < 10000) {
        usleep(50 * 1000);
        answers = http_get(a, port_base) != NULL;
    }
    ok(!answers, "the host port no longer answers (after %lld ms)", (long long)(now_ms() - t1));
    ok(network_gone(cx, a, name), "its network is removed with it");
}

/* ---- swarm only ------------------------------------------------------------- */

static void case_swarm_placement(struct backend *b, struct cc_config *cfg, arena_t *a)
{
    struct backend_spec s = web_spec(10, case_port(10));
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    s.placement = "node.labels.no-such-label==x";
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int rc = b->ops->start(b, a, &s, &out, &e);
    ok(rc < 0 && e.code == ERR_START_FAILED && !e.temporary &&
           strncmp(e.message, "no swarm node can run it", 24) == 0 && no_flag(&e),
       "swarm: a placement no node satisfies fails at once, permanent (%s)", err_message(&e));
    ok(!container_exists(b, a, s.name), "and leaves no service behind");
    s.placement = "node.labels.zone==a; rm -rf /";
    err_clear(&e);
    rc = b->ops->start(b, a, &s, &out, &e);
    ok(rc < 0 && e.code == ERR_CHALLENGE_MISCONFIGURED && !container_exists(b, a, s.name),
       "swarm: a malformed challenge placement: CHALLENGE_MISCONFIGURED (%s)", err_message(&e));
    (void)cfg;
}

static void case_missing_image(struct backend *b, struct curlx *cx, arena_t *a)
{
    struct backend_spec s = web_spec(4, case_port(4));
    s.image = MISSING_IMAGE;
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int rc = b->ops->start(b, a, &s, &out, &e);
    ok(rc < 0 && e.code == ERR_IMAGE_MISSING && !e.temporary &&
           strstr(e.message, MISSING_IMAGE) != NULL && no_flag(&e),
       "missing image: IMAGE_MISSING naming it (%s)", err_message(&e));
    ok(!container_exists(b, a, s.name), "missing image leaves no container");
    ok(network_gone(cx, a, s.name), "and no network");
}

static void case_unreachable(arena_t *a)
{
    struct cc_config cfg;
    test_config(&cfg);
    cfg.docker_endpoint = "unix:///nonexistent.sock";
    struct cc_error e;
    err_clear(&e);
    struct backend *b = backend_open(backend_name, &cfg, &e);
    ok(b != NULL, "open with an unreachable endpoint succeeds (connects lazily)");
    if (b == NULL) {
        ok(false, "ping on an unreachable endpoint");
        ok(false, "start on an unreachable endpoint");
        return;
    }
    int rc = b->ops->ping(b, &e);
    ok(rc < 0 && e.code == ERR_ENGINE_UNAVAILABLE && e.temporary,
       "ping on an unreachable endpoint: ENGINE_UNAVAILABLE temporary (%s)", err_message(&e));
    struct backend_spec s = web_spec(5, case_port(5));
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    err_clear(&e);
    rc = b->ops->start(b, a, &s, &out, &e);
    ok(rc < 0 && e.code == ERR_ENGINE_UNAVAILABLE && e.temporary && no_flag(&e),
       "start on an unreachable endpoint: ENGINE_UNAVAILABLE temporary (%s)",
       err_message(&e));
    backend_close(b);
}

static void case_bad_names(void)
{
    struct cc_config cfg;
    test_config(&cfg);
    struct cc_error e;
    err_clear(&e);
    struct backend *b = backend_open("nosuch", &cfg, &e);
    ok(b == NULL && strncmp(e.message, "unknown backend 'nosuch'", 24) == 0,
       "backend 'nosuch': %s", err_message(&e));
    cfg.docker_endpoint = "http://localhost:2375";
    err_clear(&e);
    b = backend_open(backend_name, &cfg, &e);
    ok(b == NULL && e.code == ERR_INTERNAL, "a malformed endpoint is refused: %s",
       err_message(&e));
    backend_close(b);
}

static void case_exits(struct backend *b, arena_t *a)
{
    struct backend_spec s = web_spec(6, case_port(6));
    s.flag_env = "NOTFLAG";
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int64_t t0 = now_ms();
    int rc = b->ops->start(b, a, &s, &out, &e);
    int64_t took = now_ms() - t0;
    ok(rc < 0 && e.code == ERR_START_FAILED && strncmp(e.message, "container exited with code ",
                                                       27) == 0 && no_flag(&e),
       "a container that exits at once: START_FAILED (%s)", err_message(&e));
    /* Not a benchmark: "fast" means well before the 20 s ready timeout. */
    ok(took < 12000, "and fails well before the ready timeout: %lld ms (ready timeout 20 s)",
       (long long)took);
    ok(!container_exists(b, a, s.name), "and leaves nothing behind");
}

static void case_not_ready(struct backend *b, struct cc_config *cfg, arena_t *a)
{
    struct backend_spec s = web_spec(7, case_port(7));
    s.ports[0].internal = 8081; /* nothing listens there */
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    /* A swarm start's timeout also covers scheduling the task on a node. */
    int timeout = is_swarm() ? 6 : 2;
    cfg->ready_timeout_seconds = timeout;
    int64_t t0 = now_ms();
    int rc = b->ops->start(b, a, &s, &out, &e);
    int64_t took = now_ms() - t0;
    cfg->ready_timeout_seconds = 20;
    char want[64];
    snprintf(want, sizeof(want), "port 8081 did not answer within %d s", timeout);
    ok(rc < 0 && e.code == ERR_START_FAILED && strcmp(e.message, want) == 0 &&
           took >= timeout * 1000 && took < 15000 + timeout * 1000, /* the timeout, not for ever */
       "a port that never answers: START_FAILED after %lld ms (%s)", (long long)took,
       err_message(&e));
    ok(!container_exists(b, a, s.name), "and the container is removed");
}

static void case_tcp(struct backend *b, arena_t *a)
{
    struct backend_spec s = web_spec(8, port_base + 1);
    s.image = TCP_IMAGE;
    s.ports[0] = (struct backend_port){.internal = 9000, .proto = PROTO_TCP,
                                       .host_port = port_base + 1};
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    struct backend_started out = {0};
    struct cc_error e;
    err_clear(&e);
    int64_t t0 = now_ms();
    int rc = b->ops->start(b, a, &s, &out, &e);
    ok(rc == 0, "start demo-tcp on host port %d (%lld ms)%s%s", port_base + 1,
       (long long)(now_ms() - t0), rc == 0 ? "" : ": ", rc == 0 ? "" : err_message(&e));
    const char *said = tcp_read(a, port_base + 1);
    ok(strncmp(said, flag, strlen(flag)) == 0 && said[strlen(flag)] == '\n',
       "a TCP connection right after start reads the flag");
    err_clear(&e);
    ok(b->ops->stop(b, s.name, &e) == 0 && !container_exists(b, a, s.name), "stop demo-tcp");
}

/* A leftover with the instance's name (a crashed start) is replaced. */
static void case_leftover(struct backend *b, struct curlx *cx, arena_t *a)
{
    struct backend_spec s = web_spec(9, case_port(9));
    s.name = arena_printf(a, "ccbackendtest-%lld", (long long)(s.instance_id));
    const char *inst = arena_printf(a, "%lld", (long long)s.instance_id);
    json_t *body = is_swarm() ? json_pack("{s:s, s:{s:s}, s:{s:{s:s}}}", "Name", s.name, "Labels",
                                          "ctfd-containers.instance", inst, "TaskTemplate",
                                          "ContainerSpec", "Image", WEB_IMAGE)
                              : json_pack("{s:s, s:{s:s}}", "Image", WEB_IMAGE, "Labels",
                                          "ctfd-containers.instance", inst);
    const char *path = is_swarm() ? "/v1.41/services/create"
                                  : arena_printf(a, "/v1.41/containers/create?name=%s", s.name);
    struct curlx_reply r;
    struct cc_error e;
    int rc = curlx_request(cx, a, "POST", path, body, true, &r, &e);
    json_decref(body);
    json_decref(r.json);
    ok(rc == 0 && r.status == 201, "a leftover %s named %s exists",
       is_swarm() ? "service" : "container", s.name);
    struct backend_started out = {0};
    err_clear(&e);
    rc = b->ops->start(b, a, &s, &out, &e);
    const char *got = rc == 0 ? http_get(a, case_port(9)) : NULL;
    ok(rc == 0 && got != NULL && strncmp(got, flag, strlen(flag)) == 0,
       "start replaces the leftover and serves the flag%s%s", rc == 0 ? "" : ": ",
       rc == 0 ? "" : err_message(&e));
    err_clear(&e);
    ok(b->ops->stop(b, s.name, &e) == 0, "stop it");
}

/* Remove every container of this run, whatever the cases left. */
static void case_cleanup(struct backend *b, arena_t *a)
{
    struct backend_object *all = NULL;
    size_t n = 0, removed = 0;
    struct cc_error e;
    err_clear(&e);
    if (b->ops->list(b, a, &all, &n, &e) == 0)
        for (size_t i = 0; i < n; i++)
            if (all[i].instance_id >= id_base && all[i].instance_id < id_base + 100 &&
                b->ops->stop(b, all[i].name, &e) == 0)
                removed++;
    bool left = false;
    for (int64_t k = 0; k < 100; k++)
        left = left || listed(b, a, k, NULL);
    ok(!left, "clean-up: nothing of this run is left (removed %zu at the end)", removed);
}

/* Is the engine there, with the demo images? Else say why not. The ping goes
 * through the backend, so a tcp:// endpoint (TLS or not) is judged the same
 * way as the socket. */
static const char *skip_reason(struct backend *b, struct curlx *cx, arena_t *a,
                               const struct cc_error *open_err)
{
    struct cc_error e;
    err_clear(&e);
    if (b == NULL || cx == NULL)
        return arena_printf(a, "no docker engine at %s (cannot open: %s)", test_endpoint(),
                            err_message(open_err));
    if (b->ops->ping(b, &e) < 0)
        return arena_printf(a, "no %s engine at %s (%s)", backend_name, test_endpoint(),
                            err_message(&e));
    long s1, s2;
    json_t *j1 = engine_get(cx, a, "/images/" WEB_IMAGE "/json", &s1);
    json_t *j2 = engine_get(cx, a, "/images/" TCP_IMAGE "/json", &s2);
    json_decref(j1);
    json_decref(j2);
    return s1 == 200 && s2 == 200 ? NULL : "demo images missing (run scripts/build-images)";
}

static void run_cases(struct backend *b, struct cc_config *cfg, struct curlx *cx, arena_t *a)
{
    case_ping(b);
    case_web(b, cx, a);
    case_clash_engine(b, a);
    case_clash_listener(b, a);
    case_stop(b, cx, a);
    case_missing_image(b, cx, a);
    case_unreachable(a);
    case_bad_names();
    case_exits(b, a);
    case_not_ready(b, cfg, a);
    case_tcp(b, a);
    case_leftover(b, cx, a);
    if (is_swarm())
        case_swarm_placement(b, cfg, a);
    case_cleanup(b, a);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        backend_name = argv[1];
    if (strcmp(backend_name, "docker") != 0 && strcmp(backend_name, "swarm") != 0) {
        printf("1..0 # SKIP no contract cases for backend '%s' yet\n", backend_name);
        return 0;
    }
    if (is_swarm() && env_or_null("CC_TEST_SWARM_ENDPOINT") == NULL) {
        printf("1..0 # SKIP no swarm named (CC_TEST_SWARM_ENDPOINT; test_swarm.py sets it)\n");
        return 0;
    }
    if (is_swarm()) {
        conn_host = env_or_null("CC_TEST_SWARM_ADDR") ? env_or_null("CC_TEST_SWARM_ADDR")
                                                      : "127.0.0.1";
        want_host = env_or_null("CC_TEST_SWARM_PUBLIC_HOST") ? env_or_null("CC_TEST_SWARM_PUBLIC_HOST")
                                                             : conn_host;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* main's job, once (curlx does not) */
    long pid = (long)getpid();
    id_base = 1900000000LL + (int64_t)(pid % 100000) * 100;
    /* Below the ephemeral range (32768-60999): a client socket in TIME_WAIT
     * there could hold the port we want to publish on. */
    port_base = 32000 + (int)(pid % 250) * 3;
    if (is_swarm()) /* the node's own namespace: no other test publishes there */
        port_base = 30000;
    /* A caller with its own port block (test_docker_tls.py) names the base:
     * over tcp:// the test's own client connections take ephemeral ports,
     * and one left in TIME_WAIT on a port makes publishing on it fail. */
    const char *pb = env_or_null("CC_TEST_PORT_BASE");
    if (pb != NULL && atoi(pb) >= 1024 && atoi(pb) <= 65533)
        port_base = atoi(pb);
    srand((unsigned)time(NULL) ^ (unsigned)pid);
    snprintf(flag, sizeof(flag), "flag{check-%ld-%08x}", pid, (unsigned)rand());
    struct cc_config cfg;
    test_config(&cfg);
    struct cc_error e;
    err_clear(&e);
    arena_t *a = arena_new(1 << 16);
    struct backend *b = backend_open(backend_name, &cfg, &e);
    struct curlx *cx = b != NULL ? curlx_open(cfg.docker_endpoint, cfg.docker_tls_ca,
                                              cfg.docker_tls_cert, cfg.docker_tls_key, 30, &e)
                                 : NULL;
    int planned = TEST_COUNT + (is_swarm() ? SWARM_EXTRA : 0);
    printf("# backend %s, engine endpoint %s%s\n", backend_name, cfg.docker_endpoint,
           cfg.docker_tls_ca || cfg.docker_tls_cert || cfg.docker_tls_key ? " (TLS)" : "");
    const char *why = skip_reason(b, cx, a, &e);
    if (why != NULL) {
        printf("1..0 # SKIP %s\n", why);
    } else {
        printf("1..%d\n", planned);
        run_cases(b, &cfg, cx, a);
        if (test_n != planned)
            printf("# planned %d tests, ran %d\n", planned, test_n);
    }
    curlx_close(cx);
    backend_close(b);
    arena_free(a);
    curl_global_cleanup();
    return 0;
}

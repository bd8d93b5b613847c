/* backend_swarm.c: the multi-host backend. Each container is a Docker Swarm
 * service with one replica, created, watched and removed through the
 * manager's Engine API (/v1.41) with curlx: no restart (a task that fails is
 * reported with the engine's reason, never retried), our labels on the
 * service (and its container), the limits of the docker backend, ports
 * published in host mode on the node that runs the task (the routing mesh is
 * not assumed), optional placement constraints, and optionally an overlay
 * network of its own. Players connect to the node's label
 * ctfd-containers.public_host, else to the node's address.
 *
 * It must not know other backends, must not put the flag or the environment
 * into an error message or a log line (task errors are shown only when they
 * do not contain the flag), and must leave nothing behind when a start
 * fails: the service (and its network) is removed before it returns. */
#include "backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "curlx.h"
#include "log.h"
#include "route.h"
#include "placement.h"

#define SWARM_API "/v1.41"
#define SWARM_DEFAULT_ENDPOINT "unix:///var/run/docker.sock"
#define SWARM_LABEL "ctfd-containers."
#define SWARM_PUBLIC_HOST_LABEL "ctfd-containers.public_host"
#define SWARM_POLL_FIRST_MS 30 /* task state polls: 30 ms, doubling to 250 ms */
#define SWARM_POLL_MAX_MS 250
#define SWARM_SLICE_MS 200 /* port probes between task checks, doubling */
#define SWARM_SLICE_MAX_MS 3200
#define SWARM_STOP_WAIT_MS 3000 /* a stop waits this long for the task to end */

struct swarm {
    struct curlx *cx; /* the manager */
};

/* Where the running task is. */
struct swarm_task {
    const char *node_id;
    const char *host;      /* where players connect */
    const char *probe;     /* where this process probes the ports (the node's address) */
    const char *node_name; /* for messages */
};

/* ---- plumbing --------------------------------------------------------------- */

static int64_t swarm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void swarm_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int swarm_call(struct swarm *s, arena_t *a, const char *method, const char *path,
                      const json_t *body, struct curlx_reply *r, struct cc_error *err)
{
    return curlx_request(s->cx, a, method, arena_printf(a, SWARM_API "%s", path), body, true, r,
                         err);
}

static const char *swarm_message(const struct curlx_reply *r)
{
    const char *m = json_string_value(json_object_get(r->json, "message"));
    return m != NULL ? m : "";
}

/* Engine text is shown or logged only without the flag in it. */
static const char *swarm_safe(const char *msg, const char *flag)
{
    if (msg == NULL)
        return "";
    if (flag != NULL && flag[0] != '\0' && strstr(msg, flag) != NULL)
        return "(engine message withheld: it contains the flag)";
    return msg;
}

static void swarm_log_refusal(const char *what, const struct curlx_reply *r, const char *flag)
{
    log_warn("swarm: %s: HTTP %ld: %.300s", what, r->status, swarm_safe(swarm_message(r), flag));
}

static int swarm_status_error(struct cc_error *err, const char *what, const struct curlx_reply *r)
{
    swarm_log_refusal(what, r, NULL);
    if (r->status >= 500)
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "swarm manager failed to %s (HTTP %ld)", what,
                       r->status);
    return err_set(err, ERR_INTERNAL, "swarm manager refused to %s (HTTP %ld)", what, r->status);
}

/* GET path -> 0 with the reply (caller json_decrefs r->json), -1 on transport failure. */
static int swarm_get(struct swarm *s, arena_t *a, const char *path, struct curlx_reply *r,
                     struct cc_error *err)
{
    return swarm_call(s, a, "GET", path, NULL, r, err);
}

/* A filters= query value from a JSON object built by the caller (stolen). */
static const char *swarm_filters(arena_t *a, json_t *f)
{
    char *text = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    const char *enc = curlx_urlencode(a, text != NULL ? text : "{}");
    free(text);
    return enc;
}

/* ---- removal ---------------------------------------------------------------- */

/* DELETE one object by name or id; gone already is success. */
static int swarm_delete(struct swarm *s, arena_t *a, const char *kind, const char *name,
                        struct cc_error *err)
{
    struct curlx_reply r;
    const char *path = arena_printf(a, "/%s/%s", kind, curlx_urlencode(a, name));
    if (swarm_call(s, a, "DELETE", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status != 200 && r.status != 204 && r.status != 404)
        rc = swarm_status_error(
            err, strcmp(kind, "services") == 0 ? "remove the service" : "remove the network", &r);
    json_decref(r.json);
    return rc;
}

/* Remove the service, then its network. The service's task lets go of its
 * container a moment later (about 1 s here, 3 s with an overlay network):
 * stop does not wait for that. A network still in use then is left for
 * reconciliation, which lists it (instance -1) and removes it. */
static int swarm_remove(struct swarm *s, arena_t *a, const char *name, bool network,
                        struct cc_error *err)
{
    if (swarm_delete(s, a, "services", name, err) < 0)
        return -1;
    if (!network)
        return 0;
    struct curlx_reply r;
    const char *path = arena_printf(a, "/networks/%s", curlx_urlencode(a, name));
    if (swarm_call(s, a, "DELETE", path, NULL, &r, err) < 0)
        return -1;
    if (r.status != 200 && r.status != 204 && r.status != 404)
        log_debug("swarm: network %s still in use (HTTP %ld); reconciliation removes it", name,
                  r.status);
    json_decref(r.json);
    return 0;
}

static void swarm_remove_quietly(struct swarm *s, arena_t *a, const char *name, bool network)
{
    struct cc_error rm;
    err_clear(&rm);
    if (swarm_remove(s, a, name, network, &rm) < 0)
        log_warn("swarm: could not remove %.80s after a failed start: %s", name, err_message(&rm));
}

/* ---- the service spec ------------------------------------------------------- */

/* "CHOWN, SETUID" -> ["CAP_CHOWN","CAP_SETUID"] (the swarm API wants the prefix). */
static json_t *swarm_caps(const char *list)
{
    json_t *caps = json_array();
    const char *p = list, *item;
    size_t n;
    while (route_list_next(&p, &item, &n)) {
        char buf[80];
        snprintf(buf, sizeof(buf), "%s%.*s", strncmp(item, "CAP_", 4) == 0 ? "" : "CAP_", (int)n,
                 item);
        json_array_append_new(caps, json_string(buf));
    }
    return caps;
}

static json_t *swarm_container_spec(arena_t *a, const struct cc_config *cfg,
                                    const struct backend_spec *spec)
{
    json_t *cs = json_object();
    json_object_set_new(cs, "Image", json_string(spec->image));
    json_t *env = json_array();
    if (spec->flag_env != NULL && spec->flag_env[0] != '\0' && spec->flag != NULL)
        json_array_append_new(env,
                              json_string(arena_printf(a, "%s=%s", spec->flag_env, spec->flag)));
    json_object_set_new(cs, "Env", env);
    /* The same labels on the container: a node's own `docker ps` shows whose it is. */
    json_object_set_new(cs, "Labels", backend_labels(cfg, spec));
    json_object_set_new(cs, "CapabilityDrop", json_pack("[s]", "ALL"));
    json_object_set_new(cs, "CapabilityAdd", swarm_caps(spec->cap_add != NULL ? spec->cap_add : cfg->cap_add));
    json_object_set_new(cs, "Init", json_false());
    /* A challenge container needs no graceful stop: stop means kill, at once. */
    json_object_set_new(cs, "StopGracePeriod", json_integer(0));
    return cs;
}

static json_t *swarm_resources(const struct cc_config *cfg, const struct backend_spec *spec)
{
    int64_t memory =
        spec->memory_bytes > 0 ? spec->memory_bytes : cfg->default_memory_mb * 1024 * 1024;
    int64_t cpus = spec->nano_cpus > 0 ? spec->nano_cpus : (int64_t)(cfg->default_cpus * 1e9 + 0.5);
    int64_t pids = spec->pids_limit > 0 ? spec->pids_limit : cfg->pids_limit;
    json_t *limits = json_object();
    if (memory > 0)
        json_object_set_new(limits, "MemoryBytes", json_integer(memory));
    if (cpus > 0)
        json_object_set_new(limits, "NanoCPUs", json_integer(cpus));
    if (pids > 0)
        json_object_set_new(limits, "Pids", json_integer(pids));
    return json_pack("{s:o}", "Limits", limits);
}

static json_t *swarm_constraints(const struct placement *global, const struct placement *own)
{
    json_t *list = json_array();
    for (size_t i = 0; i < global->n; i++)
        json_array_append_new(list, json_string(global->items[i]));
    for (size_t i = 0; i < own->n; i++)
        json_array_append_new(list, json_string(own->items[i]));
    return list;
}

static json_t *swarm_ports(const struct backend_spec *spec)
{
    json_t *ports = json_array();
    for (size_t i = 0; i < spec->nports; i++)
        json_array_append_new(ports,
                              json_pack("{s:s, s:i, s:i, s:s}", "Protocol", "tcp", "TargetPort",
                                        spec->ports[i].internal, "PublishedPort",
                                        spec->ports[i].host_port, "PublishMode", "host"));
    return ports;
}

/* The whole create body; the flag goes only here, as one Env entry. */
static json_t *swarm_service_body(arena_t *a, const struct cc_config *cfg,
                                  const struct backend_spec *spec, const struct placement *global,
                                  const struct placement *own)
{
    json_t *task = json_object();
    json_object_set_new(task, "ContainerSpec", swarm_container_spec(a, cfg, spec));
    json_object_set_new(task, "Resources", swarm_resources(cfg, spec));
    json_object_set_new(task, "RestartPolicy",
                        json_pack("{s:s, s:i}", "Condition", "none", "MaxAttempts", 0));
    json_object_set_new(task, "Placement",
                        json_pack("{s:o}", "Constraints", swarm_constraints(global, own)));
    if (cfg->swarm_network_per_container)
        json_object_set_new(task, "Networks", json_pack("[{s:s}]", "Target", spec->name));
    json_t *body = json_object();
    json_object_set_new(body, "Name", json_string(spec->name));
    json_object_set_new(body, "Labels", backend_labels(cfg, spec));
    json_object_set_new(body, "TaskTemplate", task);
    json_object_set_new(body, "Mode", json_pack("{s:{s:i}}", "Replicated", "Replicas", 1));
    /* dnsrr: no virtual IP (IPVS) is needed for one replica reached by host port. */
    json_object_set_new(body, "EndpointSpec",
                        json_pack("{s:s, s:o}", "Mode", "dnsrr", "Ports", swarm_ports(spec)));
    return body;
}

/* ---- start: network, service ------------------------------------------------ */

/* An attachable overlay network named like the service; a leftover is reused. */
static int swarm_network_create(struct swarm *s, arena_t *a, const struct cc_config *cfg,
                                const struct backend_spec *spec, struct cc_error *err)
{
    json_t *body =
        json_pack("{s:s, s:s, s:b, s:b, s:o}", "Name", spec->name, "Driver", "overlay",
                  "Attachable", 1, "CheckDuplicate", 1, "Labels", backend_labels(cfg, spec));
    struct curlx_reply r;
    int rc = swarm_call(s, a, "POST", "/networks/create", body, &r, err);
    json_decref(body);
    if (rc < 0)
        return -1;
    if (r.status != 201 && r.status != 409) {
        swarm_log_refusal("create the network", &r, NULL);
        rc = err_set(err, r.status >= 500 ? ERR_ENGINE_UNAVAILABLE : ERR_START_FAILED,
                     "the swarm manager refused to create the network (HTTP %ld)", r.status);
    }
    json_decref(r.json);
    return rc;
}

/* One create: 0 with *id, 1 on a name conflict, -1 with err. */
static int swarm_create_once(struct swarm *s, arena_t *a, const json_t *body,
                             const struct backend_spec *spec, const char **id, struct cc_error *err)
{
    struct curlx_reply r;
    if (swarm_call(s, a, "POST", "/services/create", body, &r, err) < 0) {
        if (r.maybe_applied)
            swarm_remove_quietly(s, a, spec->name, false);
        return -1;
    }
    int rc = 0;
    const char *sid = json_string_value(json_object_get(r.json, "ID"));
    if (r.status == 201 && sid != NULL) {
        *id = arena_strdup(a, sid);
    } else if (r.status == 409) {
        rc = 1;
    } else if (r.status == 503) {
        swarm_log_refusal("create the service", &r, spec->flag);
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "the engine is not a swarm manager (HTTP 503)");
    } else {
        swarm_log_refusal("create the service", &r, spec->flag);
        rc = err_set(err, ERR_START_FAILED,
                     "the swarm manager refused to create the service "
                     "(HTTP %ld)",
                     r.status);
    }
    json_decref(r.json);
    return rc;
}

static int swarm_create(struct swarm *s, arena_t *a, const json_t *body,
                        const struct backend_spec *spec, const char **id, struct cc_error *err)
{
    int rc = swarm_create_once(s, a, body, spec, id, err);
    if (rc == 1) {
        log_info("swarm: removing a leftover service named %s", spec->name);
        rc = swarm_remove(s, a, spec->name, false, err);
        if (rc == 0)
            rc = swarm_create_once(s, a, body, spec, id, err);
    }
    if (rc == 1) {
        rc =
            err_set(err, ERR_START_FAILED, "a service named %s is still being removed", spec->name);
        err->temporary = true;
    }
    return rc;
}

/* The manager must hold the image: the nodes get it from there (--sync-images). */
static int swarm_image_present(struct swarm *s, arena_t *a, const char *image, struct cc_error *err)
{
    struct curlx_reply r;
    if (swarm_get(s, a, arena_printf(a, "/images/%s/json", curlx_urlencode(a, image)), &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status == 404)
        rc = err_set(err, ERR_IMAGE_MISSING, "image '%.160s' is not on the swarm manager", image);
    else if (r.status != 200)
        rc = swarm_status_error(err, "inspect the image", &r);
    json_decref(r.json);
    return rc;
}

/* ---- start: waiting for the task -------------------------------------------- */

/* The host port a scheduler or engine message names, else the first one. */
static int swarm_clashing_port(const char *msg, const struct backend_spec *spec)
{
    for (size_t i = 0; i < spec->nports; i++) {
        char needle[16];
        snprintf(needle, sizeof(needle), ":%d", spec->ports[i].host_port);
        const char *p = strstr(msg, needle);
        if (p != NULL && !isdigit((unsigned char)p[strlen(needle)]))
            return spec->ports[i].host_port;
    }
    return spec->nports > 0 ? spec->ports[0].host_port : 0;
}

/* A task that will not run, in our words: always -1 with err. */
static int swarm_task_failed(json_t *task, const char *state, const struct backend_spec *spec,
                             struct cc_error *err)
{
    json_t *st = json_object_get(task, "Status");
    const char *msg = json_string_value(json_object_get(st, "Err"));
    if (msg == NULL || msg[0] == '\0')
        msg = json_string_value(json_object_get(st, "Message"));
    msg = swarm_safe(msg, spec->flag);
    json_t *cst = json_object_get(st, "ContainerStatus");
    if (strstr(msg, "No such image") != NULL || strstr(msg, "pull access denied") != NULL)
        return err_set(err, ERR_IMAGE_MISSING,
                       "image '%.160s' is not on the node chosen "
                       "(copy it with ctfd-containers --sync-images)",
                       spec->image);
    if (strstr(msg, "port is already allocated") != NULL ||
        strstr(msg, "address already in use") != NULL || strstr(msg, "host-mode port") != NULL) {
        err_set(err, ERR_START_FAILED, "host port %d is in use", swarm_clashing_port(msg, spec));
        err->temporary = true;
        return -1;
    }
    if (strstr(msg, "no suitable node") != NULL) {
        err_set(err, ERR_START_FAILED, "no swarm node can run it: %.160s", msg);
        err->temporary = strstr(msg, "constraints not satisfied") == NULL;
        return -1;
    }
    if (strcmp(state, "failed") == 0 && strstr(msg, "non-zero exit") != NULL)
        return err_set(err, ERR_START_FAILED, "container exited with code %lld",
                       (long long)json_integer_value(json_object_get(cst, "ExitCode")));
    if (strcmp(state, "complete") == 0)
        return err_set(err, ERR_START_FAILED, "container exited with code 0");
    return err_set(err, ERR_START_FAILED, "the task %s: %.160s", state,
                   msg[0] ? msg : "(no reason)");
}

/* A task's CreatedAt in nanoseconds since the epoch (0 if absent): RFC 3339
 * strings with fractions of different lengths do not compare as text. */
static int64_t swarm_created_ns(json_t *task)
{
    const char *t = json_string_value(json_object_get(task, "CreatedAt"));
    int y, mo, day, h, mi, sec, used = 0;
    if (t == NULL ||
        sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &day, &h, &mi, &sec, &used) != 6)
        return 0;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = day,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t ns = (int64_t)timegm(&tm) * 1000000000LL, scale = 100000000LL;
    if (t[used] == '.')
        for (const char *p = t + used + 1; isdigit((unsigned char)*p) && scale > 0; p++) {
            ns += (*p - '0') * scale;
            scale /= 10;
        }
    return ns;
}

/* The newest task of the service, or NULL (from r->json). */
static json_t *swarm_newest_task(json_t *tasks)
{
    json_t *best = NULL, *t;
    size_t i;
    json_array_foreach(tasks, i, t)
    {
        if (best == NULL || swarm_created_ns(t) > swarm_created_ns(best))
            best = t;
    }
    return best;
}

/* One look at the service's task: 1 running (node id in *node), 0 not yet,
 * -1 with err when it failed or cannot run. */
static int swarm_task_state(struct swarm *s, arena_t *a, const char *service_id,
                            const struct backend_spec *spec, const char **node,
                            struct cc_error *err)
{
    struct curlx_reply r;
    const char *f = swarm_filters(a, json_pack("{s:[s]}", "service", service_id));
    if (swarm_get(s, a, arena_printf(a, "/tasks?filters=%s", f), &r, err) < 0)
        return -1;
    if (r.status != 200) {
        int rc = swarm_status_error(err, "list the service's tasks", &r);
        json_decref(r.json);
        return rc;
    }
    json_t *t = swarm_newest_task(r.json);
    json_t *st = json_object_get(t, "Status");
    const char *state = json_string_value(json_object_get(st, "State"));
    const char *msg = json_string_value(json_object_get(st, "Err"));
    int rc = 0;
    if (state == NULL) {
        rc = 0; /* no task yet */
    } else if (strcmp(state, "running") == 0) {
        *node = arena_strdup(a, json_string_value(json_object_get(t, "NodeID")));
        rc = *node != NULL && (*node)[0] ? 1 : 0;
    } else if (strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0 ||
               strcmp(state, "complete") == 0 || strcmp(state, "shutdown") == 0 ||
               strcmp(state, "orphaned") == 0 || strcmp(state, "remove") == 0 ||
               (strcmp(state, "pending") == 0 && msg != NULL && msg[0] != '\0')) {
        rc = swarm_task_failed(t, state, spec, err);
    }
    json_decref(r.json);
    return rc;
}

/* Wait until the task runs; then *node holds its node id. */
static int swarm_wait_running(struct swarm *s, arena_t *a, const char *service_id,
                              const struct backend_spec *spec, int64_t deadline, int64_t timeout_s,
                              const char **node, struct cc_error *err)
{
    int64_t step = SWARM_POLL_FIRST_MS;
    for (;;) {
        int rc = swarm_task_state(s, a, service_id, spec, node, err);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        int64_t left = deadline - swarm_now_ms();
        if (left <= 0)
            return err_set(err, ERR_START_FAILED, "the task was not running within %lld s",
                           (long long)timeout_s);
        swarm_sleep_ms(step < left ? step : left);
        step = step * 2 > SWARM_POLL_MAX_MS ? SWARM_POLL_MAX_MS : step * 2;
    }
}

/* Fill where the task runs: the node's address (probe) and public host. */
static int swarm_node_where(struct swarm *s, arena_t *a, const char *node_id,
                            struct swarm_task *where, struct cc_error *err)
{
    struct curlx_reply r;
    if (swarm_get(s, a, arena_printf(a, "/nodes/%s", curlx_urlencode(a, node_id)), &r, err) < 0)
        return -1;
    int rc = 0;
    const char *addr =
        json_string_value(json_object_get(json_object_get(r.json, "Status"), "Addr"));
    const char *pub = json_string_value(json_object_get(
        json_object_get(json_object_get(r.json, "Spec"), "Labels"), SWARM_PUBLIC_HOST_LABEL));
    const char *hn =
        json_string_value(json_object_get(json_object_get(r.json, "Description"), "Hostname"));
    if (r.status != 200 || addr == NULL || addr[0] == '\0') {
        rc = r.status == 200 ? err_set(err, ERR_START_FAILED,
                                       "the node running the task has "
                                       "no address")
                             : swarm_status_error(err, "inspect the node", &r);
    } else {
        where->node_id = node_id;
        where->probe = arena_strdup(a, addr);
        where->host = arena_strdup(a, pub != NULL && pub[0] != '\0' ? pub : addr);
        where->node_name = arena_printf(a, "%s (%s)", hn != NULL ? hn : node_id, addr);
    }
    json_decref(r.json);
    return rc;
}

/* Probe one port in slices until deadline, checking the task between slices. */
static int swarm_wait_port(struct swarm *s, arena_t *a, const char *service_id,
                           const struct backend_spec *spec, const struct swarm_task *where,
                           const struct backend_port *port, int64_t deadline, struct cc_error *err)
{
    for (int64_t slice_ms = SWARM_SLICE_MS;; slice_ms *= 2) {
        int64_t left = deadline - swarm_now_ms();
        if (left <= 0)
            return 1;
        if (slice_ms > SWARM_SLICE_MAX_MS)
            slice_ms = SWARM_SLICE_MAX_MS;
        struct cc_error probe;
        err_clear(&probe);
        int slice = (int)(left < slice_ms ? left : slice_ms);
        if (backend_wait_ready(where->probe, port->host_port, port->proto, slice, &probe) == 0)
            return 0;
        if (probe.code != ERR_START_FAILED) {
            *err = probe;
            return -1;
        }
        const char *node = NULL;
        int rc = swarm_task_state(s, a, service_id, spec, &node, err);
        if (rc < 0)
            return -1;
        if (rc == 0) /* no longer running, not failed either: it is being replaced */
            return err_set(err, ERR_START_FAILED, "the task stopped running on %s",
                           where->node_name);
    }
}

static int swarm_wait_ports(struct swarm *s, arena_t *a, const char *service_id,
                            const struct backend_spec *spec, const struct swarm_task *where,
                            int64_t deadline, int64_t timeout_s, struct cc_error *err)
{
    for (size_t i = 0; i < spec->nports; i++) {
        int rc = swarm_wait_port(s, a, service_id, spec, where, &spec->ports[i], deadline, err);
        if (rc == 1)
            return err_set(err, ERR_START_FAILED, "port %d did not answer within %lld s",
                           spec->ports[i].internal, (long long)timeout_s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int swarm_check_spec(arena_t *a, const struct cc_config *cfg,
                            const struct backend_spec *spec, struct placement *global,
                            struct placement *own, struct cc_error *err)
{
    char why[160];
    if (spec->name == NULL || spec->image == NULL || spec->image[0] == '\0' ||
        spec->nports > BACKEND_MAX_PORTS)
        return err_set(err, ERR_INTERNAL, "incomplete container spec");
    for (size_t i = 0; i < spec->nports; i++) {
        const struct backend_port *p = &spec->ports[i];
        if (p->internal < 1 || p->internal > 65535 || p->host_port < 1 || p->host_port > 65535)
            return err_set(err, ERR_INTERNAL, "container spec has a port out of range");
    }
    if (placement_parse(a, cfg->swarm_placement, global, why, sizeof(why)) < 0)
        return err_set(err, ERR_INTERNAL, "swarm_placement: %s", why);
    if (placement_parse(a, spec->placement, own, why, sizeof(why)) < 0)
        return err_set(err, ERR_CHALLENGE_MISCONFIGURED, "the challenge's placement: %s", why);
    return 0;
}

static int swarm_start(struct backend *b, arena_t *a, const struct backend_spec *spec,
                       struct backend_started *out, struct cc_error *err)
{
    struct swarm *s = b->impl;
    const struct cc_config *cfg = b->cfg;
    struct placement global, own;
    bool net = cfg->swarm_network_per_container != 0;
    if (swarm_check_spec(a, cfg, spec, &global, &own, err) < 0 ||
        swarm_image_present(s, a, spec->image, err) < 0)
        return -1;
    int64_t timeout_s = cfg->ready_timeout_seconds > 0 ? cfg->ready_timeout_seconds : 30;
    int64_t deadline = swarm_now_ms() + timeout_s * 1000;
    if (net && swarm_network_create(s, a, cfg, spec, err) < 0)
        return -1;
    json_t *body = swarm_service_body(a, cfg, spec, &global, &own);
    const char *id = NULL, *node = NULL;
    int rc = swarm_create(s, a, body, spec, &id, err);
    json_decref(body);
    struct swarm_task where = {0};
    if (rc == 0 && (swarm_wait_running(s, a, id, spec, deadline, timeout_s, &node, err) < 0 ||
                    swarm_node_where(s, a, node, &where, err) < 0 ||
                    swarm_wait_ports(s, a, id, spec, &where, deadline, timeout_s, err) < 0))
        rc = -1;
    if (rc < 0) {
        swarm_remove_quietly(s, a, spec->name, net);
        return -1;
    }
    out->engine_id = id;
    out->host = where.host;
    log_debug("swarm: %s runs on node %s", spec->name, where.node_name);
    return 0;
}

/* ---- stop, inspect, list, ping ---------------------------------------------- */

static int swarm_stop(struct backend *b, const char *name, struct cc_error *err)
{
    arena_t *a = arena_new(4096);
    int rc = swarm_remove(b->impl, a, name, true, err);
    arena_free(a);
    return rc;
}

/* RFC 3339 -> unix seconds; 0 if bad. */
static int64_t swarm_parse_time(const char *t)
{
    int y, mo, day, h, mi, sec;
    if (t == NULL || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &day, &h, &mi, &sec) != 6)
        return 0;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = day,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    return (int64_t)timegm(&tm); /* the engine writes UTC ("Z") */
}

static int64_t swarm_label_int(json_t *labels, const char *key)
{
    char name[64];
    snprintf(name, sizeof(name), SWARM_LABEL "%s", key);
    const char *v = json_string_value(json_object_get(labels, name));
    if (v == NULL || !isdigit((unsigned char)v[0]))
        return -1;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    return *end == '\0' ? (int64_t)n : -1;
}

static const char *swarm_str(arena_t *a, json_t *v)
{
    const char *t = json_string_value(v);
    return arena_strdup(a, t != NULL ? t : "");
}

/* The nodes that are up ("ready"), as a JSON object id -> true (caller decrefs). */
static json_t *swarm_ready_nodes(struct swarm *s, arena_t *a, struct cc_error *err)
{
    struct curlx_reply r;
    if (swarm_get(s, a, "/nodes", &r, err) < 0)
        return NULL;
    if (r.status != 200 || !json_is_array(r.json)) {
        swarm_status_error(err, "list the nodes", &r);
        json_decref(r.json);
        return NULL;
    }
    json_t *ready = json_object(), *n;
    size_t i;
    json_array_foreach(r.json, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "ID"));
        const char *st = json_string_value(json_object_get(json_object_get(n, "Status"), "State"));
        if (id != NULL && st != NULL && strcmp(st, "ready") == 0)
            json_object_set_new(ready, id, json_true());
    }
    json_decref(r.json);
    return ready;
}

/* The service's state from the tasks: "running" only when a task that should
 * run does run on a node that is up; else the task's own state, "node-down",
 * or "no-task". */
static const char *swarm_service_state(arena_t *a, json_t *tasks, const char *service_id,
                                       json_t *ready)
{
    json_t *t, *newest = NULL;
    size_t i;
    json_array_foreach(tasks, i, t)
    {
        const char *sid = json_string_value(json_object_get(t, "ServiceID"));
        if (sid == NULL || strcmp(sid, service_id) != 0)
            continue;
        if (newest == NULL || swarm_created_ns(t) > swarm_created_ns(newest))
            newest = t;
    }
    if (newest == NULL)
        return "no-task";
    const char *state =
        json_string_value(json_object_get(json_object_get(newest, "Status"), "State"));
    const char *desired = json_string_value(json_object_get(newest, "DesiredState"));
    const char *node = json_string_value(json_object_get(newest, "NodeID"));
    if (state == NULL)
        return "unknown";
    if (strcmp(state, "running") == 0 && (node == NULL || json_object_get(ready, node) == NULL))
        return "node-down";
    if (strcmp(state, "running") == 0 && desired != NULL && strcmp(desired, "running") != 0)
        return "stopping";
    return arena_strdup(a, state);
}

static void swarm_fill(arena_t *a, json_t *svc, json_t *tasks, json_t *ready,
                       struct backend_object *o)
{
    json_t *spec = json_object_get(svc, "Spec");
    json_t *labels = json_object_get(spec, "Labels");
    memset(o, 0, sizeof(*o));
    o->engine_id = swarm_str(a, json_object_get(svc, "ID"));
    o->name = swarm_str(a, json_object_get(spec, "Name"));
    o->instance_id = swarm_label_int(labels, "instance");
    o->account_id = swarm_label_int(labels, "account");
    o->challenge_id = swarm_label_int(labels, "challenge");
    o->expires = swarm_label_int(labels, "expires");
    o->created = swarm_parse_time(json_string_value(json_object_get(svc, "CreatedAt")));
    o->status = swarm_service_state(a, tasks, o->engine_id, ready);
    o->running = strcmp(o->status, "running") == 0;
}

/* Tasks and ready nodes, for inspect and list. filter: a tasks filter or NULL. */
static int swarm_task_view(struct swarm *s, arena_t *a, json_t *filter, json_t **tasks,
                           json_t **ready, struct cc_error *err)
{
    struct curlx_reply r;
    const char *path =
        filter != NULL ? arena_printf(a, "/tasks?filters=%s", swarm_filters(a, filter)) : "/tasks";
    *tasks = *ready = NULL;
    if (swarm_get(s, a, path, &r, err) < 0)
        return -1;
    if (r.status != 200 || !json_is_array(r.json)) {
        int rc = swarm_status_error(err, "list tasks", &r);
        json_decref(r.json);
        return rc;
    }
    *tasks = r.json;
    *ready = swarm_ready_nodes(s, a, err);
    if (*ready == NULL) {
        json_decref(*tasks);
        *tasks = NULL;
        return -1;
    }
    return 0;
}

static int swarm_inspect(struct backend *b, arena_t *a, const char *name,
                         struct backend_object *out, bool *found, struct cc_error *err)
{
    struct swarm *s = b->impl;
    memset(out, 0, sizeof(*out));
    *found = false;
    struct curlx_reply r;
    if (swarm_get(s, a, arena_printf(a, "/services/%s", curlx_urlencode(a, name)), &r, err) < 0)
        return -1;
    int rc = 0;
    const char *sid = json_string_value(json_object_get(r.json, "ID"));
    if (r.status == 200 && sid != NULL) {
        json_t *tasks, *ready;
        rc = swarm_task_view(s, a, json_pack("{s:[s]}", "service", sid), &tasks, &ready, err);
        if (rc == 0) {
            swarm_fill(a, r.json, tasks, ready, out);
            *found = true;
        }
        json_decref(tasks);
        json_decref(ready);
    } else if (r.status != 404) {
        rc = swarm_status_error(err, "inspect the service", &r);
    }
    json_decref(r.json);
    return rc;
}

/* Our site's label filter, for services and networks. */
static json_t *swarm_site_filter(const struct cc_config *cfg)
{
    return json_pack("{s:[s, s+]}", "label", SWARM_LABEL "instance",
                     SWARM_LABEL "site=", cfg->site);
}

/* Networks of ours with no service of the same name: left by a stop while a
 * node was down. Listed with instance -1, so reconciliation removes them
 * (after orphan_grace_seconds) through stop, which also removes networks. */
static void swarm_list_networks(struct swarm *s, arena_t *a, const struct cc_config *cfg,
                                json_t *services, struct backend_object **out, size_t *n,
                                size_t cap)
{
    struct curlx_reply r;
    struct cc_error e;
    err_clear(&e);
    const char *path =
        arena_printf(a, "/networks?filters=%s", swarm_filters(a, swarm_site_filter(cfg)));
    if (swarm_get(s, a, path, &r, &e) < 0)
        return;
    size_t i, j;
    json_t *net, *svc;
    json_array_foreach(r.json, i, net)
    {
        const char *nname = json_string_value(json_object_get(net, "Name"));
        bool has = false;
        json_array_foreach(services, j, svc)
        {
            const char *sname =
                json_string_value(json_object_get(json_object_get(svc, "Spec"), "Name"));
            has = has || (sname != NULL && nname != NULL && strcmp(sname, nname) == 0);
        }
        if (has || nname == NULL || *n >= cap)
            continue;
        struct backend_object *o = &(*out)[(*n)++];
        memset(o, 0, sizeof(*o));
        o->engine_id = swarm_str(a, json_object_get(net, "Id"));
        o->name = arena_strdup(a, nname);
        o->instance_id = -1;
        o->account_id = o->challenge_id = o->expires = -1;
        o->created = swarm_parse_time(json_string_value(json_object_get(net, "Created")));
        o->status = "network";
    }
    json_decref(r.json);
}

static int swarm_list(struct backend *b, arena_t *a, struct backend_object **out, size_t *n,
                      struct cc_error *err)
{
    struct swarm *s = b->impl;
    *out = NULL;
    *n = 0;
    struct curlx_reply r;
    const char *path =
        arena_printf(a, "/services?filters=%s", swarm_filters(a, swarm_site_filter(b->cfg)));
    if (swarm_get(s, a, path, &r, err) < 0)
        return -1;
    if (r.status != 200 || !json_is_array(r.json)) {
        int rc = swarm_status_error(err, "list services", &r);
        json_decref(r.json);
        return rc;
    }
    json_t *tasks = NULL, *ready = NULL;
    int rc = 0;
    size_t count = json_array_size(r.json);
    if (count > 0)
        rc = swarm_task_view(s, a, json_pack("{s:[s]}", "desired-state", "running"), &tasks, &ready,
                             err);
    if (rc == 0) {
        size_t cap = count + 256;
        *out = arena_alloc(a, cap * sizeof(**out));
        for (size_t i = 0; i < count; i++)
            swarm_fill(a, json_array_get(r.json, i), tasks, ready, &(*out)[i]);
        *n = count;
        if (b->cfg->swarm_network_per_container)
            swarm_list_networks(s, a, b->cfg, r.json, out, n, cap);
    }
    json_decref(tasks);
    json_decref(ready);
    json_decref(r.json);
    return rc;
}

/* The engine answers, and it is a swarm manager. */
static int swarm_ping(struct backend *b, struct cc_error *err)
{
    arena_t *a = arena_new(4096);
    struct swarm *s = b->impl;
    struct curlx_reply r;
    int rc = curlx_request(s->cx, a, "GET", SWARM_API "/_ping", NULL, false, &r, err);
    if (rc == 0 && r.status != 200)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "engine answered ping with HTTP %ld", r.status);
    if (rc == 0 && swarm_get(s, a, "/swarm", &r, err) == 0) {
        if (r.status != 200)
            rc = err_set(err, ERR_ENGINE_UNAVAILABLE,
                         "the engine is not a swarm manager "
                         "(HTTP %ld)",
                         r.status);
        json_decref(r.json);
    } else if (rc == 0) {
        rc = -1;
    }
    arena_free(a);
    return rc;
}

/* ---- open / destroy ---------------------------------------------------------- */

static int swarm_open(struct backend *b, struct cc_error *err)
{
    const struct cc_config *cfg = b->cfg;
    struct swarm *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(err, ERR_INTERNAL, "out of memory");
    const char *endpoint =
        cfg->swarm_endpoint != NULL && cfg->swarm_endpoint[0] != '\0'     ? cfg->swarm_endpoint
        : cfg->docker_endpoint != NULL && cfg->docker_endpoint[0] != '\0' ? cfg->docker_endpoint
                                                                          : SWARM_DEFAULT_ENDPOINT;
    s->cx = curlx_open(endpoint, cfg->docker_tls_ca, cfg->docker_tls_cert, cfg->docker_tls_key,
                       (long)cfg->docker_timeout_seconds, err);
    if (s->cx == NULL) {
        free(s);
        return -1;
    }
    b->impl = s;
    return 0;
}

static void swarm_destroy(struct backend *b)
{
    struct swarm *s = b->impl;
    if (s == NULL)
        return;
    curlx_close(s->cx);
    free(s);
    b->impl = NULL;
}

const struct backend_ops backend_swarm_ops = {
    .name = "swarm",
    .open = swarm_open,
    .ping = swarm_ping,
    .start = swarm_start,
    .stop = swarm_stop,
    .inspect = swarm_inspect,
    .list = swarm_list,
    .destroy = swarm_destroy,
};

/* backend_docker.c: the single-engine backend. One container per instance,
 * created, started and removed through the Docker Engine API (/v1.41) with
 * curlx, hardened (all capabilities dropped, no-new-privileges, memory, CPU
 * and process limits) and labelled so the reaper can reconcile by label.
 *
 * It must not know other backends, must not put the flag or the environment
 * into an error message or a log line (engine messages are logged only when
 * they do not contain the flag), and must leave nothing behind when a start
 * fails: whatever it created is force-removed before it returns. */
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

#define DOCKER_API "/v1.41"
#define DOCKER_DEFAULT_ENDPOINT "unix:///var/run/docker.sock"
#define DOCKER_LABEL "ctfd-containers."
/* Probe this long, then check that the container still runs; the slice doubles
 * up to the maximum, so an early exit shows at once and a slow service still
 * gets long attempts. */
#define DOCKER_SLICE_MS 200
#define DOCKER_SLICE_MAX_MS 3200

struct docker {
    struct curlx *cx;
    char *probe_host; /* where published ports answer, seen from this process */
};

/* ---- plumbing --------------------------------------------------------------- */

static int64_t docker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int docker_call(struct docker *d, arena_t *a, const char *method, const char *path,
                       const json_t *body, struct curlx_reply *r, struct cc_error *err)
{
    return curlx_request(d->cx, a, method, arena_printf(a, DOCKER_API "%s", path), body, true,
                         r, err);
}

/* The engine's "message" field, or "" (for matching and logging, never for users). */
static const char *docker_message(const struct curlx_reply *r)
{
    const char *m = json_string_value(json_object_get(r->json, "message"));
    return m != NULL ? m : "";
}

/* Log what the engine said, unless it repeats the flag (then say only that). */
static void docker_log_refusal(const char *what, const struct curlx_reply *r, const char *flag)
{
    const char *msg = docker_message(r);
    if (flag != NULL && flag[0] != '\0' && strstr(msg, flag) != NULL)
        msg = "(engine message withheld: it contains the flag)";
    log_warn("docker: %s: HTTP %ld: %.300s", what, r->status, msg);
}

/* An unexpected status outside a start: engine trouble (5xx) or our mistake (4xx). */
static int docker_status_error(struct cc_error *err, const char *what,
                               const struct curlx_reply *r)
{
    docker_log_refusal(what, r, NULL);
    if (r->status >= 500)
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "engine failed to %s (HTTP %ld)", what,
                       r->status);
    return err_set(err, ERR_INTERNAL, "engine refused to %s (HTTP %ld)", what, r->status);
}

/* DELETE ?force=1&v=1: gone, already gone, or being removed are all success. */
static int docker_remove(struct docker *d, arena_t *a, const char *name_or_id,
                         struct cc_error *err)
{
    struct curlx_reply r;
    const char *path =
        arena_printf(a, "/containers/%s?force=1&v=1", curlx_urlencode(a, name_or_id));
    if (docker_call(d, a, "DELETE", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status == 409 && strstr(docker_message(&r), "already in progress") != NULL)
        rc = 0;
    else if (r.status != 204 && r.status != 404 && r.status != 200)
        rc = docker_status_error(err, "remove the container", &r);
    json_decref(r.json);
    return rc;
}

/* Remove after a failed start; the start's own error stays the one reported. */
static void docker_remove_quietly(struct docker *d, arena_t *a, const char *name_or_id)
{
    struct cc_error rm;
    err_clear(&rm);
    if (docker_remove(d, a, name_or_id, &rm) < 0)
        log_warn("docker: could not remove %.80s after a failed start: %s", name_or_id,
                 err_message(&rm));
}

/* ---- the create request ------------------------------------------------------ */

/* "CHOWN, SETUID" -> ["CHOWN","SETUID"]; blanks and empty items are skipped. */
static json_t *docker_cap_add(const char *list)
{
    json_t *caps = json_array();
    const char *p = list, *item;
    size_t n;
    while (route_list_next(&p, &item, &n))
        json_array_append_new(caps, json_stringn(item, n));
    return caps;
}

/* Fills ExposedPorts into `exposed` and returns HostConfig.PortBindings. */
static json_t *docker_port_bindings(const struct cc_config *cfg, const struct backend_spec *spec,
                                    json_t *exposed)
{
    json_t *bindings = json_object();
    for (size_t i = 0; i < spec->nports; i++) {
        char key[24], host_port[16];
        snprintf(key, sizeof(key), "%d/tcp", spec->ports[i].internal);
        snprintf(host_port, sizeof(host_port), "%d", spec->ports[i].host_port);
        json_object_set_new(exposed, key, json_object());
        json_t *binding = json_object();
        json_object_set_new(binding, "HostIp",
                            json_string(cfg->bind_address ? cfg->bind_address : ""));
        json_object_set_new(binding, "HostPort", json_string(host_port));
        json_t *list = json_array();
        json_array_append_new(list, binding);
        json_object_set_new(bindings, key, list);
    }
    return bindings;
}

static void docker_limits(json_t *hc, const struct cc_config *cfg,
                          const struct backend_spec *spec)
{
    int64_t memory = spec->memory_bytes > 0 ? spec->memory_bytes
                                            : cfg->default_memory_mb * 1024 * 1024;
    int64_t cpus = spec->nano_cpus > 0 ? spec->nano_cpus
                                       : (int64_t)(cfg->default_cpus * 1e9 + 0.5);
    int64_t pids = spec->pids_limit > 0 ? spec->pids_limit : cfg->pids_limit;
    if (memory > 0) {
        json_object_set_new(hc, "Memory", json_integer(memory));
        /* No swap beyond the memory limit. */
        json_object_set_new(hc, "MemorySwap", json_integer(memory));
    }
    if (cpus > 0)
        json_object_set_new(hc, "NanoCpus", json_integer(cpus));
    if (pids > 0)
        json_object_set_new(hc, "PidsLimit", json_integer(pids));
}

static bool docker_isolated(const struct cc_config *cfg)
{
    return cfg->network_mode != NULL && strcmp(cfg->network_mode, "isolated") == 0;
}

static json_t *docker_host_config(const struct cc_config *cfg, const struct backend_spec *spec,
                                  json_t *exposed)
{
    json_t *hc = json_object();
    json_object_set_new(hc, "PortBindings", docker_port_bindings(cfg, spec, exposed));
    docker_limits(hc, cfg, spec);
    json_object_set_new(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges:true"));
    json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
    json_object_set_new(hc, "CapAdd",
                        docker_cap_add(spec->cap_add != NULL ? spec->cap_add : cfg->cap_add));
    if (spec->read_only) {
        json_object_set_new(hc, "ReadonlyRootfs", json_true());
        json_object_set_new(hc, "Tmpfs", json_pack("{s:s}", "/tmp", "rw,nosuid,nodev,size=16m"));
    }
    if (docker_isolated(cfg))
        json_object_set_new(hc, "NetworkMode", json_string(spec->name));
    json_object_set_new(hc, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
    json_object_set_new(hc, "Init", json_false());
    json_object_set_new(hc, "Privileged", json_false());
    return hc;
}

/* The whole create body; the flag goes only here, as one Env entry. */
static json_t *docker_create_body(arena_t *a, const struct cc_config *cfg,
                                  const struct backend_spec *spec)
{
    json_t *body = json_object();
    json_t *exposed = json_object();
    json_object_set_new(body, "Image", json_string(spec->image));
    json_t *env = json_array();
    if (spec->flag_env != NULL && spec->flag_env[0] != '\0' && spec->flag != NULL)
        json_array_append_new(env, json_string(arena_printf(a, "%s=%s", spec->flag_env,
                                                            spec->flag)));
    json_object_set_new(body, "Env", env);
    json_object_set_new(body, "Labels", backend_labels(cfg, spec));
    json_object_set_new(body, "HostConfig", docker_host_config(cfg, spec, exposed));
    json_object_set_new(body, "ExposedPorts", exposed);
    return body;
}

/* ---- the container's own network -------------------------------------------- */

/* The bridge's interface name: "ccp-" (private) or "cci-" (internet allowed)
 * and 11 characters of the route, 15 in all (IFNAMSIZ). scripts/isolation-
 * firewall matches these prefixes and nothing else. */
static const char *docker_bridge_name(arena_t *a, const struct backend_spec *spec)
{
    const char *route = spec->route;
    if (route == NULL || route[0] == '\0') {
        /* No route (a caller outside the API): 11 characters from the object's name. */
        uint64_t h = 1469598103934665603ull; /* FNV-1a */
        for (const char *p = spec->name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        char *r = arena_alloc(a, 12);
        for (int i = 0; i < 11; i++, h >>= 5)
            r[i] = "abcdefghijklmnopqrstuvwxyz234567"[h & 31];
        route = r;
    }
    return arena_printf(a, "cc%c-%.11s", spec->allow_internet ? 'i' : 'p', route);
}

/* A random network of cfg->network_prefix bits inside cfg->network_pool; NULL
 * when no pool is set (the engine's default-address-pools decide). */
static const char *docker_subnet(arena_t *a, const struct cc_config *cfg)
{
    uint32_t base;
    int pool_prefix;
    if (cfg->network_pool == NULL || cfg->network_pool[0] == '\0' ||
        config_parse_cidr(cfg->network_pool, &base, &pool_prefix) < 0)
        return NULL;
    int bits = (int)cfg->network_prefix - pool_prefix;
    uint32_t count = bits >= 31 ? 0x80000000u : (uint32_t)1 << bits;
    uint32_t net = base + (arc4random_uniform(count) << (32 - (int)cfg->network_prefix));
    return arena_printf(a, "%u.%u.%u.%u/%lld", net >> 24, (net >> 16) & 255, (net >> 8) & 255,
                        net & 255, (long long)cfg->network_prefix);
}

static json_t *docker_network_body(arena_t *a, const struct cc_config *cfg,
                                   const struct backend_spec *spec)
{
    json_t *body = json_object();
    json_object_set_new(body, "Name", json_string(spec->name));
    json_object_set_new(body, "Driver", json_string("bridge"));
    json_object_set_new(body, "CheckDuplicate", json_true());
    json_object_set_new(body, "Labels", backend_labels(cfg, spec));
    json_object_set_new(body, "Options",
                        json_pack("{s:s, s:s, s:s}", "com.docker.network.bridge.name",
                                  docker_bridge_name(a, spec),
                                  "com.docker.network.bridge.enable_icc", "false",
                                  "com.docker.network.bridge.enable_ip_masquerade",
                                  spec->allow_internet ? "true" : "false"));
    const char *subnet = docker_subnet(a, cfg);
    if (subnet != NULL)
        json_object_set_new(
            body, "IPAM",
            json_pack("{s:s, s:[{s:s}]}", "Driver", "default", "Config", "Subnet", subnet));
    return body;
}

/* DELETE /networks/NAME: gone or already gone is success. */
static int docker_network_remove(struct docker *d, arena_t *a, const char *name,
                                 struct cc_error *err)
{
    struct curlx_reply r;
    const char *path = arena_printf(a, "/networks/%s", curlx_urlencode(a, name));
    if (docker_call(d, a, "DELETE", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status != 204 && r.status != 404 && r.status != 200)
        rc = docker_status_error(err, "remove the network", &r);
    json_decref(r.json);
    return rc;
}

/* One create: 0 done, 1 the name exists, 2 the subnet overlaps, -1 with err. */
static int docker_network_create_once(struct docker *d, const struct cc_config *cfg, arena_t *a,
                                      const struct backend_spec *spec, struct cc_error *err)
{
    struct curlx_reply r;
    json_t *body = docker_network_body(a, cfg, spec);
    int rc = docker_call(d, a, "POST", "/networks/create", body, &r, err);
    json_decref(body);
    if (rc < 0) {
        if (r.maybe_applied)
            docker_network_remove(d, a, spec->name, &(struct cc_error){0});
        return -1;
    }
    const char *msg = docker_message(&r);
    if (r.status == 201)
        rc = 0;
    else if (r.status == 409 || strstr(msg, "already exists") != NULL)
        rc = 1;
    else if (strstr(msg, "non-overlapping") != NULL || strstr(msg, "available") != NULL) {
        /* "could not find an available, non-overlapping IPv4 address pool": the
         * engine's own pools are full (no network_pool set). */
        rc = err_set(err, ERR_START_FAILED,
                     "no address space is left for another network "
                     "(network_pool or the engine's pools)");
        err->temporary = true;
    } else if (strstr(msg, "overlap") != NULL) {
        rc = 2; /* "Pool overlaps with other one on this address space" */
    } else {
        docker_log_refusal("create the network", &r, NULL);
        rc = err_set(err, ERR_START_FAILED, "the engine refused to create the network (HTTP %ld)",
                     r.status);
    }
    json_decref(r.json);
    return rc;
}

/* The container's own bridge network, named like the container. A leftover
 * of the same name (a crashed start) is removed first; a subnet another
 * network holds is swapped for another random one. */
static int docker_network_create(struct docker *d, const struct cc_config *cfg, arena_t *a,
                                 const struct backend_spec *spec, struct cc_error *err)
{
    for (int attempt = 0; attempt < 12; attempt++) {
        int rc = docker_network_create_once(d, cfg, a, spec, err);
        if (rc <= 0)
            return rc;
        if (rc == 1) {
            log_info("docker: removing a leftover network named %s", spec->name);
            docker_remove_quietly(d, a, spec->name);
            if (docker_network_remove(d, a, spec->name, err) < 0)
                return -1;
        }
    }
    err_set(err, ERR_START_FAILED, "no free subnet found for the container's network");
    err->temporary = true;
    return -1;
}

/* ---- start ------------------------------------------------------------------- */

/* One create: 0 with *id, 1 on a name conflict, -1 with err. */
static int docker_create_once(struct docker *d, arena_t *a, const char *path, const json_t *body,
                              const struct backend_spec *spec, const char **id,
                              struct cc_error *err)
{
    struct curlx_reply r;
    if (docker_call(d, a, "POST", path, body, &r, err) < 0) {
        if (r.maybe_applied) /* it may exist now: do not leave it behind */
            docker_remove_quietly(d, a, spec->name);
        return -1;
    }
    int rc = 0;
    const char *cid = json_string_value(json_object_get(r.json, "Id"));
    if (r.status == 201 && cid != NULL) {
        *id = arena_strdup(a, cid);
    } else if (r.status == 201) {
        docker_remove_quietly(d, a, spec->name);
        rc = err_set(err, ERR_START_FAILED, "the engine's create reply has no id");
    } else if (r.status == 409) {
        rc = 1;
    } else if (r.status == 404) {
        rc = err_set(err, ERR_IMAGE_MISSING, "image '%.160s' is not on the engine", spec->image);
    } else {
        docker_log_refusal("create", &r, spec->flag);
        rc = err_set(err, ERR_START_FAILED, "the engine refused to create the container (HTTP %ld)",
                     r.status);
    }
    json_decref(r.json);
    return rc;
}

/* Create; a leftover of the same name (from a crashed start) is removed and
 * the create tried once more. */
static int docker_create(struct docker *d, const struct cc_config *cfg, arena_t *a,
                         const struct backend_spec *spec, const char **id, struct cc_error *err)
{
    json_t *body = docker_create_body(a, cfg, spec);
    const char *path =
        arena_printf(a, "/containers/create?name=%s", curlx_urlencode(a, spec->name));
    int rc = docker_create_once(d, a, path, body, spec, id, err);
    if (rc == 1) {
        log_info("docker: removing a leftover container named %s", spec->name);
        rc = docker_remove(d, a, spec->name, err);
        if (rc == 0)
            rc = docker_create_once(d, a, path, body, spec, id, err);
    }
    if (rc == 1) {
        rc = err_set(err, ERR_START_FAILED, "a container named %s is still being removed",
                     spec->name);
        err->temporary = true;
    }
    json_decref(body);
    return rc;
}

/* The host port an engine "port in use" message names, else the first one. */
static int docker_clashing_port(const char *msg, const struct backend_spec *spec)
{
    for (size_t i = 0; i < spec->nports; i++) {
        char needle[16];
        snprintf(needle, sizeof(needle), ":%d", spec->ports[i].host_port);
        for (const char *p = strstr(msg, needle); p != NULL; p = strstr(p + 1, needle))
            if (!isdigit((unsigned char)p[strlen(needle)]))
                return spec->ports[i].host_port;
    }
    return spec->nports > 0 ? spec->ports[0].host_port : 0;
}

static int docker_start_container(struct docker *d, arena_t *a, const char *id,
                                  const struct backend_spec *spec, struct cc_error *err)
{
    struct curlx_reply r;
    const char *path = arena_printf(a, "/containers/%s/start", curlx_urlencode(a, id));
    if (docker_call(d, a, "POST", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    const char *msg = docker_message(&r);
    if (r.status == 204 || r.status == 304) {
        rc = 0;
    } else if (strstr(msg, "port is already allocated") != NULL ||
               strstr(msg, "address already in use") != NULL) {
        rc = err_set(err, ERR_START_FAILED, "host port %d is in use",
                     docker_clashing_port(msg, spec));
        err->temporary = true; /* another port will do */
    } else {
        docker_log_refusal("start", &r, spec->flag);
        rc = err_set(err, ERR_START_FAILED, "the engine refused to start the container (HTTP %ld)",
                     r.status);
    }
    json_decref(r.json);
    return rc;
}

/* While waiting for ports: 1 with err when the container is gone or exited,
 * 0 while it runs, -1 with err when the engine cannot say. */
static int docker_check_exited(struct docker *d, arena_t *a, const char *id,
                               struct cc_error *err)
{
    struct curlx_reply r;
    const char *path = arena_printf(a, "/containers/%s/json", curlx_urlencode(a, id));
    if (docker_call(d, a, "GET", path, NULL, &r, err) < 0)
        return -1;
    int rc = 1;
    json_t *state = json_object_get(r.json, "State");
    const char *status = json_string_value(json_object_get(state, "Status"));
    if (r.status == 404)
        err_set(err, ERR_START_FAILED, "the container disappeared while starting");
    else if (json_is_true(json_object_get(state, "OOMKilled")))
        err_set(err, ERR_START_FAILED, "container ran out of memory");
    else if (status != NULL && (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0))
        err_set(err, ERR_START_FAILED, "container exited with code %lld",
                (long long)json_integer_value(json_object_get(state, "ExitCode")));
    else
        rc = 0;
    json_decref(r.json);
    return rc;
}

/* Probe one port in slices until `deadline`, checking between slices that the
 * container still runs. 0 ready, 1 timed out, -1 with err. */
static int docker_wait_port(struct docker *d, arena_t *a, const char *id,
                            const struct backend_port *port, int64_t deadline,
                            struct cc_error *err)
{
    for (int64_t slice_ms = DOCKER_SLICE_MS;; slice_ms *= 2) {
        int64_t left = deadline - docker_now_ms();
        if (left <= 0)
            return 1;
        struct cc_error probe;
        err_clear(&probe);
        if (slice_ms > DOCKER_SLICE_MAX_MS)
            slice_ms = DOCKER_SLICE_MAX_MS;
        int slice = (int)(left < slice_ms ? left : slice_ms);
        if (backend_wait_ready(d->probe_host, port->host_port, port->proto, slice, &probe) == 0)
            return 0;
        if (probe.code != ERR_START_FAILED) {
            *err = probe;
            return -1;
        }
        if (docker_check_exited(d, a, id, err) != 0)
            return -1;
    }
}

static int docker_wait_ports(struct docker *d, const struct cc_config *cfg, arena_t *a,
                             const char *id, const struct backend_spec *spec,
                             struct cc_error *err)
{
    int64_t timeout_s = cfg->ready_timeout_seconds > 0 ? cfg->ready_timeout_seconds : 30;
    int64_t deadline = docker_now_ms() + timeout_s * 1000;
    for (size_t i = 0; i < spec->nports; i++) {
        int rc = docker_wait_port(d, a, id, &spec->ports[i], deadline, err);
        if (rc == 1)
            return err_set(err, ERR_START_FAILED, "port %d did not answer within %lld s",
                           spec->ports[i].internal, (long long)timeout_s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int docker_check_spec(const struct backend_spec *spec, struct cc_error *err)
{
    if (spec->name == NULL || spec->image == NULL || spec->image[0] == '\0' ||
        spec->nports > BACKEND_MAX_PORTS)
        return err_set(err, ERR_INTERNAL, "incomplete container spec");
    for (size_t i = 0; i < spec->nports; i++) {
        const struct backend_port *p = &spec->ports[i];
        if (p->internal < 1 || p->internal > 65535 || p->host_port < 1 || p->host_port > 65535)
            return err_set(err, ERR_INTERNAL, "container spec has a port out of range");
    }
    return 0;
}

static int docker_start(struct backend *b, arena_t *a, const struct backend_spec *spec,
                        struct backend_started *out, struct cc_error *err)
{
    struct docker *d = b->impl;
    const char *id = NULL;
    bool isolated = docker_isolated(b->cfg);
    if (docker_check_spec(spec, err) < 0 ||
        (isolated && docker_network_create(d, b->cfg, a, spec, err) < 0))
        return -1;
    if (docker_create(d, b->cfg, a, spec, &id, err) < 0) {
        if (isolated)
            docker_network_remove(d, a, spec->name, &(struct cc_error){0});
        return -1;
    }
    if (docker_start_container(d, a, id, spec, err) < 0 ||
        docker_wait_ports(d, b->cfg, a, id, spec, err) < 0) {
        docker_remove_quietly(d, a, id);
        if (isolated)
            docker_network_remove(d, a, spec->name, &(struct cc_error){0});
        return -1;
    }
    out->engine_id = id;
    out->host = b->cfg->public_host;
    return 0;
}

/* ---- stop, inspect, list, ping ---------------------------------------------- */

static int docker_stop(struct backend *b, const char *name, struct cc_error *err)
{
    arena_t *a = arena_new(4096);
    int rc = docker_remove(b->impl, a, name, err);
    /* Always, whatever network_mode says now: it may have changed since. */
    if (rc == 0)
        rc = docker_network_remove(b->impl, a, name, err);
    arena_free(a);
    return rc;
}

/* RFC 3339 ("2024-05-01T12:00:00.123456789Z", or with +hh:mm) -> unix seconds; 0 if bad. */
static int64_t docker_parse_time(const char *s)
{
    int y, mo, day, h, mi, sec, used = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &day, &h, &mi, &sec, &used) != 6)
        return 0;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = day,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm);
    const char *p = s + used;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    int oh = 0, om = 0;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
        t -= (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    return t;
}

/* A label holding a non-negative integer; -1 when absent or not a number. */
static int64_t docker_label_int(json_t *labels, const char *key)
{
    char name[64];
    snprintf(name, sizeof(name), DOCKER_LABEL "%s", key);
    const char *v = json_string_value(json_object_get(labels, name));
    if (v == NULL || !isdigit((unsigned char)v[0]))
        return -1;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    return *end == '\0' ? (int64_t)n : -1;
}

static const char *docker_str(arena_t *a, json_t *v)
{
    const char *s = json_string_value(v);
    return arena_strdup(a, s != NULL ? s : "");
}

/* Common part of an inspect or a list entry; name without the leading '/'. */
static void docker_fill_common(arena_t *a, json_t *obj, json_t *name, json_t *labels,
                               struct backend_object *o)
{
    const char *n = json_string_value(name);
    o->engine_id = docker_str(a, json_object_get(obj, "Id"));
    o->name = arena_strdup(a, n == NULL ? "" : n[0] == '/' ? n + 1 : n);
    o->instance_id = docker_label_int(labels, "instance");
    o->account_id = docker_label_int(labels, "account");
    o->challenge_id = docker_label_int(labels, "challenge");
    o->expires = docker_label_int(labels, "expires");
}

static void docker_fill_inspect(arena_t *a, json_t *obj, struct backend_object *o)
{
    json_t *state = json_object_get(obj, "State");
    json_t *labels = json_object_get(json_object_get(obj, "Config"), "Labels");
    docker_fill_common(a, obj, json_object_get(obj, "Name"), labels, o);
    o->running = json_is_true(json_object_get(state, "Running"));
    o->status = docker_str(a, json_object_get(state, "Status"));
    o->created = docker_parse_time(json_string_value(json_object_get(obj, "Created")));
}

static void docker_fill_listed(arena_t *a, json_t *obj, struct backend_object *o)
{
    docker_fill_common(a, obj, json_array_get(json_object_get(obj, "Names"), 0),
                       json_object_get(obj, "Labels"), o);
    o->status = docker_str(a, json_object_get(obj, "State"));
    o->running = strcmp(o->status, "running") == 0;
    o->created = (int64_t)json_integer_value(json_object_get(obj, "Created"));
}

static int docker_inspect(struct backend *b, arena_t *a, const char *name,
                          struct backend_object *out, bool *found, struct cc_error *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    struct curlx_reply r;
    const char *path = arena_printf(a, "/containers/%s/json", curlx_urlencode(a, name));
    if (docker_call(b->impl, a, "GET", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status == 200 && json_is_object(r.json)) {
        docker_fill_inspect(a, r.json, out);
        *found = true;
    } else if (r.status != 404) {
        rc = docker_status_error(err, "inspect the container", &r);
    }
    json_decref(r.json);
    return rc;
}

static int docker_list_networks(struct backend *b, arena_t *a, struct backend_object **out,
                                size_t *n, struct cc_error *err);

static int docker_list(struct backend *b, arena_t *a, struct backend_object **out, size_t *n,
                       struct cc_error *err)
{
    *out = NULL;
    *n = 0;
    struct curlx_reply r;
    /* Our site's containers only: another site on the same engine is not ours. */
    json_t *f = json_pack("{s:[s, s+]}", "label", DOCKER_LABEL "instance", DOCKER_LABEL "site=",
                          b->cfg->site);
    char *ftext = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    const char *filters = curlx_urlencode(a, ftext ? ftext : "{}");
    free(ftext);
    const char *path = arena_printf(a, "/containers/json?all=1&filters=%s", filters);
    if (docker_call(b->impl, a, "GET", path, NULL, &r, err) < 0)
        return -1;
    int rc = 0;
    if (r.status == 200 && json_is_array(r.json)) {
        size_t count = json_array_size(r.json);
        *out = arena_alloc(a, (count ? count : 1) * sizeof(**out));
        for (size_t i = 0; i < count; i++)
            docker_fill_listed(a, json_array_get(r.json, i), &(*out)[i]);
        *n = count;
    } else {
        rc = docker_status_error(err, "list containers", &r);
    }
    json_decref(r.json);
    if (rc == 0)
        rc = docker_list_networks(b, a, out, n, err);
    return rc;
}

static bool docker_listed_name(const struct backend_object *o, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(o[i].name, name) == 0)
            return true;
    return false;
}

/* Our site's networks whose container is gone, appended to the listing as
 * network_only objects (the reaper removes them like orphans). */
static int docker_list_networks(struct backend *b, arena_t *a, struct backend_object **out,
                                size_t *n, struct cc_error *err)
{
    struct curlx_reply r;
    json_t *f = json_pack("{s:[s, s+]}", "label", DOCKER_LABEL "instance",
                          DOCKER_LABEL "site=", b->cfg->site);
    char *ftext = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    const char *path =
        arena_printf(a, "/networks?filters=%s", curlx_urlencode(a, ftext ? ftext : "{}"));
    free(ftext);
    if (docker_call(b->impl, a, "GET", path, NULL, &r, err) < 0)
        return -1;
    if (r.status != 200 || !json_is_array(r.json)) {
        int rc = docker_status_error(err, "list networks", &r);
        json_decref(r.json);
        return rc;
    }
    size_t count = json_array_size(r.json), k = *n;
    struct backend_object *all = arena_alloc(a, (k + count + 1) * sizeof(*all));
    if (k)
        memcpy(all, *out, k * sizeof(*all));
    for (size_t i = 0; i < count; i++) {
        json_t *net = json_array_get(r.json, i);
        const char *name = json_string_value(json_object_get(net, "Name"));
        if (name == NULL || docker_listed_name(all, *n, name))
            continue;
        struct backend_object *o = &all[k++];
        memset(o, 0, sizeof(*o));
        docker_fill_common(a, net, json_object_get(net, "Name"), json_object_get(net, "Labels"), o);
        o->created = docker_parse_time(json_string_value(json_object_get(net, "Created")));
        o->status = "network";
        o->network_only = true;
    }
    *out = all;
    *n = k;
    json_decref(r.json);
    return 0;
}

static int docker_ping(struct backend *b, struct cc_error *err)
{
    arena_t *a = arena_new(1024);
    struct docker *d = b->impl;
    struct curlx_reply r;
    int rc = curlx_request(d->cx, a, "GET", DOCKER_API "/_ping", NULL, false, &r, err);
    if (rc == 0 && r.status != 200)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "engine answered ping with HTTP %ld",
                     r.status);
    arena_free(a);
    return rc;
}

/* ---- open / destroy ---------------------------------------------------------- */

/* Published ports bind to bind_address; probe there unless it means "every
 * address", then the engine's host (tcp://) or loopback (unix socket). */
static const char *docker_probe_host(const struct cc_config *cfg, const char *tcp_host)
{
    const char *bind = cfg->bind_address;
    if (bind != NULL && bind[0] != '\0' && strcmp(bind, "0.0.0.0") != 0 &&
        strcmp(bind, "::") != 0 && strcmp(bind, "[::]") != 0)
        return bind;
    return tcp_host != NULL ? tcp_host : "127.0.0.1";
}

static int docker_open(struct backend *b, struct cc_error *err)
{
    const struct cc_config *cfg = b->cfg;
    struct docker *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return err_set(err, ERR_INTERNAL, "out of memory");
    const char *endpoint = cfg->docker_endpoint != NULL && cfg->docker_endpoint[0] != '\0'
                               ? cfg->docker_endpoint
                               : DOCKER_DEFAULT_ENDPOINT;
    d->cx = curlx_open(endpoint, cfg->docker_tls_ca, cfg->docker_tls_cert, cfg->docker_tls_key,
                       (long)cfg->docker_timeout_seconds, err);
    if (d->cx == NULL) {
        free(d);
        return -1;
    }
    d->probe_host = strdup(docker_probe_host(cfg, curlx_tcp_host(d->cx)));
    if (d->probe_host == NULL) {
        curlx_close(d->cx);
        free(d);
        return err_set(err, ERR_INTERNAL, "out of memory");
    }
    b->impl = d;
    return 0;
}

static void docker_destroy(struct backend *b)
{
    struct docker *d = b->impl;
    if (d == NULL)
        return;
    curlx_close(d->cx);
    free(d->probe_host);
    free(d);
    b->impl = NULL;
}

const struct backend_ops backend_docker_ops = {
    .name = "docker",
    .open = docker_open,
    .ping = docker_ping,
    .start = docker_start,
    .stop = docker_stop,
    .inspect = docker_inspect,
    .list = docker_list,
    .destroy = docker_destroy,
};

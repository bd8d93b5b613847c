/* config.c: the one table of options, loaded from a file then the environment.
 *
 * Each option: name, type, default, unit, range and a one-line doc. A bad
 * value stops start-up with "key: reason". Secrets are masked when printed.
 * Must not: log values, connect anywhere, or keep pointers into its input. */
#include "config.h"
#include "log.h"
#include "route.h"
#include "placement.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum opt_type { T_STR, T_INT, T_OCTAL, T_DOUBLE, T_PORTS, T_BOOL };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    const char *def;
    double min, max;
    const char *unit;
    bool secret;
    const char *doc;
};

#define O(f) offsetof(struct cc_config, f)
static const struct opt opts[] = {
    {"database_host", T_STR, O(database_host), "127.0.0.1", 0, 0, "", false,
     "MariaDB host (ignored when database_socket is set)"},
    {"database_port", T_INT, O(database_port), "3306", 1, 65535, "", false, "MariaDB TCP port"},
    {"database_socket", T_STR, O(database_socket), "", 0, 0, "path", false,
     "MariaDB unix socket; empty = use host and port"},
    {"database_user", T_STR, O(database_user), "ctfd", 0, 0, "", false, "MariaDB user"},
    {"database_password", T_STR, O(database_password), "", 0, 0, "", true, "MariaDB password"},
    {"database_password_file", T_STR, O(database_password_file), "", 0, 0, "path", false,
     "file whose first line is the MariaDB password (overrides database_password)"},
    {"database_name", T_STR, O(database_name), "ctfd", 0, 0, "", false,
     "CTFd's database (ours live beside CTFd's tables, prefixed container_)"},
    {"listen", T_STR, O(listen), "/run/ctfd-containers/fcgi.sock", 0, 0, "path", false,
     "FastCGI unix socket nginx connects to"},
    {"listen_mode", T_OCTAL, O(listen_mode), "0660", 0, 0777, "octal", false,
     "permissions of the socket"},
    {"listen_owner", T_STR, O(listen_owner), "", 0, 0, "user", false,
     "owner of the socket; empty = the running user"},
    {"listen_group", T_STR, O(listen_group), "", 0, 0, "group", false,
     "group of the socket (nginx's workers must be in it); empty = the running group"},
    {"workers", T_INT, O(workers), "4", 1, 256, "processes", false,
     "pre-forked worker processes"},
    {"max_body_bytes", T_INT, O(max_body_bytes), "16384", 64, 1048576, "bytes", false,
     "largest request body accepted (larger: 413)"},
    {"log_level", T_STR, O(log_level), "info", 0, 0, "", false, "debug, info, warn or error"},
    {"pid_file", T_STR, O(pid_file), "", 0, 0, "path", false,
     "write the master's pid here; empty = none"},
    {"backend", T_STR, O(backend), "", 0, 0, "", false,
     "docker, swarm or whale; empty = as whale_enabled says, else docker (a challenge may "
     "override it)"},
    {"docker_endpoint", T_STR, O(docker_endpoint), "unix:///var/run/docker.sock", 0, 0, "", false,
     "Docker Engine API: unix:///path or tcp://host:port"},
    {"docker_tls_ca", T_STR, O(docker_tls_ca), "", 0, 0, "path", false,
     "CA certificate for tcp:// endpoints"},
    {"docker_tls_cert", T_STR, O(docker_tls_cert), "", 0, 0, "path", false,
     "client certificate for tcp:// endpoints"},
    {"docker_tls_key", T_STR, O(docker_tls_key), "", 0, 0, "path", false,
     "client key for tcp:// endpoints"},
    {"docker_timeout_seconds", T_INT, O(docker_timeout_seconds), "30", 1, 600, "s", false,
     "timeout of one Engine API call"},
    {"public_host", T_STR, O(public_host), "localhost", 0, 0, "", false,
     "host name players connect to"},
    {"bind_address", T_STR, O(bind_address), "0.0.0.0", 0, 0, "", false,
     "host address published ports bind to"},
    {"port_range", T_PORTS, O(port_min), "30000-60000", 1, 65535, "ports", false,
     "host ports handed to containers, MIN-MAX"},
    {"ready_timeout_seconds", T_INT, O(ready_timeout_seconds), "20", 1, 600, "s", false,
     "a start fails if a port gives no answer in this time"},
    {"default_memory_mb", T_INT, O(default_memory_mb), "256", 4, 1048576, "MiB", false,
     "memory limit when the challenge sets none"},
    {"default_cpus", T_DOUBLE, O(default_cpus), "0.5", 0.01, 1024, "CPUs", false,
     "CPU limit when the challenge sets none"},
    {"pids_limit", T_INT, O(pids_limit), "256", 8, 1000000, "processes", false,
     "process limit inside each container"},
    {"cap_add", T_STR, O(cap_add), "CHOWN,SETUID,SETGID,NET_BIND_SERVICE", 0, 0, "", false,
     "capabilities kept after dropping all"},
    {"site", T_STR, O(site), "ctfd-containers", 0, 0, "", false,
     "this site's name: engine objects are named SITE-ID and labelled ctfd-containers.site=SITE; "
     "sites sharing an engine need different names"},
    {"ctfd_admin_stylesheets", T_STR, O(ctfd_admin_stylesheets),
     "/themes/admin/static/assets/main-css-CoszOyzj.css,"
     "/themes/admin/static/assets/fonts-css-B0NUqHPX.css,"
     "/themes/admin/static/assets/admin-css-Byz8fAWo.css",
     0, 0, "URLs", false,
     "CTFd's admin stylesheets the admin page links (CTFd 3.8.7's; another CTFd release names "
     "them differently: see its themes/admin/static/assets)"},
    {"max_containers_per_account", T_INT, O(max_containers_per_account), "1", 1, 1000, "", false,
     "live containers per account (team or user), over all challenges"},
    {"max_containers", T_INT, O(max_containers), "0", 0, 1000000, "", false,
     "live containers in all; 0 = no global limit"},
    {"max_renewals", T_INT, O(max_renewals), "5", 0, 1000, "", false,
     "extensions per container (a challenge may override it)"},
    {"cooldown_seconds", T_INT, O(cooldown_seconds), "300", 0, 86400, "s", false,
     "wait between start, revert and extend of one account (never applies to stop)"},
    {"timeout_seconds", T_INT, O(timeout_seconds), "3600", 30, 604800, "s", false,
     "lifetime of a container (a challenge may override it)"},
    {"extend_seconds", T_INT, O(extend_seconds), "3600", 30, 604800, "s", false,
     "time an extend adds"},
    {"flag_key_file", T_STR, O(flag_key_file), "/var/lib/ctfd-containers/flag.key", 0, 0, "path",
     false, "master key of the flags; created 0600 when absent; share it with the plugin"},
    {"reaper_interval_ms", T_INT, O(reaper_interval_ms), "1000", 100, 60000, "ms", false,
     "how often the reaper looks for expired containers"},
    {"orphan_grace_seconds", T_INT, O(orphan_grace_seconds), "60", 0, 86400, "s", false,
     "an engine object with no live row is removed once this old"},
    {"starting_grace_seconds", T_INT, O(starting_grace_seconds), "120", 10, 3600, "s", false,
     "a row still starting after this long belongs to a crashed start and is cleaned up"},
    {"stopping_grace_seconds", T_INT, O(stopping_grace_seconds), "60", 5, 3600, "s", false,
     "a row still stopping after this long is stopped again by the reaper"},
    {"reconcile_interval_seconds", T_INT, O(reconcile_interval_seconds), "10", 1, 3600, "s",
     false, "how often the reaper compares the engine's objects with the database"},
    /* warm pools */
    {"warm_pool_max_total", T_INT, O(warm_pool_max_total), "20", 0, 10000, "", false,
     "warm pool containers in all challenges (each challenge sets its own warm_pool); "
     "0 = warm pools off"},
    {"warm_pool_lifetime_seconds", T_INT, O(warm_pool_lifetime_seconds), "3600", 120, 604800,
     "s", false, "an unclaimed warm pool container is replaced by a fresh one after this"},
    {"warm_pool_retry_seconds", T_INT, O(warm_pool_retry_seconds), "30", 1, 3600, "s", false,
     "after a warm pool container of a challenge failed to start, wait this long to try again"},
    /* exposure and isolation (docs/exposure.md) */
    {"route_domain", T_STR, O(route_domain), "", 0, 0, "", false,
     "wildcard domain: NAME.route_domain reaches a container through nginx; empty = off"},
    {"route_scheme", T_STR, O(route_scheme), "https", 0, 0, "", false,
     "http or https: the scheme of the container URLs players are given"},
    {"route_public_port", T_INT, O(route_public_port), "0", 0, 65535, "port", false,
     "port of the container URLs players are given; 0 = the scheme's default"},
    {"route_upstream_host", T_STR, O(route_upstream_host), "127.0.0.1", 0, 0, "", false,
     "address nginx reaches published container ports on (bind_address, or the engine host)"},
    {"tls_port", T_INT, O(tls_port), "0", 0, 65535, "port", false,
     "shared TLS port (nginx stream, routed by SNI) players are told to use; 0 = off"},
    {"tls_routes_file", T_STR, O(tls_routes_file), "", 0, 0, "path", false,
     "nginx stream map of SNI name -> upstream the reaper keeps up to date; empty = none"},
    {"tls_reload_pid_file", T_STR, O(tls_reload_pid_file), "", 0, 0, "path", false,
     "nginx master's pid file: the reaper sends it SIGHUP after changing tls_routes_file"},
    {"tls_reload_min_interval_ms", T_INT, O(tls_reload_min_interval_ms), "1000", 100, 60000, "ms",
     false, "at most one nginx reload per this interval (changes are batched)"},
    {"network_mode", T_STR, O(network_mode), "isolated", 0, 0, "", false,
     "isolated: each container on its own bridge network; bridge: the engine's default bridge"},
    {"network_pool", T_STR, O(network_pool), "10.213.0.0/16", 0, 0, "CIDR", false,
     "IPv4 range the per-container networks are cut from; empty = the engine's address pools"},
    {"network_prefix", T_INT, O(network_prefix), "28", 16, 29, "bits", false,
     "prefix length of one per-container network (28: 16 addresses)"},
    /* switch, canary, fallback; the whale backend */
    {"whale_enabled", T_STR, O(whale_enabled), "", 0, 0, "", false,
     "the owner's WHALE_ENABLED switch: true = backend whale, false = backend docker; empty = "
     "unset (a backend set to something else as well is refused)"},
    {"fallback_backend", T_STR, O(fallback_backend), "", 0, 0, "", false,
     "backend for new starts while the primary answers ENGINE_UNAVAILABLE; empty = none"},
    {"whale_url", T_STR, O(whale_url), "", 0, 0, "URL", false,
     "the CTFd site running ctfd-whale (http://host:port), for backend whale"},
    {"whale_admin_token", T_STR, O(whale_admin_token), "", 0, 0, "", true,
     "a CTFd access token of an admin, for ctfd-whale's admin API"},
    {"whale_admin_token_file", T_STR, O(whale_admin_token_file), "", 0, 0, "path", false,
     "file whose first line is whale_admin_token (overrides it)"},
    {"whale_timeout_seconds", T_INT, O(whale_timeout_seconds), "30", 1, 600, "s", false,
     "timeout of one call to ctfd-whale (a start waits for its container's port too)"},
    {"whale_ready_check", T_INT, O(whale_ready_check), "1", 0, 1, "0/1", false,
     "1: a whale start returns only when ctfd-whale's access address answers; 0: when "
     "ctfd-whale has made the container (no router to probe)"},
    /* swarm backend (backend_swarm.c, --sync-images) */
    {"swarm_endpoint", T_STR, O(swarm_endpoint), "", 0, 0, "", false,
     "the swarm manager's Engine API (unix:///path or tcp://host:port, TLS files as "
     "docker_tls_*); empty = docker_endpoint"},
    {"swarm_node_endpoints", T_STR, O(swarm_node_endpoints), "", 0, 0, "", false,
     "every swarm node's Engine API, comma-separated: where --sync-images copies images to"},
    {"swarm_placement", T_STR, O(swarm_placement), "", 0, 0, "", false,
     "placement constraints for every swarm container, e.g. node.role==worker (a challenge "
     "adds its own)"},
    {"swarm_network_per_container", T_INT, O(swarm_network_per_container), "0", 0, 1, "", false,
     "1: each swarm container gets an attachable overlay network of its own, removed with it "
     "(slower: about 2 s more per start here); 0: the node's default bridge, as the docker "
     "backend"},
};
#undef O
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void *field(struct cc_config *c, const struct opt *o)
{
    return (char *)c + o->off;
}

static const struct opt *opt_find(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int parse_int(const char *v, int base, int64_t *out)
{
    char *end;
    errno = 0;
    if (*v == '\0' || isspace((unsigned char)*v))
        return -1;
    long long n = strtoll(v, &end, base);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 0;
}

static int set_value(struct cc_config *c, const struct opt *o, const char *v, char *err,
                     size_t errlen)
{
    int64_t n, m;
    double d;
    char *end;
    switch (o->type) {
    case T_STR: {
        char **p = field(c, o);
        free(*p);
        *p = strdup(v);
        if (*p == NULL) {
            snprintf(err, errlen, "%s: out of memory", o->name);
            return -1;
        }
        return 0;
    }
    case T_INT:
    case T_OCTAL:
        if (parse_int(v, o->type == T_OCTAL ? 8 : 10, &n) < 0 || n < o->min || n > o->max) {
            snprintf(err, errlen, "%s: '%.64s' is not a whole number from %.0f to %.0f", o->name,
                     v, o->min, o->max);
            return -1;
        }
        *(int64_t *)field(c, o) = n;
        return 0;
    case T_DOUBLE:
        errno = 0;
        d = strtod(v, &end);
        if (*v == '\0' || errno || *end != '\0' || !(d >= o->min && d <= o->max)) { /* NaN too */
            snprintf(err, errlen, "%s: '%.64s' is not a number from %g to %g", o->name, v, o->min,
                     o->max);
            return -1;
        }
        *(double *)field(c, o) = d;
        return 0;
    case T_PORTS: {
        const char *dash = strchr(v, '-');
        char lo[16];
        if (dash == NULL || (size_t)(dash - v) >= sizeof(lo))
            goto bad_ports;
        memcpy(lo, v, (size_t)(dash - v));
        lo[dash - v] = '\0';
        if (parse_int(lo, 10, &n) < 0 || parse_int(dash + 1, 10, &m) < 0 || n < 1024 ||
            m > 65535 || n > m)
            goto bad_ports;
        c->port_min = n;
        c->port_max = m;
        return 0;
    bad_ports:
        snprintf(err, errlen, "%s: '%.64s' is not MIN-MAX with 1024 <= MIN <= MAX <= 65535",
                 o->name, v);
        return -1;
    }
    case T_BOOL:
        break;
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Parse one "key = value" line (comments start with #). */
static int config_line(struct cc_config *c, char *line, const char *path, int lineno, char *err,
                       size_t errlen)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
        return -1;
    }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    const struct opt *o = opt_find(key);
    if (o == NULL) {
        snprintf(err, errlen, "%s:%d: unknown key '%.64s'", path, lineno, key);
        return -1;
    }
    return set_value(c, o, val, err, errlen);
}

static int config_file(struct cc_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        rc = config_line(c, line, path, lineno, err, errlen);
    }
    fclose(f);
    return rc;
}

static int config_env(struct cc_config *c, char *const *envp, char *err, size_t errlen)
{
    static const char prefix[] = "CTFD_CONTAINERS_";
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *e = envp[i];
        if (strncmp(e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *eq = strchr(e, '=');
        char key[64];
        size_t klen = eq ? (size_t)(eq - e) - (sizeof(prefix) - 1) : 0;
        if (eq == NULL || klen == 0 || klen >= sizeof(key))
            continue;
        for (size_t k = 0; k < klen; k++)
            key[k] = (char)tolower((unsigned char)e[sizeof(prefix) - 1 + k]);
        key[klen] = '\0';
        const struct opt *o = opt_find(key);
        if (o == NULL)
            continue; /* other tools share the prefix (the plugin's settings) */
        if (set_value(c, o, eq + 1, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int read_secret_file(char **dst, const char *path, const char *key, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "re");
    char buf[512];
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open %s: %s", key, path, strerror(errno));
        return -1;
    }
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    free(*dst);
    *dst = strdup(buf);
    memset(buf, 0, sizeof(buf));
    return *dst ? 0 : -1;
}

/* The swarm keys: endpoints by scheme, placement by its grammar. */
static int config_check_swarm(const struct cc_config *c, char *err, size_t errlen)
{
    if (c->swarm_endpoint[0] && strncmp(c->swarm_endpoint, "unix://", 7) &&
        strncmp(c->swarm_endpoint, "tcp://", 6))
        return snprintf(err, errlen, "swarm_endpoint: must start with unix:// or tcp://"), -1;
    for (const char *p = c->swarm_node_endpoints; *p != '\0';) {
        p += strspn(p, " \t,");
        if (*p != '\0' && strncmp(p, "unix://", 7) && strncmp(p, "tcp://", 6))
            return snprintf(err, errlen, "swarm_node_endpoints: each must start with unix:// "
                                         "or tcp://"),
                   -1;
        p += strcspn(p, ",");
    }
    char why[160];
    struct placement pl;
    arena_t *a = arena_new(1024);
    int rc = placement_parse(a, c->swarm_placement, &pl, why, sizeof(why));
    arena_free(a);
    if (rc < 0)
        return snprintf(err, errlen, "swarm_placement: %s", why), -1;
    return 0;
}

/* "10.213.0.0/16" -> network address and prefix length; -1 if not IPv4 CIDR. */
int config_parse_cidr(const char *s, uint32_t *addr, int *prefix)
{
    unsigned a, b, c, d, p;
    char tail;
    if (sscanf(s, "%3u.%3u.%3u.%3u/%2u%c", &a, &b, &c, &d, &p, &tail) != 5 || a > 255 || b > 255 ||
        c > 255 || d > 255 || p > 32 || strspn(s, "0123456789./") != strlen(s))
        return -1;
    *addr = (uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | (uint32_t)d;
    *prefix = (int)p;
    return 0;
}

static int config_check_exposure(struct cc_config *c, char *err, size_t errlen)
{
    if (c->route_domain[0] && !route_domain_valid(c->route_domain))
        return snprintf(err, errlen,
                        "route_domain: lowercase DNS labels (a-z, 0-9, '-') "
                        "separated by dots, at most 200 bytes"),
               -1;
    if (strcmp(c->route_scheme, "http") && strcmp(c->route_scheme, "https"))
        return snprintf(err, errlen, "route_scheme: http or https"), -1;
    if (strcmp(c->network_mode, "isolated") && strcmp(c->network_mode, "bridge"))
        return snprintf(err, errlen, "network_mode: isolated or bridge"), -1;
    uint32_t addr;
    int prefix;
    if (c->network_pool[0] &&
        (config_parse_cidr(c->network_pool, &addr, &prefix) < 0 || prefix < 8 ||
         prefix > c->network_prefix || (prefix < 32 && (addr & (0xffffffffu >> prefix)) != 0)))
        return snprintf(err, errlen,
                        "network_pool: an IPv4 network such as 10.213.0.0/16, "
                        "no longer than network_prefix"),
               -1;
    char bad[32];
    if (!route_caps_allowed(c->cap_add, bad, sizeof(bad)))
        return snprintf(err, errlen, "cap_add: '%s' is not on the allow-list (docs/exposure.md)",
                        bad),
               -1;
    return 0;
}

static bool backend_name_ok(const char *b)
{
    return strcmp(b, "docker") == 0 || strcmp(b, "swarm") == 0 || strcmp(b, "whale") == 0;
}

/* The owner's WHALE_ENABLED is an alias of backend: true = whale, false =
 * docker. Set together with a backend that says otherwise, it is refused. */
static int check_switch(struct cc_config *c, char *err, size_t errlen)
{
    const char *we = c->whale_enabled, *implied = NULL;
    if (strcasecmp(we, "true") == 0 || strcmp(we, "1") == 0)
        implied = "whale";
    else if (strcasecmp(we, "false") == 0 || strcmp(we, "0") == 0)
        implied = "docker";
    else if (we[0] != '\0')
        return snprintf(err, errlen, "whale_enabled: '%.32s' is not true or false", we), -1;
    if (implied && c->backend[0] && strcmp(c->backend, implied) != 0)
        return snprintf(err, errlen,
                        "whale_enabled: %s means backend %s, but backend is %.32s; set one "
                        "of them", we, implied, c->backend),
               -1;
    if (c->backend[0] == '\0') {
        free(c->backend);
        c->backend = strdup(implied ? implied : "docker");
        if (c->backend == NULL)
            return snprintf(err, errlen, "backend: out of memory"), -1;
    }
    if (!backend_name_ok(c->backend))
        return snprintf(err, errlen, "backend: '%.32s' is not docker, swarm or whale", c->backend),
               -1;
    if (c->fallback_backend[0] && !backend_name_ok(c->fallback_backend))
        return snprintf(err, errlen, "fallback_backend: '%.32s' is not docker, swarm or whale",
                        c->fallback_backend),
               -1;
    if (c->fallback_backend[0] && strcmp(c->fallback_backend, c->backend) == 0)
        return snprintf(err, errlen, "fallback_backend: must differ from backend (%s)",
                        c->backend),
               -1;
    return 0;
}

/* backend whale (global, fallback, or any challenge's) needs ctfd-whale's site. */
static int check_whale(struct cc_config *c, char *err, size_t errlen)
{
    if (c->whale_url[0] && strncmp(c->whale_url, "http://", 7) &&
        strncmp(c->whale_url, "https://", 8))
        return snprintf(err, errlen, "whale_url: must start with http:// or https://"), -1;
    bool used = strcmp(c->backend, "whale") == 0 || strcmp(c->fallback_backend, "whale") == 0;
    if (used && c->whale_url[0] == '\0')
        return snprintf(err, errlen, "whale_url: must be set for backend whale"), -1;
    if (c->whale_admin_token_file[0])
        return read_secret_file(&c->whale_admin_token, c->whale_admin_token_file,
                                "whale_admin_token_file", err, errlen);
    return 0;
}

static int config_check(struct cc_config *c, char *err, size_t errlen)
{
    if (check_switch(c, err, errlen) < 0 || check_whale(c, err, errlen) < 0)
        return -1;
    if (strncmp(c->docker_endpoint, "unix://", 7) && strncmp(c->docker_endpoint, "tcp://", 6))
        return snprintf(err, errlen, "docker_endpoint: must start with unix:// or tcp://"), -1;
    if (log_level_parse(c->log_level) < 0)
        return snprintf(err, errlen, "log_level: '%.32s' is not debug, info, warn or error",
                        c->log_level),
               -1;
    if (c->listen[0] != '/')
        return snprintf(err, errlen, "listen: must be an absolute socket path"), -1;
    if (strlen(c->listen) >= 100)
        return snprintf(err, errlen, "listen: socket path longer than 100 bytes"), -1;
    size_t sl = strlen(c->site);
    if (sl == 0 || sl > 40 || strspn(c->site, "abcdefghijklmnopqrstuvwxyz0123456789-") != sl ||
        c->site[0] == '-')
        return snprintf(err, errlen, "site: 1 to 40 characters of a-z, 0-9 and '-'"), -1;
    if (c->starting_grace_seconds <= c->ready_timeout_seconds + c->docker_timeout_seconds)
        return snprintf(err, errlen,
                        "starting_grace_seconds: must exceed ready_timeout_seconds + "
                        "docker_timeout_seconds (a slow start is not a crashed one)"),
               -1;
    if (config_check_exposure(c, err, errlen) < 0)
        return -1;
    if (c->flag_key_file[0] == '\0')
        return snprintf(err, errlen, "flag_key_file: must be set"), -1;
    if (config_check_swarm(c, err, errlen) < 0)
        return -1;
    if (c->database_password_file[0])
        return read_secret_file(&c->database_password, c->database_password_file,
                                "database_password_file", err, errlen);
    return 0;
}

int config_load(struct cc_config *c, const char *path, char *const *envp, char *err,
                size_t errlen)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NOPTS; i++)
        if (set_value(c, &opts[i], opts[i].def, err, errlen) < 0)
            return -1;
    if (path != NULL && config_file(c, path, err, errlen) < 0)
        return -1;
    if (config_env(c, envp, err, errlen) < 0)
        return -1;
    return config_check(c, err, errlen);
}

void config_free(struct cc_config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].type != T_STR)
            continue;
        char **p = field(c, &opts[i]);
        if (*p && opts[i].secret)
            memset(*p, 0, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static void opt_format(const struct cc_config *c, const struct opt *o, char *buf, size_t n)
{
    const void *f = (const char *)c + o->off;
    switch (o->type) {
    case T_STR: {
        const char *s = *(char *const *)f;
        snprintf(buf, n, "%s", o->secret && s && *s ? "********" : (s ? s : ""));
        break;
    }
    case T_INT:
        snprintf(buf, n, "%lld", (long long)*(const int64_t *)f);
        break;
    case T_OCTAL:
        snprintf(buf, n, "%04llo", (long long)*(const int64_t *)f);
        break;
    case T_DOUBLE:
        snprintf(buf, n, "%g", *(const double *)f);
        break;
    case T_PORTS:
        snprintf(buf, n, "%lld-%lld", (long long)c->port_min, (long long)c->port_max);
        break;
    case T_BOOL:
        buf[0] = '\0';
        break;
    }
}

void config_print(const struct cc_config *c, FILE *out)
{
    char buf[512];
    for (size_t i = 0; i < NOPTS; i++) {
        opt_format(c, &opts[i], buf, sizeof(buf));
        fprintf(out, "%s = %s\n", opts[i].name, buf);
    }
}

void config_print_doc(FILE *out)
{
    fputs("| key | default | unit | what it does |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(out, "| `%s` | %s%s%s | %s | %s |\n", opts[i].name, opts[i].def[0] ? "`" : "",
                opts[i].def[0] ? opts[i].def : "(empty)", opts[i].def[0] ? "`" : "",
                opts[i].unit, opts[i].doc);
}

/* config.h: one table of options (name, type, default, unit, range, doc).
 *
 * Loaded from a "key = value" file, then overridden by CTFD_CONTAINERS_<KEY>
 * environment variables. A bad value stops start-up with a message naming the
 * key. Secrets may come from files (database_password_file). */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cc_config {
    /* database */
    char *database_host;
    int64_t database_port;
    char *database_socket;
    char *database_user;
    char *database_password;      /* secret */
    char *database_password_file;
    char *database_name;
    /* process */
    char *listen;                 /* FastCGI unix socket path */
    int64_t listen_mode;          /* octal, e.g. 0660 */
    char *listen_owner;
    char *listen_group;
    int64_t workers;
    int64_t max_body_bytes;
    char *log_level;
    char *pid_file;
    /* backend */
    char *backend;                /* docker | swarm | whale */
    char *docker_endpoint;        /* unix:///var/run/docker.sock or tcp://host:2376 */
    char *docker_tls_ca;
    char *docker_tls_cert;
    char *docker_tls_key;
    int64_t docker_timeout_seconds;
    char *public_host;            /* what players connect to */
    char *bind_address;           /* host address published ports bind to */
    int64_t port_min;             /* from port_range */
    int64_t port_max;
    int64_t ready_timeout_seconds;
    int64_t default_memory_mb;
    double default_cpus;
    int64_t pids_limit;
    char *cap_add;                /* comma-separated capabilities kept after dropping all */
    char *site;
    char *ctfd_admin_stylesheets; /* CTFd's admin CSS, linked by the admin page */                   /* names and labels engine objects: many sites, one engine */
    /* rules */
    int64_t max_containers_per_account;
    int64_t max_containers;       /* global capacity, 0 = unlimited */
    int64_t max_renewals;
    int64_t cooldown_seconds;
    int64_t timeout_seconds;
    int64_t extend_seconds;
    /* flags */
    char *flag_key_file;
    /* reaper */
    int64_t reaper_interval_ms;
    int64_t orphan_grace_seconds;
    int64_t starting_grace_seconds;
    int64_t stopping_grace_seconds;
    int64_t reconcile_interval_seconds;
    /* warm pools */
    int64_t warm_pool_max_total;       /* pool containers in all; 0 = pools off */
    int64_t warm_pool_lifetime_seconds; /* an unclaimed pool container is replaced after this */
    int64_t warm_pool_retry_seconds;   /* wait after a failed pool start of a challenge */
    /* exposure and isolation (docs/exposure.md) */
    char *route_domain;        /* NAME.route_domain reaches a container; "" = off */
    char *route_scheme;        /* http | https: the scheme of the URLs players get */
    int64_t route_public_port; /* the port of those URLs; 0 = the scheme's */
    char *route_upstream_host; /* where nginx reaches published ports */
    int64_t tls_port;          /* the shared TLS (SNI) port players connect to; 0 = off */
    char *tls_routes_file;     /* nginx stream map the reaper writes; "" = none */
    char *tls_reload_pid_file; /* nginx master's pid file: SIGHUP after a map change */
    int64_t tls_reload_min_interval_ms;
    char *network_mode;           /* isolated | bridge */
    char *network_pool;           /* CIDR the per-container networks come from; "" = engine's */
    int64_t network_prefix;       /* prefix length of one per-container network */
    /* switch, canary, fallback; the whale backend */
    char *whale_enabled;          /* "" | true | false: the owner's WHALE_ENABLED alias of backend */
    char *fallback_backend;       /* "" = none */
    char *whale_url;              /* the CTFd site that runs ctfd-whale */
    char *whale_admin_token;      /* secret: an admin's CTFd access token */
    char *whale_admin_token_file;
    int64_t whale_timeout_seconds;
    int64_t whale_ready_check;    /* 1: a whale start waits for the access address to answer */
    /* swarm backend (backend_swarm.c, --sync-images) */
    char *swarm_endpoint;         /* the manager's Engine API; "" = docker_endpoint */
    char *swarm_node_endpoints;   /* every node's Engine API, comma-separated (--sync-images) */
    char *swarm_placement;        /* constraints for every service (placement.h) */
    int64_t swarm_network_per_container; /* 1: an overlay network of its own per container */
};

/* Defaults, then the file (may be NULL), then the environment (envp may be
 * NULL for none). Returns 0, or -1 with "key: reason" in err. */
int config_load(struct cc_config *c, const char *path, char *const *envp, char *err,
                size_t errlen);
void config_free(struct cc_config *c);
/* The effective configuration, one "key = value" per line, secrets masked. */
void config_print(const struct cc_config *c, FILE *out);
/* Markdown table of every option (name, default, unit, doc) for docs. */
void config_print_doc(FILE *out);
/* "10.213.0.0/16" -> host-order address and prefix length; 0, or -1 if not IPv4 CIDR. */
int config_parse_cidr(const char *s, uint32_t *addr, int *prefix);

#endif

/* backend.h: the engine interface. A backend is a table of function pointers
 * with a few idempotent operations; handlers and the reaper call only these.
 *
 * Every operation reports failures as a struct cc_error translated at the
 * backend's edge: engine unreachable = ERR_ENGINE_UNAVAILABLE (temporary),
 * image missing = ERR_IMAGE_MISSING (permanent, naming the image), anything
 * else the engine refuses = ERR_START_FAILED with a short reason (no engine
 * body verbatim, never the flag). Backends never know each other. */
#ifndef CC_BACKEND_H
#define CC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "errors.h"

struct cc_config;

#define BACKEND_MAX_PORTS 8

enum backend_proto { PROTO_TCP, PROTO_HTTP };

struct backend_port {
    int internal;            /* the port inside the container */
    enum backend_proto proto;
    int host_port;           /* published host port (chosen by the caller, race-free) */
};

/* What to run. name is the engine object's name: "ctfd-containers-<instance id>". */
struct backend_spec {
    const char *name;
    const char *image;
    const char *flag_env;    /* e.g. "FLAG" */
    const char *flag;        /* secret: only ever in the engine request body */
    int64_t instance_id;
    int64_t account_id;
    int64_t challenge_id;
    int64_t expires;         /* unix seconds, for the label */
    int64_t memory_bytes;    /* 0 = backend default */
    int64_t nano_cpus;       /* 0 = backend default */
    int64_t pids_limit;      /* 0 = backend default */
    size_t nports;
    struct backend_port ports[BACKEND_MAX_PORTS];
    /* exposure and hardening (docs/exposure.md) */
    const char *route;       /* the random route name; also names the bridge */
    bool allow_internet;     /* outbound traffic allowed (the network gets NAT) */
    bool read_only;          /* read-only root file system (+ a small /tmp) */
    const char *cap_add;     /* the challenge's capabilities; NULL = cfg->cap_add */
    /* switch/canary/fallback and whale: who asked (may be NULL) */
    int64_t user_id;
    const struct backend_caller *caller;
    /* swarm: the challenge's placement constraints (docker_challenge.placement,
     * see placement.h); NULL or "" for none. Other backends ignore it. */
    const char *placement;
};

/* One engine object that carries our labels. */
struct backend_object {
    const char *engine_id;   /* the engine's id (container or service id) */
    const char *name;
    int64_t instance_id;     /* from label ctfd-containers.instance; -1 if absent/bad */
    int64_t account_id;
    int64_t challenge_id;
    int64_t expires;
    int64_t created;         /* unix seconds */
    bool running;
    const char *status;      /* the engine's short state word ("running", "exited") */
    bool network_only;       /* a container's own network, its container gone */
};

struct backend_started {
    const char *engine_id;
    const char *host;        /* where players connect (public_host) */
    /* A backend that chooses its own ports (whale: its router's) sets
     * own_ports and fills ports[]; the row then records those, not the
     * reserved ones. Everyone else leaves own_ports false. */
    bool own_ports;
    size_t nports;
    struct backend_port ports[BACKEND_MAX_PORTS];
    /* A backend whose engine makes the flag itself (whale) returns it here
     * (in the arena; the caller encrypts it into the row and wipes it). */
    char *engine_flag;
};

/* Who asked, for a backend that must act as the player (whale's player API
 * needs the player's own CTFd session). NULL for the reaper and admins. */
struct backend_caller {
    int64_t user_id;
    const char *cookie;        /* the player's Cookie header, or NULL */
    const char *csrf_token;    /* the player's CSRF-Token header, or NULL */
    const char *authorization; /* the player's Authorization header, or NULL */
};

struct backend;

struct backend_ops {
    const char *name;
    /* Set up b->impl from b->cfg (connections are made lazily). */
    int (*open)(struct backend *b, struct cc_error *err);
    /* Is the engine there? */
    int (*ping)(struct backend *b, struct cc_error *err);
    /* Create and start; returns when the container runs and every port gives an
     * application-level answer (or the readiness timeout passes: then fail).
     * On failure it removes whatever it created. */
    int (*start)(struct backend *b, arena_t *a, const struct backend_spec *spec,
                 struct backend_started *out, struct cc_error *err);
    /* Stop and remove by name; already gone is success. */
    int (*stop)(struct backend *b, const char *name, struct cc_error *err);
    /* Inspect by name: *found false when gone (not an error). */
    int (*inspect)(struct backend *b, arena_t *a, const char *name, struct backend_object *out,
                   bool *found, struct cc_error *err);
    /* Every object with the label ctfd-containers.instance, in an arena array. */
    int (*list)(struct backend *b, arena_t *a, struct backend_object **out, size_t *n,
                struct cc_error *err);
    void (*destroy)(struct backend *b);
    /* Optional (NULL = nothing to do): tell the engine the container's
     * deadline moved (an extend). The deadline itself lives in the database;
     * docker's labels cannot change, whale renews its own timer. */
    int (*extend)(struct backend *b, arena_t *a, const char *name, int64_t deadline,
                  struct cc_error *err);
    /* true: the engine chooses where players connect (whale's router), so no
     * host ports are reserved for its starts and spec->ports[].host_port is 0. */
    bool chooses_ports;
};

struct store;

struct backend {
    const struct backend_ops *ops;
    const struct cc_config *cfg;
    void *impl;
    /* The process's database connection, for a backend whose engine keeps its
     * state in CTFd's database (whale reads whale_container). NULL in tests. */
    struct store *store;
};

/* Our labels on an engine object (ctfd-containers.site, .instance, .account,
 * .challenge, .expires, .managed), as a new JSON object for the request body. */
struct json_t *backend_labels(const struct cc_config *cfg, const struct backend_spec *spec);

/* Open the backend named in cfg (or by name); one per process, after fork. */
struct backend *backend_open(const char *name, const struct cc_config *cfg,
                             struct cc_error *err);
void backend_close(struct backend *b);

/* Readiness probe the backends share: connect to host:port until the service
 * answers at the application level, retrying every ~20 ms until timeout_ms.
 * PROTO_HTTP: "GET / HTTP/1.0" gets any bytes back. PROTO_TCP: a byte arrives,
 * or the connection stays open 150 ms (a service that waits for the client).
 * A bare connect is not enough: docker-proxy accepts, then drops, while the
 * service is not listening yet. Returns 0 when ready, -1 with ERR_START_FAILED
 * (or ERR_INTERNAL when host does not resolve). */
int backend_wait_ready(const char *host, int port, enum backend_proto proto, int timeout_ms,
                       struct cc_error *err);

/* Implementations (one per backend_*.c). */
extern const struct backend_ops backend_docker_ops;
extern const struct backend_ops backend_swarm_ops;

/* ---- switch, canary, rollback, fallback: the backends one process uses ----
 * A process (worker, reaper, one-shot) holds a set, opened lazily by name:
 * a new start uses its challenge's backend (else the global one, else the
 * fallback while the primary is unavailable); every later operation uses
 * the backend its row recorded, so a switch or a rollback leaves running
 * containers managed by the backend that started them. */
#define BACKEND_SET_MAX 8
struct backend_set {
    const struct cc_config *cfg;
    struct store *store;
    struct backend *open[BACKEND_SET_MAX]; /* by backend_table index */
};
void backend_set_init(struct backend_set *set, const struct cc_config *cfg, struct store *store);
/* The named backend (NULL or "" = cfg->backend), opened on first use. */
struct backend *backend_get(struct backend_set *set, const char *name, struct cc_error *err);
void backend_set_close(struct backend_set *set);
/* Is the name in the table / built into this binary? */
bool backend_known(const char *name);
bool backend_built(const char *name);
/* Does the named backend choose its own ports (no host ports to reserve)? */
bool backend_chooses_ports(const char *name);
extern const struct backend_ops backend_whale_ops;
/* backend_whale.c's parser of ctfd-whale's access string ("nc HOST PORT" or a
 * link to http://HOST[:PORT]/): 0 with out->host and out->ports[0] set
 * (own_ports, nports 1), or -1. For its fuzz target. */
int whale_parse_access(arena_t *a, const char *s, struct backend_started *out);

#endif

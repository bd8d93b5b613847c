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
    const char *route;   /* the random route name; also names the bridge */
    bool allow_internet; /* outbound traffic allowed (the network gets NAT) */
    bool read_only;      /* read-only root file system (+ a small /tmp) */
    const char *cap_add; /* the challenge's capabilities; NULL = cfg->cap_add */
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
};

struct backend {
    const struct backend_ops *ops;
    const struct cc_config *cfg;
    void *impl;
};

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

#endif

/* store.h: MariaDB through Connector/C: one connection per process, prepared
 * statements only (each prepared once per connection, named for what it does),
 * transactions, reconnect-and-retry-once on a lost connection.
 *
 * Reads CTFd's own tables (users, teams, challenges, config, solves) and the
 * plugin's docker_challenge; reads and writes our container_* tables. Never
 * alters CTFd's tables. Failures become ERR_DATABASE_UNAVAILABLE (temporary)
 * or ERR_INTERNAL; no SQL or server message reaches a client. */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "errors.h"
#include "flag.h"

struct cc_config;
struct store;

struct store *store_open(const struct cc_config *cfg, struct cc_error *err);
void store_close(struct store *s);
int store_ping(struct store *s, struct cc_error *err);
/* Create or upgrade our tables from the compiled-in src/sql/NNN_*.sql. */
int store_migrate(struct store *s, FILE *report, struct cc_error *err);
int store_schema_version(struct store *s, int64_t *version, struct cc_error *err);
int store_latest_version(void);
/* The schema version row, and how many compiled-in files are not applied yet
 * (files are recorded one by one, so a lower-numbered file merged later counts). */
int store_schema_pending(struct store *s, int64_t *version, int *pending, struct cc_error *err);

/* Transactions. After a deadlock or lock timeout, store_retryable() is true
 * and the caller may run the whole transaction again. */
int store_begin(struct store *s, struct cc_error *err);
int store_commit(struct store *s, struct cc_error *err);
void store_rollback(struct store *s);
bool store_retryable(const struct store *s);
/* body() inside a transaction, committed when it returns 0. A deadlock or a lock
 * wait timeout rolls back, calls undo(arg) (may be NULL: e.g. wipe a secret the
 * body made) and runs body again, at most 4 times in all; then
 * DATABASE_UNAVAILABLE. Any other failure rolls back, calls undo and returns -1. */
int store_transaction(struct store *s, int (*body)(void *arg, struct cc_error *err),
                      void (*undo)(void *arg), void *arg, struct cc_error *err);

/* ---- CTFd's tables (read only) ---- */
struct ctfd_user {
    int64_t id;
    int64_t team_id;         /* 0 = none */
    bool admin;
    bool banned;
    bool hidden;
    bool unverified;         /* verified = 0 (NULL counts as verified, as in CTFd) */
    const char *name;
};
struct ctfd_team {
    int64_t id;
    bool banned;
    bool hidden;
    const char *name;
};
struct ctfd_settings {
    bool team_mode;
    int64_t start, end;      /* 0 = unset */
    bool paused;
    bool verify_emails;
};
struct ctfd_challenge {
    int64_t id;
    const char *name;
    const char *state;       /* visible, hidden, locked */
    const char *requirements; /* JSON text or NULL */
    const char *image;
    const char *ports;       /* "80/http,1337/tcp" */
    const char *flag_template;
    const char *flag_env;
    int64_t memory_mb;       /* -1 = NULL */
    double cpus;             /* < 0 = NULL */
    int64_t lifetime;        /* -1 = NULL */
    int64_t max_renewals;    /* -1 = NULL */
    const char *backend;     /* NULL = the app's */
    const char *placement;   /* swarm placement constraints; NULL = none */
};

int store_user(struct store *s, arena_t *a, int64_t id, struct ctfd_user *out, bool *found,
               struct cc_error *err);
int store_team(struct store *s, arena_t *a, int64_t id, struct ctfd_team *out, bool *found,
               struct cc_error *err);
int store_settings(struct store *s, arena_t *a, struct ctfd_settings *out, struct cc_error *err);
int store_challenge(struct store *s, arena_t *a, int64_t id, struct ctfd_challenge *out,
                    bool *found, struct cc_error *err);
int store_challenge_exists(struct store *s, int64_t id, bool *found, struct cc_error *err);
/* --sync-images: every distinct image of docker_challenge, in the arena. */
int store_challenge_images(struct store *s, arena_t *a, const char ***images, size_t *n,
                           struct cc_error *err);
/* Challenge ids the account has solved (team solves in team mode). */
int store_solved(struct store *s, arena_t *a, bool team_mode, int64_t account_id, int64_t **ids,
                 size_t *n, struct cc_error *err);

/* ---- our tables ---- */
struct instance {
    int64_t id;
    const char *account_kind;  /* "team" or "user" */
    int64_t account_id;
    int64_t user_id;
    int64_t challenge_id;
    const char *backend;
    const char *name;
    const char *engine_id;     /* NULL until started */
    const char *image;
    const char *state;
    bool live;
    const char *host;
    const char *ports;         /* "internal/proto:host_port,..." */
    int64_t created_at, updated_at, started_at, deadline, renewals, ended_at;
    const char *end_reason;
    /* joined for listings and store_get_instance */
    const char *account_name;
    const char *challenge_name;
    int64_t challenge_max_renewals; /* docker_challenge.max_renewals; -1 = NULL (the app's) */
};

/* Lock the account's row (created if absent) and read its cooldown clock. */
int store_lock_account(struct store *s, const char *kind, int64_t account_id,
                       int64_t *last_action_at, struct cc_error *err);
int store_touch_account(struct store *s, const char *kind, int64_t account_id, int64_t now,
                        struct cc_error *err);
/* Lock the global admission row (taken only when a global limit is set). */
int store_lock_capacity(struct store *s, struct cc_error *err);
int store_count_live_account(struct store *s, const char *kind, int64_t account_id, int64_t *n,
                             struct cc_error *err);
int store_count_live_total(struct store *s, int64_t *n, struct cc_error *err);
/* The account's live container for a challenge; locked FOR UPDATE when
 * called inside a transaction, a plain read otherwise. */
int store_find_live(struct store *s, arena_t *a, const char *kind, int64_t account_id,
                    int64_t challenge_id, struct instance *out, bool *found, struct cc_error *err);
int store_get_instance(struct store *s, arena_t *a, int64_t id, struct instance *out, bool *found,
                       struct cc_error *err);
/* Insert a row in state starting; sets inst->id and inst->name. */
int store_insert_instance(struct store *s, arena_t *a, struct instance *inst,
                          struct cc_error *err);
/* Reserve a free host port in [min, max] for the instance; ERR_PORTS_EXHAUSTED if none. */
int store_reserve_port(struct store *s, int64_t instance_id, int64_t min, int64_t max,
                       int64_t *port, struct cc_error *err);
int store_insert_flag(struct store *s, int64_t instance_id, const char *kind, int64_t account_id,
                      int64_t challenge_id, const char *key_id,
                      const unsigned char nonce[FLAG_NONCE_LEN], const unsigned char *ct,
                      size_t ctlen, const unsigned char digest[FLAG_DIGEST_LEN], int64_t now,
                      bool *duplicate, struct cc_error *err);
struct stored_flag {
    const char *key_id;
    unsigned char nonce[FLAG_NONCE_LEN];
    unsigned char ct[FLAG_CIPHERTEXT_MAX];
    size_t ctlen;
};
int store_get_flag(struct store *s, arena_t *a, int64_t instance_id, struct stored_flag *out,
                   bool *found, struct cc_error *err);
/* starting -> running with its engine id, if still starting. *changed false
 * means somebody stopped it meanwhile. */
int store_mark_running(struct store *s, int64_t id, const char *engine_id, const char *host,
                       const char *ports, int64_t now, bool *changed, struct cc_error *err);
/* Compare-and-set of the state of a live row; *changed tells whether it moved. */
int store_cas_state(struct store *s, int64_t id, const char *from, const char *to, int64_t now,
                    bool *changed, struct cc_error *err);
/* End a live row (any live state): state, live = NULL, free its ports,
 * retire its flag. Own transaction unless one is open. */
int store_end(struct store *s, int64_t id, const char *state, const char *reason, int64_t now,
              bool *changed, struct cc_error *err);
/* Like store_end inside an open transaction, but the host ports stay reserved
 * until the engine object is gone (store_free_ports): a revert. */
int store_end_keep_ports(struct store *s, int64_t id, const char *state, const char *reason,
                         int64_t now, bool *changed, struct cc_error *err);
int store_free_ports(struct store *s, int64_t id, struct cc_error *err);
/* End a live row only if it is still in state `from` (its host ports stay
 * reserved: whoever removes its engine object frees them). */
int store_end_if_state(struct store *s, int64_t id, const char *from, const char *state,
                       const char *reason, int64_t now, bool *changed, struct cc_error *err);
/* Lock a live row (FOR UPDATE, in a transaction) and read its state; NULL if
 * it is no longer live. */
int store_lock_live_state(struct store *s, arena_t *a, int64_t id, const char **state,
                          struct cc_error *err);
/* Rows that ended but still hold host ports (their engine object may live). */
int store_ids_ports_ended(struct store *s, arena_t *a, int64_t **ids, size_t *n,
                          struct cc_error *err);
/* Undo a touch of the cooldown clock after a failed start, unless another
 * action of the account touched it since. */
int store_restore_action(struct store *s, const char *kind, int64_t account_id, int64_t now,
                         int64_t previous, struct cc_error *err);
int store_extend(struct store *s, int64_t id, int64_t renewals_seen, int64_t new_deadline,
                 int64_t now, bool *changed, struct cc_error *err);

/* Listing for admins: live rows (state NULL or "live") or one state. */
struct instance_filter {
    int64_t challenge_id;     /* 0 = any */
    int64_t account_id;       /* 0 = any */
    const char *state;        /* NULL/"live" = live rows */
    int64_t page, per_page;
    bool newest_deadline_first; /* default: least time left first */
};
int store_list(struct store *s, arena_t *a, const struct instance_filter *f,
               struct instance **rows, size_t *n, int64_t *total, struct cc_error *err);
/* Ids of rows in a state whose time column passed a limit (reaper). */
int store_ids_expired(struct store *s, arena_t *a, int64_t now, int64_t **ids, size_t *n,
                      struct cc_error *err);
int store_ids_stale(struct store *s, arena_t *a, const char *state, int64_t before,
                    int64_t **ids, size_t *n, struct cc_error *err);
int store_ids_live(struct store *s, arena_t *a, int64_t **ids, size_t *n, struct cc_error *err);

struct challenge_count {
    int64_t challenge_id;
    const char *challenge_name;
    int64_t live;
};
/* Live containers per challenge, most first. */
int store_live_by_challenge(struct store *s, arena_t *a, struct challenge_count **rows, size_t *n,
                            struct cc_error *err);

struct event {
    int64_t id, at;
    const char *kind;          /* flag_reveal, admin_stop, admin_extend, admin_stop_all, flag_share */
    int64_t actor_user_id;     /* 0 = none */
    const char *actor_name;
    int64_t instance_id;       /* 0 = none */
    const char *account_kind;  /* NULL = none */
    int64_t account_id;
    const char *account_name;
    int64_t challenge_id;
    const char *challenge_name;
    const char *detail;
};
/* Events newest first; kind NULL or "" = every kind. */
int store_events(struct store *s, arena_t *a, const char *kind, int64_t page, int64_t per_page,
                 struct event **rows, size_t *n, int64_t *total, struct cc_error *err);

int store_event(struct store *s, const char *kind, int64_t actor_user_id, int64_t instance_id,
                const char *account_kind, int64_t account_id, int64_t challenge_id,
                const char *detail, int64_t now, struct cc_error *err);
int store_set_status(struct store *s, const char *name, const char *value, int64_t now,
                     struct cc_error *err);
int store_get_status(struct store *s, arena_t *a, const char *name, const char **value,
                     int64_t *updated_at, struct cc_error *err);

/* ---- warm pools (pool.c): rows of account_kind "pool" ---- */
struct pool_need {
    int64_t challenge_id;
    int64_t size;            /* docker_challenge.warm_pool (> 0) */
    int64_t last_failure;    /* ended_at of its latest failed pool start; 0 = none */
};
struct pool_member {
    int64_t id, challenge_id, deadline;
    const char *state, *spec, *name;
};
/* Challenges with warm_pool > 0. Fails (unknown column) when the plugin's
 * migration that adds warm_pool has not run. */
int store_pool_needs(struct store *s, arena_t *a, struct pool_need **rows, size_t *n,
                     struct cc_error *err);
/* Every live pool row, oldest first. */
int store_pool_members(struct store *s, arena_t *a, struct pool_member **rows, size_t *n,
                       struct cc_error *err);
/* In a transaction: lock the 'pool' row, then count live pool rows. */
int store_pool_lock(struct store *s, int64_t challenge_id, int64_t *live_total,
                    int64_t *live_challenge, struct cc_error *err);
int store_pool_count(struct store *s, int64_t *n, struct cc_error *err);
/* A new pool row (inserted with account_kind "pool"): account_id = its id, its spec key. */
int store_pool_mark(struct store *s, int64_t id, const char *spec, struct cc_error *err);
struct pool_claim {
    int64_t challenge_id;
    const char *spec;        /* the challenge's current spec key */
    int64_t min_deadline;    /* only rows whose pool deadline is later */
    const char *account_kind;
    int64_t account_id, user_id;
    int64_t deadline;        /* the claimed container's new deadline */
    int64_t now;
};
/* In the admission transaction: move one running pool row and its flag row to
 * the account (compare-and-set; rows another claim holds are skipped).
 * *claimed false: the pool had none. */
int store_pool_claim(struct store *s, const struct pool_claim *c, int64_t *id, bool *claimed,
                     struct cc_error *err);
/* running -> stopping, only while the row is still the pool's. */
int store_pool_retire(struct store *s, int64_t id, int64_t now, bool *changed,
                      struct cc_error *err);
/* ---- exposure (docs/exposure.md) ---- */
/* The container's route name; *duplicate when another row holds it. */
int store_set_route(struct store *s, int64_t id, const char *route, bool *duplicate,
                    struct cc_error *err);
/* A row's route, NULL when it has none. */
int store_get_route(struct store *s, arena_t *a, int64_t id, const char **route,
                    struct cc_error *err);
/* The running container behind a route name (live and running only). */
struct route_target {
    int64_t instance_id;
    const char *account_kind;
    int64_t account_id;
    const char *ports; /* as stored: "8080/http:31234,..." */
    bool owner_only;   /* docker_challenge.route_owner_only */
};
int store_route_lookup(struct store *s, arena_t *a, const char *route, struct route_target *out,
                       bool *found, struct cc_error *err);
/* Every running container's route and ports (the TLS map). */
struct route_row {
    const char *route;
    const char *ports;
};
int store_routes_running(struct store *s, arena_t *a, struct route_row **rows, size_t *n,
                         struct cc_error *err);
/* The challenge's exposure and hardening columns (NULL columns: false / NULL). */
struct challenge_exposure {
    bool owner_only;     /* route_owner_only */
    const char *connect; /* nc | openssl | pwntools; NULL = nc */
    bool allow_internet;
    const char *cap_add; /* NULL = the app's cap_add */
    bool read_only;
};
int store_challenge_exposure(struct store *s, arena_t *a, int64_t id,
                             struct challenge_exposure *out, struct cc_error *err);
/* ---- switch, canary, fallback ---- */
/* Move a row that is still starting to another backend (the fallback) before
 * starting it there; *changed false when it is no longer starting. */
int store_set_backend(struct store *s, int64_t id, const char *backend, bool *changed,
                      struct cc_error *err);
/* Replace a live row's flag (a backend that makes its own flag: whale). */
int store_replace_flag(struct store *s, int64_t instance_id, const char *key_id,
                       const unsigned char nonce[FLAG_NONCE_LEN], const unsigned char *ct,
                       size_t ctlen, const unsigned char digest[FLAG_DIGEST_LEN],
                       struct cc_error *err);
/* Live rows' ids (ascending) and the backend each recorded. */
int store_live_backends(struct store *s, arena_t *a, int64_t **ids, const char ***backends,
                        size_t *n, struct cc_error *err);
/* Backends the reaper must list: those of live rows, of rows ended at or
 * after `since` or still holding host ports, and challenges' overrides. */
int store_backends_in_use(struct store *s, arena_t *a, int64_t since, const char ***names,
                          size_t *n, struct cc_error *err);
int store_instance_by_name(struct store *s, arena_t *a, const char *name, struct instance *out,
                           bool *found, struct cc_error *err);

/* ---- the whale backend: ctfd-whale's own table whale_container (read only) ---- */
struct whale_row {
    int64_t id, user_id, challenge_id;
    int64_t start_time;        /* unix seconds (whale writes local time) */
    int64_t renew_count, port;
    const char *uuid;
    const char *flag;          /* plaintext, as whale keeps it; only from store_whale_find */
    /* store_whale_ours: the row of ours that started it */
    int64_t instance_id;
    const char *name;
    int64_t deadline;
};
/* whale's container by uuid (when uuid is not NULL) or else the user's one
 * (whale allows one per user). */
int store_whale_find(struct store *s, arena_t *a, int64_t user_id, const char *uuid,
                     struct whale_row *out, bool *found, struct cc_error *err);
/* whale's containers that one of our rows (backend whale) started. */
int store_whale_ours(struct store *s, arena_t *a, struct whale_row **rows, size_t *n,
                     struct cc_error *err);

#endif

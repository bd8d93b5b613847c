/* lifecycle.h: the rules, as pure functions of their inputs and `now`.
 *
 * Limits, deadlines, cooldowns, extensions and the CTF's time window. No I/O,
 * no clock reads, no allocation: the callers pass `now` and the counts they
 * read under lock, and enforce the answer in the same transaction. */
#ifndef CC_LIFECYCLE_H
#define CC_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* A container row's state. Live states hold a slot; the others are history. */
enum cc_state {
    ST_STARTING, /* row reserved, engine object being created */
    ST_RUNNING,
    ST_STOPPING, /* claimed by one process that is removing the engine object */
    ST_STOPPED,  /* stopped by its account or an admin */
    ST_EXPIRED,  /* reaped at its deadline */
    ST_REVERTED, /* replaced by a fresh container */
    ST_FAILED,   /* the start failed */
    ST_LOST,     /* the engine object vanished under us */
    ST__MAX
};

const char *lifecycle_state_str(enum cc_state s);
/* -1 if unknown. */
int lifecycle_state_parse(const char *s);
bool lifecycle_state_live(enum cc_state s);

/* The limits in force for one challenge (the app's, overridden per challenge). */
struct lc_limits {
    int64_t max_per_account; /* live containers per account */
    int64_t max_total;       /* live containers in all; 0 = unlimited */
    int64_t max_renewals;
    int64_t cooldown;        /* seconds between start/revert/extend of an account */
    int64_t lifetime;        /* seconds a fresh container lives */
    int64_t extend;          /* seconds an extend adds */
};

/* What the caller read under lock before deciding. */
struct lc_account {
    int64_t last_action_at;  /* unix s of the account's last start/revert/extend; 0 = never */
    int64_t live_count;      /* live containers of the account, all challenges */
    int64_t live_total;      /* live containers of everybody */
};

/* May the account start a new container? ERR_OK, ERR_COOLDOWN (with
 * *retry_after), ERR_CONTAINER_LIMIT_REACHED or ERR_CAPACITY_FULL. */
enum cc_err lifecycle_check_start(const struct lc_limits *l, const struct lc_account *a,
                                  int64_t now, int *retry_after);
/* May it revert its running container? (It replaces it: no new slot.) */
enum cc_err lifecycle_check_revert(const struct lc_limits *l, const struct lc_account *a,
                                   enum cc_state state, int64_t now, int *retry_after);
/* May it extend? renewals = extensions used so far. */
enum cc_err lifecycle_check_extend(const struct lc_limits *l, const struct lc_account *a,
                                   enum cc_state state, int64_t renewals, int64_t now,
                                   int *retry_after);
/* The cooldown left, in seconds (0 = none). */
int64_t lifecycle_cooldown_left(const struct lc_limits *l, int64_t last_action_at, int64_t now);
int64_t lifecycle_deadline(const struct lc_limits *l, int64_t now);
int64_t lifecycle_extended_deadline(const struct lc_limits *l, int64_t deadline);
int64_t lifecycle_seconds_left(int64_t deadline, int64_t now);
int64_t lifecycle_renewals_left(const struct lc_limits *l, int64_t renewals);
bool lifecycle_expired(int64_t deadline, int64_t now);

/* The CTF's window as CTFd keeps it: start/end unix seconds (0 = unset),
 * paused. Admins are exempt. ERR_OK, ERR_CTF_NOT_STARTED, _ENDED or _PAUSED. */
enum cc_err lifecycle_check_ctf_time(int64_t start, int64_t end, bool paused, bool is_admin,
                                     int64_t now);

/* Are all prerequisites in the solved set? Prerequisites that no longer exist
 * (not in `existing`) are ignored, as CTFd does. */
bool lifecycle_prereqs_met(const int64_t *prereqs, size_t nprereqs, const int64_t *solved,
                           size_t nsolved, const int64_t *existing, size_t nexisting);

/* ---- warm pools ---- */

/* A pool container is claimed only while its pool deadline is at least this
 * far off, so the reaper's expiry (deadline <= now) never races a claim. */
#define LC_POOL_CLAIM_MARGIN 30

struct lc_pool {
    int64_t size;          /* the challenge's warm_pool (<= 0: off) */
    int64_t live;          /* its live pool containers (any live state) */
    int64_t live_total;    /* live pool containers of every challenge */
    int64_t max_total;     /* warm_pool_max_total (<= 0: pools off) */
    int64_t last_failure;  /* when its latest pool start failed; 0 = never */
    int64_t retry;         /* warm_pool_retry_seconds */
};

/* How many pool containers to start for the challenge now: up to its size,
 * within the global cap, none while a failed start's retry delay runs. */
int64_t lifecycle_pool_deficit(const struct lc_pool *p, int64_t now);
/* A pool container may be handed to a player now only if its pool deadline
 * is later than this (the claim's SQL compares with it). */
int64_t lifecycle_pool_claim_after(int64_t now);
/* The spec key: FNV-1a 64 of the parts (each followed by a NUL byte), as 16
 * lowercase hex digits. Equal keys: started the same way (not a secret). */
void lifecycle_pool_spec_key(const char *const *parts, size_t n, char out[17]);

#endif

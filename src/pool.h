/* pool.h: warm pools. Per challenge (docker_challenge.warm_pool), a number of
 * containers started ahead of time by the reaper, each with a fresh flag no
 * one has seen, on a row of account_kind "pool". A player's start claims one
 * in its admission transaction: the row and the flag row become the
 * account's, nothing is started, the reply comes at once.
 *
 * Sits beside ops.c (it uses ops.c, never the reverse); knows no HTTP. Must
 * not: hand one container to two accounts (claims are compare-and-set under
 * row locks), reveal or log a pool container's flag. */
#ifndef CC_POOL_H
#define CC_POOL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops.h"

/* What one reaper pass did to the pools. */
struct pool_report {
    int started, failed, retired;
};

/* The spec key of a challenge as this configuration starts it (image, ports,
 * flag template and variable, limits, ...): a claim takes only a pool
 * container with the same key. -1 when the challenge is misconfigured. */
int pool_spec_key(const struct cc_config *cfg, const struct ctfd_challenge *ch, char out[17]);

/* Inside the caller's admission transaction (after its limits passed): claim
 * a running pool container of the challenge for the account, with a fresh
 * deadline. *claimed false: none available (start one cold). */
int pool_claim(struct app *app, const struct ctfd_challenge *ch, const char *account_kind,
               int64_t account_id, int64_t user_id, int64_t deadline, int64_t now, int64_t *id,
               bool *claimed, struct cc_error *err);

/* Reaper: retire the pool containers that are too many (size lowered, pools
 * off, challenge gone) or stale (challenge settings changed), then start the
 * missing ones, for at most a few seconds or until *stop is set. */
void pool_tend(struct app *app, arena_t *a, int64_t now, const volatile sig_atomic_t *stop,
               struct pool_report *rep);

/* Retire one pool container (running -> stopping only while it is still the
 * pool's, remove the engine object, end the row). Claimed meanwhile: nothing. */
int pool_retire(struct app *app, int64_t id, const char *name, const char *end_state,
                const char *reason, int64_t now, struct cc_error *err);

#endif

/* lifecycle.c: the rules (see lifecycle.h). Pure: no I/O, no clock. */
#include "lifecycle.h"

#include <string.h>

static const char *const state_names[ST__MAX] = {
    [ST_STARTING] = "starting", [ST_RUNNING] = "running", [ST_STOPPING] = "stopping",
    [ST_STOPPED] = "stopped",   [ST_EXPIRED] = "expired", [ST_REVERTED] = "reverted",
    [ST_FAILED] = "failed",     [ST_LOST] = "lost",
};

const char *lifecycle_state_str(enum cc_state s)
{
    return (unsigned)s < ST__MAX ? state_names[s] : "unknown";
}

int lifecycle_state_parse(const char *s)
{
    for (int i = 0; i < ST__MAX; i++)
        if (strcmp(state_names[i], s) == 0)
            return i;
    return -1;
}

bool lifecycle_state_live(enum cc_state s)
{
    return s == ST_STARTING || s == ST_RUNNING || s == ST_STOPPING;
}

int64_t lifecycle_cooldown_left(const struct lc_limits *l, int64_t last_action_at, int64_t now)
{
    if (last_action_at <= 0 || l->cooldown <= 0)
        return 0; /* the first start is never held back */
    int64_t until = last_action_at + l->cooldown;
    return until > now ? until - now : 0;
}

static enum cc_err cooldown(const struct lc_limits *l, const struct lc_account *a, int64_t now,
                            int *retry_after)
{
    int64_t left = lifecycle_cooldown_left(l, a->last_action_at, now);
    if (left > 0) {
        *retry_after = (int)left;
        return ERR_COOLDOWN;
    }
    return ERR_OK;
}

enum cc_err lifecycle_check_start(const struct lc_limits *l, const struct lc_account *a,
                                  int64_t now, int *retry_after)
{
    *retry_after = 0;
    if (a->live_count >= l->max_per_account)
        return ERR_CONTAINER_LIMIT_REACHED;
    enum cc_err e = cooldown(l, a, now, retry_after);
    if (e != ERR_OK)
        return e;
    if (l->max_total > 0 && a->live_total >= l->max_total) {
        *retry_after = 30;
        return ERR_CAPACITY_FULL;
    }
    return ERR_OK;
}

enum cc_err lifecycle_check_revert(const struct lc_limits *l, const struct lc_account *a,
                                   enum cc_state state, int64_t now, int *retry_after)
{
    *retry_after = 0;
    if (state != ST_RUNNING)
        return ERR_CONTAINER_BUSY;
    return cooldown(l, a, now, retry_after);
}

enum cc_err lifecycle_check_extend(const struct lc_limits *l, const struct lc_account *a,
                                   enum cc_state state, int64_t renewals, int64_t now,
                                   int *retry_after)
{
    *retry_after = 0;
    if (state != ST_RUNNING)
        return ERR_CONTAINER_BUSY;
    if (renewals >= l->max_renewals)
        return ERR_RENEWAL_LIMIT_REACHED;
    return cooldown(l, a, now, retry_after);
}

int64_t lifecycle_deadline(const struct lc_limits *l, int64_t now)
{
    return now + l->lifetime;
}

int64_t lifecycle_extended_deadline(const struct lc_limits *l, int64_t deadline)
{
    return deadline + l->extend;
}

int64_t lifecycle_seconds_left(int64_t deadline, int64_t now)
{
    return deadline > now ? deadline - now : 0;
}

int64_t lifecycle_renewals_left(const struct lc_limits *l, int64_t renewals)
{
    return renewals < l->max_renewals ? l->max_renewals - renewals : 0;
}

bool lifecycle_expired(int64_t deadline, int64_t now)
{
    return now >= deadline;
}

enum cc_err lifecycle_check_ctf_time(int64_t start, int64_t end, bool paused, bool is_admin,
                                     int64_t now)
{
    if (is_admin)
        return ERR_OK;
    if (start > 0 && now <= start) /* CTFd: started only when now > start */
        return ERR_CTF_NOT_STARTED;
    if (end > 0 && now > end)
        return ERR_CTF_ENDED;
    if (paused)
        return ERR_CTF_PAUSED;
    return ERR_OK;
}

static bool contains(const int64_t *set, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == v)
            return true;
    return false;
}

bool lifecycle_prereqs_met(const int64_t *prereqs, size_t nprereqs, const int64_t *solved,
                           size_t nsolved, const int64_t *existing, size_t nexisting)
{
    for (size_t i = 0; i < nprereqs; i++)
        if (contains(existing, nexisting, prereqs[i]) && !contains(solved, nsolved, prereqs[i]))
            return false;
    return true;
}

int64_t lifecycle_pool_deficit(const struct lc_pool *p, int64_t now)
{
    if (p->size <= 0 || p->max_total <= 0)
        return 0;
    if (p->last_failure > 0 && now < p->last_failure + p->retry)
        return 0; /* an image that fails to start is not retried every tick */
    int64_t want = p->size - p->live;
    int64_t room = p->max_total - p->live_total;
    int64_t n = want < room ? want : room;
    return n > 0 ? n : 0;
}

int64_t lifecycle_pool_claim_after(int64_t now)
{
    return now + LC_POOL_CLAIM_MARGIN;
}

void lifecycle_pool_spec_key(const char *const *parts, size_t n, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)(parts[i] ? parts[i] : "");
        for (; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h *= 1099511628211ULL; /* the separator (a zero byte): "ab","c" != "a","bc" */
    }
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[h & 0xf];
        h >>= 4;
    }
    out[16] = '\0';
}

/* test_lifecycle.c: the rules, as tables of cases.
 *
 * Start (limit, cooldown, capacity), revert, extend, deadlines, the CTF's
 * time window with CTFd's boundaries, prerequisites, states. Every case
 * passes `now` explicitly: nothing here reads a clock or sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "lifecycle.h"

#define NOW 1700000000LL
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct lc_limits base = {
    .max_per_account = 1,
    .max_total = 0,
    .max_renewals = 5,
    .cooldown = 300,
    .lifetime = 3600,
    .extend = 3600,
};

static void expect_err(size_t i, enum cc_err got, enum cc_err want, int retry, int want_retry)
{
    if (got != want || retry != want_retry)
        fail_msg("case %zu: got %s (retry_after %d), want %s (retry_after %d)", i,
                 err_code_str(got), retry, err_code_str(want), want_retry);
}

/* ---- start ----------------------------------------------------------------------- */

static void test_check_start_table(void **state)
{
    static const struct {
        int64_t per_account, max_total, cooldown;
        int64_t last_action_at, live_count, live_total;
        int64_t now;
        enum cc_err want;
        int retry_after;
    } cases[] = {
        /* first start: never cooled down, even "just now" by the clock */
        {1, 0, 300, 0, 0, 0, NOW, ERR_OK, 0},
        {1, 0, 300, 0, 0, 0, 1, ERR_OK, 0},
        /* per-account limit */
        {1, 0, 300, 0, 1, 1, NOW, ERR_CONTAINER_LIMIT_REACHED, 0},
        {2, 0, 300, 0, 1, 1, NOW, ERR_OK, 0},
        {2, 0, 300, 0, 2, 2, NOW, ERR_CONTAINER_LIMIT_REACHED, 0},
        {2, 0, 300, 0, 5, 5, NOW, ERR_CONTAINER_LIMIT_REACHED, 0},
        /* the limit is reported before the cooldown */
        {1, 0, 300, NOW - 10, 1, 1, NOW, ERR_CONTAINER_LIMIT_REACHED, 0},
        /* cooldown: retry_after is what is left */
        {1, 0, 300, NOW - 10, 0, 0, NOW, ERR_COOLDOWN, 290},
        {1, 0, 300, NOW, 0, 0, NOW, ERR_COOLDOWN, 300},
        {1, 0, 300, NOW - 299, 0, 0, NOW, ERR_COOLDOWN, 1},
        {1, 0, 300, NOW - 300, 0, 0, NOW, ERR_OK, 0},
        {1, 0, 300, NOW - 100000, 0, 0, NOW, ERR_OK, 0},
        /* a clock that went back still holds the account, at most the full wait + skew */
        {1, 0, 300, NOW + 5, 0, 0, NOW, ERR_COOLDOWN, 305},
        /* no cooldown configured */
        {1, 0, 0, NOW, 0, 0, NOW, ERR_OK, 0},
        /* global capacity when max_total > 0 */
        {1, 10, 300, 0, 0, 9, NOW, ERR_OK, 0},
        {1, 10, 300, 0, 0, 10, NOW, ERR_CAPACITY_FULL, 30},
        {1, 10, 300, 0, 0, 11, NOW, ERR_CAPACITY_FULL, 30},
        {1, 1, 300, 0, 0, 1, NOW, ERR_CAPACITY_FULL, 30},
        /* the cooldown is reported before capacity */
        {1, 10, 300, NOW - 1, 0, 10, NOW, ERR_COOLDOWN, 299},
        /* 0 = unlimited, whatever the total */
        {1, 0, 300, 0, 0, 1000000, NOW, ERR_OK, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct lc_limits l = base;
        l.max_per_account = cases[i].per_account;
        l.max_total = cases[i].max_total;
        l.cooldown = cases[i].cooldown;
        struct lc_account a = {cases[i].last_action_at, cases[i].live_count, cases[i].live_total};
        int retry = -1;
        enum cc_err e = lifecycle_check_start(&l, &a, cases[i].now, &retry);
        expect_err(i, e, cases[i].want, retry, cases[i].retry_after);
    }
}

/* ---- revert ------------------------------------------------------------------------ */

static void test_check_revert_table(void **state)
{
    static const struct {
        enum cc_state st;
        int64_t last_action_at, now;
        enum cc_err want;
        int retry_after;
    } cases[] = {
        {ST_RUNNING, 0, NOW, ERR_OK, 0},
        {ST_RUNNING, NOW - 301, NOW, ERR_OK, 0},
        {ST_RUNNING, NOW - 300, NOW, ERR_OK, 0},
        {ST_RUNNING, NOW - 200, NOW, ERR_COOLDOWN, 100},
        {ST_STARTING, 0, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_STOPPING, 0, NOW, ERR_CONTAINER_BUSY, 0},
        /* busy is reported before the cooldown */
        {ST_STARTING, NOW - 1, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_STOPPED, 0, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_EXPIRED, 0, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_REVERTED, 0, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_FAILED, 0, NOW, ERR_CONTAINER_BUSY, 0},
        {ST_LOST, 0, NOW, ERR_CONTAINER_BUSY, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        /* A revert needs no new slot: a full account and full capacity do not matter. */
        struct lc_limits l = base;
        l.max_total = 1;
        struct lc_account a = {cases[i].last_action_at, 1, 1};
        int retry = -1;
        enum cc_err e = lifecycle_check_revert(&l, &a, cases[i].st, cases[i].now, &retry);
        expect_err(i, e, cases[i].want, retry, cases[i].retry_after);
    }
}

/* ---- extend ------------------------------------------------------------------------ */

static void test_check_extend_table(void **state)
{
    static const struct {
        enum cc_state st;
        int64_t max_renewals, renewals, last_action_at;
        enum cc_err want;
        int retry_after;
    } cases[] = {
        {ST_RUNNING, 5, 0, 0, ERR_OK, 0},
        {ST_RUNNING, 5, 4, 0, ERR_OK, 0},
        {ST_RUNNING, 5, 5, 0, ERR_RENEWAL_LIMIT_REACHED, 0},
        {ST_RUNNING, 5, 6, 0, ERR_RENEWAL_LIMIT_REACHED, 0},
        {ST_RUNNING, 0, 0, 0, ERR_RENEWAL_LIMIT_REACHED, 0},
        {ST_RUNNING, 5, 1, NOW - 60, ERR_COOLDOWN, 240},
        {ST_RUNNING, 5, 1, NOW - 300, ERR_OK, 0},
        /* the renewal limit is reported before the cooldown */
        {ST_RUNNING, 5, 5, NOW - 60, ERR_RENEWAL_LIMIT_REACHED, 0},
        /* not running -> busy, before anything else */
        {ST_STARTING, 5, 0, 0, ERR_CONTAINER_BUSY, 0},
        {ST_STOPPING, 5, 0, 0, ERR_CONTAINER_BUSY, 0},
        {ST_STOPPING, 5, 5, NOW - 1, ERR_CONTAINER_BUSY, 0},
        {ST_STOPPED, 5, 0, 0, ERR_CONTAINER_BUSY, 0},
        {ST_EXPIRED, 5, 0, 0, ERR_CONTAINER_BUSY, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct lc_limits l = base;
        l.max_renewals = cases[i].max_renewals;
        struct lc_account a = {cases[i].last_action_at, 1, 1};
        int retry = -1;
        enum cc_err e = lifecycle_check_extend(&l, &a, cases[i].st, cases[i].renewals, NOW, &retry);
        expect_err(i, e, cases[i].want, retry, cases[i].retry_after);
    }
}

static void test_cooldown_left_table(void **state)
{
    static const struct {
        int64_t cooldown, last, now, want;
    } cases[] = {
        {300, 0, NOW, 0},         {300, -5, NOW, 0},        {0, NOW, NOW, 0},
        {-1, NOW, NOW, 0},        {300, NOW, NOW, 300},     {300, NOW - 1, NOW, 299},
        {300, NOW - 300, NOW, 0}, {300, NOW - 301, NOW, 0}, {60, NOW + 10, NOW, 70},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct lc_limits l = base;
        l.cooldown = cases[i].cooldown;
        int64_t got = lifecycle_cooldown_left(&l, cases[i].last, cases[i].now);
        if (got != cases[i].want)
            fail_msg("case %zu: %lld, want %lld", i, (long long)got, (long long)cases[i].want);
    }
}

/* ---- deadlines ------------------------------------------------------------------------ */

static void test_deadlines(void **state)
{
    struct lc_limits l = base;
    l.lifetime = 1800;
    l.extend = 600;
    int64_t d = lifecycle_deadline(&l, NOW);
    assert_int_equal(d, NOW + 1800);
    /* Extending adds to the deadline, not to now: time already left is kept. */
    int64_t d2 = lifecycle_extended_deadline(&l, d);
    assert_int_equal(d2, NOW + 2400);
    assert_int_equal(lifecycle_extended_deadline(&l, d2), NOW + 3000);
    /* Five renewals later the total is lifetime + 5 * extend. */
    int64_t dd = d;
    for (int i = 0; i < 5; i++)
        dd = lifecycle_extended_deadline(&l, dd);
    assert_int_equal(dd, NOW + 1800 + 5 * 600);
}

static void test_seconds_left_and_expired_table(void **state)
{
    static const struct {
        int64_t deadline, now, left;
        bool expired;
    } cases[] = {
        {NOW + 100, NOW, 100, false},
        {NOW + 1, NOW, 1, false},
        {NOW, NOW, 0, true}, /* at the deadline it is over */
        {NOW - 1, NOW, 0, true},
        {NOW - 100000, NOW, 0, true}, /* never negative */
        {0, NOW, 0, true},
        {INT64_MAX, NOW, INT64_MAX - NOW, false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t left = lifecycle_seconds_left(cases[i].deadline, cases[i].now);
        if (left != cases[i].left ||
            lifecycle_expired(cases[i].deadline, cases[i].now) != cases[i].expired)
            fail_msg("case %zu: left %lld, want %lld", i, (long long)left,
                     (long long)cases[i].left);
        assert_true(left >= 0);
    }
}

static void test_renewals_left_table(void **state)
{
    static const struct {
        int64_t max, used, want;
    } cases[] = {{5, 0, 5}, {5, 4, 1}, {5, 5, 0}, {5, 9, 0}, {0, 0, 0}};
    for (size_t i = 0; i < N(cases); i++) {
        struct lc_limits l = base;
        l.max_renewals = cases[i].max;
        assert_int_equal(lifecycle_renewals_left(&l, cases[i].used), cases[i].want);
    }
}

/* ---- the CTF's time window (CTFd semantics) ------------------------------------------- */

static void test_ctf_time_table(void **state)
{
    static const struct {
        int64_t start, end;
        bool paused, admin;
        int64_t now;
        enum cc_err want;
    } cases[] = {
        /* unset bounds */
        {0, 0, false, false, NOW, ERR_OK},
        {0, 0, true, false, NOW, ERR_CTF_PAUSED},
        /* CTFd: started only when now > start */
        {NOW + 1, 0, false, false, NOW, ERR_CTF_NOT_STARTED},
        {NOW, 0, false, false, NOW, ERR_CTF_NOT_STARTED},
        {NOW - 1, 0, false, false, NOW, ERR_OK},
        /* ended only when now > end */
        {0, NOW, false, false, NOW, ERR_OK},
        {0, NOW - 1, false, false, NOW, ERR_CTF_ENDED},
        {0, NOW + 1, false, false, NOW, ERR_OK},
        {NOW - 100, NOW + 100, false, false, NOW, ERR_OK},
        {NOW - 100, NOW - 50, false, false, NOW, ERR_CTF_ENDED},
        {NOW + 50, NOW + 100, false, false, NOW, ERR_CTF_NOT_STARTED},
        /* not started / ended before paused */
        {NOW + 50, 0, true, false, NOW, ERR_CTF_NOT_STARTED},
        {0, NOW - 50, true, false, NOW, ERR_CTF_ENDED},
        {NOW - 50, NOW + 50, true, false, NOW, ERR_CTF_PAUSED},
        /* admins are exempt from all of it */
        {NOW + 50, 0, false, true, NOW, ERR_OK},
        {0, NOW - 50, false, true, NOW, ERR_OK},
        {0, 0, true, true, NOW, ERR_OK},
    };
    for (size_t i = 0; i < N(cases); i++) {
        enum cc_err e = lifecycle_check_ctf_time(cases[i].start, cases[i].end, cases[i].paused,
                                                 cases[i].admin, cases[i].now);
        if (e != cases[i].want)
            fail_msg("case %zu: got %s, want %s", i, err_code_str(e), err_code_str(cases[i].want));
    }
}

/* ---- prerequisites ------------------------------------------------------------------- */

static void test_prereqs_table(void **state)
{
    static const struct {
        int64_t prereqs[4];
        size_t np;
        int64_t solved[4];
        size_t ns;
        int64_t existing[4];
        size_t ne;
        bool want;
    } cases[] = {
        {{0}, 0, {0}, 0, {0}, 0, true},             /* none */
        {{1}, 1, {1}, 1, {1}, 1, true},             /* solved */
        {{1}, 1, {0}, 0, {1}, 1, false},            /* unsolved existing blocks */
        {{1, 2}, 2, {2}, 1, {1, 2}, 2, false},      /* one missing */
        {{1, 2}, 2, {2, 1}, 2, {1, 2, 3}, 3, true}, /* order does not matter */
        {{7}, 1, {0}, 0, {1, 2}, 2, true},          /* deleted prerequisite ignored */
        {{7, 1}, 2, {1}, 1, {1}, 1, true},          /* deleted one + solved one */
        {{7, 1}, 2, {0}, 0, {1}, 1, false},         /* deleted one + unsolved one */
        {{1}, 1, {1, 9, 8}, 3, {0}, 0, true},       /* nothing exists: nothing blocks */
        {{3, 3}, 2, {3}, 1, {3}, 1, true},          /* duplicates */
        {{5}, 1, {4, 6}, 2, {4, 5, 6}, 3, false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        bool got = lifecycle_prereqs_met(cases[i].prereqs, cases[i].np, cases[i].solved,
                                         cases[i].ns, cases[i].existing, cases[i].ne);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
    }
}

static void test_prereqs_null_arrays_when_empty(void **state)
{
    int64_t one = 1;
    assert_true(lifecycle_prereqs_met(NULL, 0, NULL, 0, NULL, 0));
    assert_true(lifecycle_prereqs_met(&one, 1, NULL, 0, NULL, 0));
    assert_false(lifecycle_prereqs_met(&one, 1, NULL, 0, &one, 1));
}

/* ---- states --------------------------------------------------------------------------- */

static void test_states_table(void **state)
{
    static const struct {
        enum cc_state s;
        const char *name;
        bool live;
    } cases[] = {
        {ST_STARTING, "starting", true}, {ST_RUNNING, "running", true},
        {ST_STOPPING, "stopping", true}, {ST_STOPPED, "stopped", false},
        {ST_EXPIRED, "expired", false},  {ST_REVERTED, "reverted", false},
        {ST_FAILED, "failed", false},    {ST_LOST, "lost", false},
    };
    assert_int_equal(N(cases), ST__MAX);
    for (size_t i = 0; i < N(cases); i++) {
        assert_string_equal(lifecycle_state_str(cases[i].s), cases[i].name);
        assert_int_equal(lifecycle_state_parse(cases[i].name), cases[i].s);
        assert_int_equal(lifecycle_state_live(cases[i].s), cases[i].live);
    }
    /* Names are unique. */
    for (int i = 0; i < ST__MAX; i++)
        for (int j = i + 1; j < ST__MAX; j++)
            assert_string_not_equal(lifecycle_state_str(i), lifecycle_state_str(j));
}

static void test_states_unknown(void **state)
{
    static const char *const bad[] = {"", "RUNNING", "run", "running ", "unknown", "live"};
    for (size_t i = 0; i < N(bad); i++)
        assert_int_equal(lifecycle_state_parse(bad[i]), -1);
    assert_string_equal(lifecycle_state_str(ST__MAX), "unknown");
    assert_string_equal(lifecycle_state_str((enum cc_state)77), "unknown");
    assert_false(lifecycle_state_live(ST__MAX));
}

/* ---- warm pools ------------------------------------------------------------------ */

static void test_pool_deficit_table(void **state)
{
    (void)state;
    static const struct {
        struct lc_pool p;
        int64_t now, want;
    } cases[] = {
        /* size, live, live_total, max_total, last_failure, retry */
        {{2, 0, 0, 20, 0, 30}, NOW, 2},                 /* empty pool: fill to size */
        {{2, 1, 1, 20, 0, 30}, NOW, 1},
        {{2, 2, 5, 20, 0, 30}, NOW, 0},                 /* full */
        {{2, 3, 5, 20, 0, 30}, NOW, 0},                 /* too many: that is excess, not < 0 */
        {{5, 0, 18, 20, 0, 30}, NOW, 2},                /* the global cap leaves room for 2 */
        {{5, 0, 20, 20, 0, 30}, NOW, 0},                /* global cap reached */
        {{5, 0, 25, 20, 0, 30}, NOW, 0},                /* over the cap (it was lowered) */
        {{0, 0, 0, 20, 0, 30}, NOW, 0},                 /* warm_pool 0 / NULL: off */
        {{-1, 0, 0, 20, 0, 30}, NOW, 0},
        {{2, 0, 0, 0, 0, 30}, NOW, 0},                  /* warm_pool_max_total 0: pools off */
        {{2, 0, 0, 20, NOW - 10, 30}, NOW, 0},          /* a failure 10 s ago: wait */
        {{2, 0, 0, 20, NOW - 29, 30}, NOW, 0},
        {{2, 0, 0, 20, NOW - 30, 30}, NOW, 2},          /* the retry delay has passed */
        {{2, 0, 0, 20, NOW - 3600, 30}, NOW, 2},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t got = lifecycle_pool_deficit(&cases[i].p, cases[i].now);
        if (got != cases[i].want)
            fail_msg("case %zu: deficit %lld, want %lld", i, (long long)got,
                     (long long)cases[i].want);
    }
}

static void test_pool_claim_after(void **state)
{
    (void)state;
    /* Claims take rows with deadline > claim_after(now); the reaper expires rows
     * with deadline <= now: the two never meet, whatever the margin's use. */
    assert_int_equal(lifecycle_pool_claim_after(NOW), NOW + LC_POOL_CLAIM_MARGIN);
    assert_true(LC_POOL_CLAIM_MARGIN > 0);
    assert_true(lifecycle_pool_claim_after(NOW) > NOW);
}

static void test_pool_spec_key(void **state)
{
    (void)state;
    char k[17], k2[17];
    /* Pinned against an independent FNV-1a 64 (each part followed by a NUL). */
    lifecycle_pool_spec_key(NULL, 0, k);
    assert_string_equal(k, "cbf29ce484222325");
    const char *a[] = {"a"};
    lifecycle_pool_spec_key(a, 1, k);
    assert_string_equal(k, "089be207b544f1e4");
    const char *web[] = {"ctfd-containers/demo-web:latest", "8080/http"};
    lifecycle_pool_spec_key(web, 2, k);
    assert_string_equal(k, "68ad2b673d4377e4");
    /* The separator matters: "ab","c" and "a","bc" differ. */
    const char *x[] = {"ab", "c"}, *y[] = {"a", "bc"};
    lifecycle_pool_spec_key(x, 2, k);
    lifecycle_pool_spec_key(y, 2, k2);
    assert_string_equal(k, "ad22872f536e4705");
    assert_string_equal(k2, "401801fc84f3ca79");
    /* A NULL part reads as empty. */
    const char *n1[] = {"a", NULL}, *n2[] = {"a", ""};
    lifecycle_pool_spec_key(n1, 2, k);
    lifecycle_pool_spec_key(n2, 2, k2);
    assert_string_equal(k, k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_start_table),
        cmocka_unit_test(test_check_revert_table),
        cmocka_unit_test(test_check_extend_table),
        cmocka_unit_test(test_cooldown_left_table),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_seconds_left_and_expired_table),
        cmocka_unit_test(test_renewals_left_table),
        cmocka_unit_test(test_ctf_time_table),
        cmocka_unit_test(test_prereqs_table),
        cmocka_unit_test(test_prereqs_null_arrays_when_empty),
        cmocka_unit_test(test_states_table),
        cmocka_unit_test(test_states_unknown),
        cmocka_unit_test(test_pool_deficit_table),
        cmocka_unit_test(test_pool_claim_after),
        cmocka_unit_test(test_pool_spec_key),
    };
    return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}

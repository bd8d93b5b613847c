/* test_errors.c: the one error table.
 *
 * Every code has a unique, stable, upper-case string, a 4xx/5xx status (OK
 * aside) and a message; err_set with and without a message; the string round
 * trip; 503s are temporary and nothing else is. The stable strings clients
 * and the plugin depend on are pinned by a table here. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

/* The public contract (docs/api.md): changing one of these breaks clients. */
static const struct {
    enum cc_err e;
    const char *code;
    int status;
} pinned[] = {
    {ERR_OK, "OK", 200},
    {ERR_BAD_REQUEST, "BAD_REQUEST", 400},
    {ERR_INVALID_JSON, "INVALID_JSON", 400},
    {ERR_INVALID_FIELD, "INVALID_FIELD", 400},
    {ERR_CONFIRM_REQUIRED, "CONFIRM_REQUIRED", 400},
    {ERR_NOT_AUTHENTICATED, "NOT_AUTHENTICATED", 401},
    {ERR_USER_BANNED, "USER_BANNED", 403},
    {ERR_USER_HIDDEN, "USER_HIDDEN", 403},
    {ERR_TEAM_REQUIRED, "TEAM_REQUIRED", 403},
    {ERR_TEAM_BANNED, "TEAM_BANNED", 403},
    {ERR_TEAM_HIDDEN, "TEAM_HIDDEN", 403},
    {ERR_EMAIL_UNVERIFIED, "EMAIL_UNVERIFIED", 403},
    {ERR_ADMIN_REQUIRED, "ADMIN_REQUIRED", 403},
    {ERR_CTF_NOT_STARTED, "CTF_NOT_STARTED", 403},
    {ERR_CTF_ENDED, "CTF_ENDED", 403},
    {ERR_CTF_PAUSED, "CTF_PAUSED", 403},
    {ERR_CHALLENGE_LOCKED, "CHALLENGE_LOCKED", 403},
    {ERR_PREREQUISITES_UNMET, "PREREQUISITES_UNMET", 403},
    {ERR_NOT_FOUND, "NOT_FOUND", 404},
    {ERR_CHALLENGE_NOT_FOUND, "CHALLENGE_NOT_FOUND", 404},
    {ERR_CONTAINER_NOT_FOUND, "CONTAINER_NOT_FOUND", 404},
    {ERR_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405},
    {ERR_CONTAINER_LIMIT_REACHED, "CONTAINER_LIMIT_REACHED", 409},
    {ERR_RENEWAL_LIMIT_REACHED, "RENEWAL_LIMIT_REACHED", 409},
    {ERR_CONTAINER_BUSY, "CONTAINER_BUSY", 409},
    {ERR_BODY_TOO_LARGE, "BODY_TOO_LARGE", 413},
    {ERR_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", 415},
    {ERR_COOLDOWN, "COOLDOWN", 429},
    {ERR_INTERNAL, "INTERNAL_ERROR", 500},
    {ERR_CHALLENGE_MISCONFIGURED, "CHALLENGE_MISCONFIGURED", 500},
    {ERR_IMAGE_MISSING, "IMAGE_MISSING", 500},
    {ERR_START_FAILED, "START_FAILED", 502},
    {ERR_CAPACITY_FULL, "CAPACITY_FULL", 503},
    {ERR_PORTS_EXHAUSTED, "PORTS_EXHAUSTED", 503},
    {ERR_ENGINE_UNAVAILABLE, "ENGINE_UNAVAILABLE", 503},
    {ERR_DATABASE_UNAVAILABLE, "DATABASE_UNAVAILABLE", 503},
    {ERR_NONCE_INVALID, "NONCE_INVALID", 403},
    {ERR_FORBIDDEN, "FORBIDDEN", 403},
    {ERR_AUTH_UNAVAILABLE, "AUTH_UNAVAILABLE", 503},
    {ERR_APP_UNAVAILABLE, "APP_UNAVAILABLE", 503},
    /* exposure and hardening (docs/exposure.md) */
    {ERR_CAPABILITY_FORBIDDEN, "CAPABILITY_FORBIDDEN", 500},
    {ERR_ROUTE_NOT_FOUND, "ROUTE_NOT_FOUND", 404},
};
#define NPINNED (sizeof(pinned) / sizeof(pinned[0]))

static void test_pinned_codes_and_statuses(void **state)
{
    /* The pin table covers the whole enum, in order. */
    assert_int_equal(NPINNED, ERR__MAX);
    for (size_t i = 0; i < NPINNED; i++) {
        assert_int_equal(pinned[i].e, (enum cc_err)i);
        assert_string_equal(err_code_str(pinned[i].e), pinned[i].code);
        assert_int_equal(err_status(pinned[i].e), pinned[i].status);
    }
}

static void test_every_code_well_formed(void **state)
{
    for (int i = 0; i < ERR__MAX; i++) {
        const char *code = err_code_str((enum cc_err)i);
        const char *msg = err_default_message((enum cc_err)i);
        int status = err_status((enum cc_err)i);
        assert_non_null(code);
        assert_true(strlen(code) > 1);
        for (const char *p = code; *p; p++)
            assert_true(isupper((unsigned char)*p) || *p == '_');
        if (i == ERR_OK)
            assert_int_equal(status, 200);
        else
            assert_true(status >= 400 && status <= 599);
        /* A sentence for people: capitalised, ends with a full stop ("OK" aside). */
        assert_non_null(msg);
        assert_true(strlen(msg) > 1);
        assert_true(isupper((unsigned char)msg[0]));
        if (i != ERR_OK)
            assert_int_equal(msg[strlen(msg) - 1], '.');
        assert_true(strlen(msg) < sizeof(((struct cc_error *)0)->message));
    }
}

static void test_codes_unique(void **state)
{
    for (int i = 0; i < ERR__MAX; i++)
        for (int j = i + 1; j < ERR__MAX; j++)
            assert_string_not_equal(err_code_str((enum cc_err)i), err_code_str((enum cc_err)j));
}

static void test_from_str_round_trip(void **state)
{
    for (int i = 0; i < ERR__MAX; i++)
        assert_int_equal(err_from_str(err_code_str((enum cc_err)i)), i);
    static const char *const unknown[] = {"",          "ok",           "cooldown", "COOLDOWN ",
                                          " COOLDOWN", "ERR_COOLDOWN", "INTERNAL", "NOPE"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(err_from_str(unknown[i]), ERR__MAX);
}

static void test_out_of_range_is_internal(void **state)
{
    assert_string_equal(err_code_str(ERR__MAX), "INTERNAL_ERROR");
    assert_int_equal(err_status((enum cc_err)999), 500);
    assert_string_equal(err_default_message((enum cc_err)(ERR__MAX + 5)),
                        err_default_message(ERR_INTERNAL));
    struct cc_error e;
    err_set(&e, (enum cc_err)12345, NULL);
    assert_int_equal(e.code, ERR_INTERNAL);
}

/* Only 503s are worth retrying; everything else is permanent. */
static void test_temporary_iff_503(void **state)
{
    for (int i = 0; i < ERR__MAX; i++) {
        struct cc_error e;
        memset(&e, 0xFF, sizeof(e));
        err_set(&e, (enum cc_err)i, NULL);
        assert_int_equal(e.temporary, err_status((enum cc_err)i) == 503);
    }
    struct cc_error e;
    err_set(&e, ERR_ENGINE_UNAVAILABLE, NULL);
    assert_true(e.temporary);
    err_set(&e, ERR_DATABASE_UNAVAILABLE, NULL);
    assert_true(e.temporary);
    err_set(&e, ERR_START_FAILED, NULL);
    assert_false(e.temporary);
}

static void test_set_default_message(void **state)
{
    struct cc_error e;
    memset(&e, 0x55, sizeof(e)); /* garbage from a previous use */
    assert_int_equal(err_set(&e, ERR_COOLDOWN, NULL), -1);
    assert_int_equal(e.code, ERR_COOLDOWN);
    assert_int_equal(e.retry_after, 0);
    assert_string_equal(e.message, "");
    assert_string_equal(err_message(&e), err_default_message(ERR_COOLDOWN));
}

static void test_set_specific_message(void **state)
{
    struct cc_error e;
    assert_int_equal(err_set(&e, ERR_IMAGE_MISSING, "Image '%s' (%d) is missing.", "web", 3), -1);
    assert_string_equal(err_message(&e), "Image 'web' (3) is missing.");
    assert_false(e.temporary);
    /* A second set replaces the first entirely. */
    e.retry_after = 30;
    err_set(&e, ERR_CAPACITY_FULL, NULL);
    assert_string_equal(err_message(&e), err_default_message(ERR_CAPACITY_FULL));
    assert_int_equal(e.retry_after, 0);
    assert_true(e.temporary);
}

static void test_set_long_message_truncated(void **state)
{
    char longer[1000];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    struct cc_error e;
    err_set(&e, ERR_INVALID_FIELD, "%s", longer);
    assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
}

static void test_set_null_err_is_safe(void **state)
{
    assert_int_equal(err_set(NULL, ERR_INTERNAL, "ignored %d", 1), -1);
}

static void test_clear(void **state)
{
    struct cc_error e;
    err_set(&e, ERR_PORTS_EXHAUSTED, "no port");
    e.retry_after = 5;
    err_clear(&e);
    assert_int_equal(e.code, ERR_OK);
    assert_false(e.temporary);
    assert_int_equal(e.retry_after, 0);
    assert_string_equal(err_message(&e), "OK");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pinned_codes_and_statuses),
        cmocka_unit_test(test_every_code_well_formed),
        cmocka_unit_test(test_codes_unique),
        cmocka_unit_test(test_from_str_round_trip),
        cmocka_unit_test(test_out_of_range_is_internal),
        cmocka_unit_test(test_temporary_iff_503),
        cmocka_unit_test(test_set_default_message),
        cmocka_unit_test(test_set_specific_message),
        cmocka_unit_test(test_set_long_message_truncated),
        cmocka_unit_test(test_set_null_err_is_safe),
        cmocka_unit_test(test_clear),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}

/* fuzz_query.c: libFuzzer target for query strings and the id validators.
 *
 * Feeds any bytes (as a NUL-terminated string, with a fresh arena per input)
 * to http_parse_query, to http_req_init as QUERY_STRING, and to the integer
 * validators. Accepted queries must be within the caps, with non-empty,
 * distinct keys; http_req_init must agree with http_parse_query; an accepted
 * id must be in range and print back as the input without leading zeros.
 * Built with clang -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus
 * replay with tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* assert() vanishes under NDEBUG; a fuzz finding must never. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_query: check failed: %s\n", #cond);                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_pairs(const struct http_kv *kv, size_t n, size_t cap, size_t len)
{
    FUZZ_CHECK(n <= cap);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(kv[i].key != NULL && kv[i].value != NULL);
        FUZZ_CHECK(kv[i].key[0] != '\0');
        /* Decoding never lengthens. */
        FUZZ_CHECK(strlen(kv[i].key) + strlen(kv[i].value) <= len);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(kv[i].key, kv[j].key) != 0);
    }
}

static void check_validators(const char *s)
{
    struct cc_error err;
    int64_t v = 0;
    if (http_valid_id("id", s, &v, &err) == 0) {
        FUZZ_CHECK(v >= 1 && v <= INT32_MAX);
        const char *digits = s;
        while (*digits == '0')
            digits++;
        char back[32];
        snprintf(back, sizeof(back), "%lld", (long long)v);
        FUZZ_CHECK(strcmp(back, digits) == 0);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID_FIELD);
    }
    if (http_valid_int("n", s, -1000, 1000, &v, &err) == 0)
        FUZZ_CHECK(v >= -1000 && v <= 1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *qs = malloc(size + 1);
    FUZZ_CHECK(qs != NULL);
    memcpy(qs, data, size);
    qs[size] = '\0';
    size_t len = strlen(qs); /* bytes after a NUL are not part of the string */

    arena_t *a = arena_new(4096);
    struct http_kv kv[HTTP_MAX_PARAMS];
    size_t n = 0;
    int rc = http_parse_query(a, qs, kv, HTTP_MAX_PARAMS, &n);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(len <= HTTP_MAX_QUERY);
        check_pairs(kv, n, HTTP_MAX_PARAMS, len);
    }
    /* A small cap as well. */
    size_t n2 = 0;
    if (http_parse_query(a, qs, kv, 2, &n2) == 0) {
        check_pairs(kv, n2, 2, len);
        FUZZ_CHECK(rc == 0 && n2 == n);
    }

    /* The same string as a request's QUERY_STRING. */
    char *param = arena_printf(a, "QUERY_STRING=%s", qs);
    char *envp[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/api/v1/container", param, NULL};
    struct http_req r;
    http_req_init(&r, a, envp, NULL, NULL, 0);
    FUZZ_CHECK(r.query_bad == (len > 0 && rc != 0));
    struct cc_error err;
    static const char *const allowed[] = {"challenge_id", "page", NULL};
    int only = http_query_only(&r, allowed, &err);
    if (r.query_bad) {
        FUZZ_CHECK(only == -1 && err.code == ERR_BAD_REQUEST);
    } else {
        FUZZ_CHECK(r.nquery == n);
        check_pairs(r.query, r.nquery, HTTP_MAX_PARAMS, len);
        if (only == 0) {
            int64_t id;
            if (http_query_id(&r, "challenge_id", false, &id, &err) == 0)
                FUZZ_CHECK(id == 0 || (id >= 1 && id <= INT32_MAX));
        } else {
            FUZZ_CHECK(err.code == ERR_INVALID_FIELD);
            FUZZ_CHECK(strchr(err.message, '\n') == NULL);
        }
    }

    check_validators(qs);
    arena_free(a);
    free(qs);
    return 0;
}

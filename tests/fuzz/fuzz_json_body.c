/* fuzz_json_body.c: libFuzzer target for request bodies.
 *
 * Each input is a POST body: http_req_init with CONTENT_TYPE application/json
 * and CONTENT_LENGTH = size, a read callback that serves the input in small
 * pieces, then http_body_json and http_json_id on "challenge_id", as the
 * container API does. Checks: an over-cap body is refused unread, a parsed
 * body is an object that survives a dump and re-parse, an accepted id is in
 * range, and every failure carries a body error code. jansson values are
 * decref'd (libFuzzer's leak check runs per input). Built with clang
 * -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus replay with
 * tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY 16384 /* the max_body_bytes default */

/* assert() vanishes under NDEBUG; a fuzz finding must never. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_json_body: check failed: %s\n", #cond);                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct feed {
    const uint8_t *data;
    size_t size, pos;
    int calls;
};

/* Serves the input up to 7 bytes at a time, as a slow client would arrive. */
static long feed_read(void *ctx, char *buf, size_t n)
{
    struct feed *f = ctx;
    f->calls++;
    size_t k = f->size - f->pos;
    if (k > n)
        k = n;
    if (k > 7)
        k = 7;
    memcpy(buf, f->data + f->pos, k);
    f->pos += k;
    return (long)k;
}

static void check_object(json_t *j)
{
    struct cc_error err;
    FUZZ_CHECK(json_is_object(j));
    /* What we accepted, jansson can write and we accept again. */
    char *s = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(s != NULL);
    json_t *again = http_parse_json(s, strlen(s), &err);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(json_equal(j, again));
    json_decref(again);
    free(s);

    int64_t id = -1;
    if (http_json_id(j, "challenge_id", true, &id, &err) == 0) {
        FUZZ_CHECK(id >= 1 && id <= INT32_MAX);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID_FIELD);
        FUZZ_CHECK(id == 0);
    }
    if (http_json_id(j, "challenge_id", false, &id, &err) == 0)
        FUZZ_CHECK(id == 0 || (id >= 1 && id <= INT32_MAX));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t *a = arena_new(4096);
    struct feed f = {data, size, 0, 0};
    char *envp[] = {"REQUEST_METHOD=POST", "DOCUMENT_URI=/api/v1/container",
                    "CONTENT_TYPE=application/json", arena_printf(a, "CONTENT_LENGTH=%zu", size),
                    NULL};
    struct http_req r;
    struct cc_error err;
    err_clear(&err);
    http_req_init(&r, a, envp, feed_read, &f, FUZZ_MAX_BODY);
    json_t *j = http_body_json(&r, false, &err);
    if (size > FUZZ_MAX_BODY) {
        FUZZ_CHECK(j == NULL && err.code == ERR_BODY_TOO_LARGE);
        FUZZ_CHECK(f.calls == 0);
    } else if (j != NULL) {
        FUZZ_CHECK(size > 0 && f.pos == size);
        check_object(j);
        json_decref(j);
    } else {
        FUZZ_CHECK(err.code == ERR_INVALID_JSON);
        FUZZ_CHECK(f.pos == size);
    }
    arena_free(a);
    return 0;
}

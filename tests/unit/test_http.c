/* test_http.c: the request edge and the response envelope, plus the port
 * list format of ops.c (a parser of challenge settings, validated the same way).
 *
 * Query parsing, the id and integer validators, requests built from an envp
 * array with a fake body reader, bounded JSON bodies, JSON ids and the error
 * envelope (parsed back with jansson). No I/O, no FastCGI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ops.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int arena_setup(void **state)
{
    *state = arena_new(4096);
    return 0;
}

static int arena_teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* ---- a fake FastCGI body ---------------------------------------------------------- */

struct body {
    const char *data;
    size_t len, pos;
    size_t chunk; /* at most this many bytes per call; 0 = all */
    int calls;
    bool fail; /* return -1 once the data is served */
};

static long body_read(void *ctx, char *buf, size_t n)
{
    struct body *b = ctx;
    b->calls++;
    if (b->pos == b->len)
        return b->fail ? -1 : 0;
    size_t k = b->len - b->pos;
    if (k > n)
        k = n;
    if (b->chunk && k > b->chunk)
        k = b->chunk;
    memcpy(buf, b->data + b->pos, k);
    b->pos += k;
    return (long)k;
}

/* ---- http_parse_query ---------------------------------------------------------------- */

struct kv_want {
    const char *k, *v;
};

static void test_parse_query_good(void **state)
{
    static const struct {
        const char *qs;
        size_t n;
        struct kv_want kv[4];
    } cases[] = {
        {"", 0, {{0}}},
        {"a=1", 1, {{"a", "1"}}},
        {"a=1&b=2", 2, {{"a", "1"}, {"b", "2"}}},
        {"challenge_id=42&page=3", 2, {{"challenge_id", "42"}, {"page", "3"}}},
        {"q=%41%42%63", 1, {{"q", "ABc"}}},
        {"q=%4a%4A", 1, {{"q", "JJ"}}},
        {"q=a+b", 1, {{"q", "a b"}}},
        {"q=a%2Bb", 1, {{"q", "a+b"}}},
        {"a+b=c", 1, {{"a b", "c"}}},
        {"%61=1", 1, {{"a", "1"}}},
        {"q=%26%3D", 1, {{"q", "&="}}},
        {"a=", 1, {{"a", ""}}},
        {"a", 1, {{"a", ""}}},
        {"a&b=", 2, {{"a", ""}, {"b", ""}}},
        {"a=b=c", 1, {{"a", "b=c"}}},
        {"&&a=1&&b=2&", 2, {{"a", "1"}, {"b", "2"}}},
        {"q=%C3%A9", 1, {{"q", "\xc3\xa9"}}},
        {"A=1&a=2", 2, {{"A", "1"}, {"a", "2"}}}, /* keys are case-sensitive */
    };
    arena_t *a = *state;
    for (size_t i = 0; i < N(cases); i++) {
        struct http_kv kv[HTTP_MAX_PARAMS];
        size_t n = 99;
        if (http_parse_query(a, cases[i].qs, kv, HTTP_MAX_PARAMS, &n) != 0)
            fail_msg("case %zu '%s' refused", i, cases[i].qs);
        if (n != cases[i].n)
            fail_msg("case %zu '%s': %zu pairs, want %zu", i, cases[i].qs, n, cases[i].n);
        for (size_t j = 0; j < n; j++) {
            assert_string_equal(kv[j].key, cases[i].kv[j].k);
            assert_string_equal(kv[j].value, cases[i].kv[j].v);
        }
    }
}

static void test_parse_query_bad(void **state)
{
    static const char *const cases[] = {
        "a=1&a=2",   /* repeated key: ambiguous */
        "a=1&%61=2", /* the same key once decoded */
        "a&a",       /* repeated, no values */
        "a=%00",     /* NUL */
        "%00=1",     /* NUL in a key */
        "a=x%00y",   /* NUL inside */
        "a=%4",      /* short escape */
        "a=%",       /* bare escape */
        "%4",        /* short escape in a key */
        "a=%zz",     /* not hex */
        "a=%g0",     /* not hex, first digit */
        "a=%0g",     /* not hex, second digit */
        "a=% 1",     /* space in an escape */
        "%=1",       /* bare escape in a key */
        "=1",        /* empty key */
        "=",         /* empty key, empty value */
        "a=1&=2",    /* empty key after a good pair */
    };
    arena_t *a = *state;
    for (size_t i = 0; i < N(cases); i++) {
        struct http_kv kv[HTTP_MAX_PARAMS];
        size_t n;
        if (http_parse_query(a, cases[i], kv, HTTP_MAX_PARAMS, &n) != -1)
            fail_msg("case %zu '%s' accepted", i, cases[i]);
    }
}

static void test_parse_query_caps(void **state)
{
    arena_t *a = *state;
    struct http_kv kv[HTTP_MAX_PARAMS];
    size_t n;
    char qs[HTTP_MAX_QUERY + 64];
    /* Exactly HTTP_MAX_PARAMS distinct keys: fine; one more: refused. */
    size_t len = 0;
    for (int i = 0; i < HTTP_MAX_PARAMS; i++)
        len += (size_t)snprintf(qs + len, sizeof(qs) - len, "%sk%d=%d", i ? "&" : "", i, i);
    assert_int_equal(http_parse_query(a, qs, kv, HTTP_MAX_PARAMS, &n), 0);
    assert_int_equal(n, HTTP_MAX_PARAMS);
    assert_string_equal(kv[HTTP_MAX_PARAMS - 1].key, "k31");
    snprintf(qs + len, sizeof(qs) - len, "&extra=1");
    assert_int_equal(http_parse_query(a, qs, kv, HTTP_MAX_PARAMS, &n), -1);
    /* The cap argument is honoured. */
    assert_int_equal(http_parse_query(a, "a=1&b=2&c=3", kv, 2, &n), -1);
    assert_int_equal(http_parse_query(a, "a=1&b=2", kv, 2, &n), 0);

    /* Exactly HTTP_MAX_QUERY bytes: fine; one more: refused. */
    memset(qs, 'v', HTTP_MAX_QUERY);
    memcpy(qs, "k=", 2);
    qs[HTTP_MAX_QUERY] = '\0';
    assert_int_equal(http_parse_query(a, qs, kv, HTTP_MAX_PARAMS, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(kv[0].value), HTTP_MAX_QUERY - 2);
    qs[HTTP_MAX_QUERY] = 'v';
    qs[HTTP_MAX_QUERY + 1] = '\0';
    assert_int_equal(http_parse_query(a, qs, kv, HTTP_MAX_PARAMS, &n), -1);
}

/* ---- validators ----------------------------------------------------------------------- */

static void test_valid_id_table(void **state)
{
    static const struct {
        const char *s;
        int ok;
        int64_t want;
    } cases[] = {
        {"1", 1, 1},
        {"42", 1, 42},
        {"2147483647", 1, 2147483647},
        {"01", 1, 1}, /* leading zeros are harmless */
        {"0000000007", 1, 7},
        {"0", 0, 0},
        {"-1", 0, 0},
        {"2147483648", 0, 0},
        {"9223372036854775807", 0, 0},
        {"9223372036854775808", 0, 0},
        {"99999999999999999999", 0, 0},
        {"1e3", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"+1", 0, 0},
        {"-", 0, 0},
        {"", 0, 0},
        {"0x10", 0, 0},
        {"1.0", 0, 0},
        {"abc", 0, 0},
        {"\xd9\xa1", 0, 0}, /* Arabic-Indic digit one */
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct cc_error err;
        err_clear(&err);
        int64_t out = -7;
        int rc = http_valid_id("challenge_id", cases[i].s, &out, &err);
        if (cases[i].ok) {
            if (rc != 0 || out != cases[i].want)
                fail_msg("case %zu '%s': rc %d out %lld", i, cases[i].s, rc, (long long)out);
        } else {
            if (rc != -1 || err.code != ERR_INVALID_FIELD)
                fail_msg("case %zu '%s' accepted (%lld)", i, cases[i].s, (long long)out);
            assert_non_null(strstr(err_message(&err), "'challenge_id'"));
            assert_int_equal(out, -7); /* untouched on failure */
        }
    }
    struct cc_error err;
    int64_t out;
    assert_int_equal(http_valid_id("id", NULL, &out, &err), -1);
}

static void test_valid_int_table(void **state)
{
    static const struct {
        const char *s;
        int64_t min, max;
        int ok;
        int64_t want;
    } cases[] = {
        {"0", 0, 10, 1, 0},
        {"10", 0, 10, 1, 10},
        {"11", 0, 10, 0, 0},
        {"-1", 0, 10, 0, 0},
        {"-1", -5, 5, 1, -1},
        {"-5", -5, 5, 1, -5},
        {"-6", -5, 5, 0, 0},
        {"-0", -5, 5, 1, 0},
        {"--1", -5, 5, 0, 0},
        {"-", -5, 5, 0, 0},
        {"9223372036854775807", 0, INT64_MAX, 1, INT64_MAX},
        {"9223372036854775808", 0, INT64_MAX, 0, 0},
        {"-9223372036854775808", INT64_MIN, 0, 1, INT64_MIN},
        {"-9223372036854775809", INT64_MIN, 0, 0, 0},
        {"00000000000000000001", 0, 10, 0, 0}, /* over 19 digits: refused by length */
        {"1e3", 0, 100000, 0, 0},
        {"1_000", 0, 100000, 0, 0},
        {"\t1", 0, 10, 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct cc_error err;
        int64_t out = 12345;
        int rc = http_valid_int("page", cases[i].s, cases[i].min, cases[i].max, &out, &err);
        if (cases[i].ok ? (rc != 0 || out != cases[i].want) : (rc != -1 || out != 12345))
            fail_msg("case %zu '%s': rc %d out %lld", i, cases[i].s, rc, (long long)out);
        if (!cases[i].ok) {
            assert_int_equal(err.code, ERR_INVALID_FIELD);
            assert_non_null(strstr(err.message, "'page'"));
        }
    }
}

/* ---- requests from FastCGI parameters ------------------------------------------------- */

static void test_req_init(void **state)
{
    arena_t *a = *state;
    char *envp[] = {"REQUEST_METHOD=POST",
                    "DOCUMENT_URI=/api/v1/container",
                    "QUERY_STRING=challenge_id=5&x=a%20b",
                    "CONTENT_TYPE=application/json",
                    "CONTENT_LENGTH=2",
                    "HTTP_X_FORWARDED_USER=admin",
                    "REQUEST_METHODX=DELETE",
                    NULL};
    struct body b = {"{}", 2, 0, 0, 0, false};
    struct http_req r;
    http_req_init(&r, a, envp, body_read, &b, 1024);
    assert_int_equal(r.method, M_POST);
    assert_string_equal(r.method_str, "POST");
    assert_string_equal(r.path, "/api/v1/container");
    assert_string_equal(r.content_type, "application/json");
    assert_false(r.query_bad);
    assert_int_equal(r.nquery, 2);
    assert_string_equal(http_query(&r, "challenge_id"), "5");
    assert_string_equal(http_query(&r, "x"), "a b");
    assert_null(http_query(&r, "missing"));
    assert_string_equal(http_param(&r, "HTTP_X_FORWARDED_USER"), "admin");
    assert_null(http_param(&r, "REQUEST"));
    assert_int_equal(b.calls, 0); /* the body is read only when asked for */
    int64_t id;
    struct cc_error err;
    assert_int_equal(http_query_id(&r, "challenge_id", true, &id, &err), 0);
    assert_int_equal(id, 5);
}

static void test_req_init_methods(void **state)
{
    static const struct {
        const char *m;
        enum http_method want;
    } cases[] = {
        {"GET", M_GET}, {"POST", M_POST},  {"PATCH", M_PATCH}, {"DELETE", M_DELETE},
        {"PUT", M_PUT}, {"HEAD", M_HEAD},  {"get", M_OTHER},   {"OPTIONS", M_OTHER},
        {"", M_OTHER},  {"GETX", M_OTHER},
    };
    arena_t *a = *state;
    for (size_t i = 0; i < N(cases); i++) {
        char m[64];
        snprintf(m, sizeof(m), "REQUEST_METHOD=%s", cases[i].m);
        char *envp[] = {m, NULL};
        struct http_req r;
        http_req_init(&r, a, envp, NULL, NULL, 0);
        assert_int_equal(r.method, cases[i].want);
    }
}

static void test_req_init_empty_env(void **state)
{
    arena_t *a = *state;
    struct http_req r;
    http_req_init(&r, a, NULL, NULL, NULL, 0);
    assert_int_equal(r.method, M_OTHER);
    assert_null(r.method_str);
    assert_string_equal(r.path, "");
    assert_string_equal(r.content_type, "");
    assert_int_equal(r.nquery, 0);
    assert_false(r.query_bad);
    char *none[] = {NULL};
    http_req_init(&r, a, none, NULL, NULL, 0);
    assert_string_equal(r.path, "");
}

static void test_req_init_long_path_dropped(void **state)
{
    arena_t *a = *state;
    char *uri = arena_alloc(a, HTTP_MAX_PATH + 32);
    memcpy(uri, "DOCUMENT_URI=/", 14);
    memset(uri + 14, 'p', HTTP_MAX_PATH);
    char *envp[] = {uri, NULL};
    struct http_req r;
    http_req_init(&r, a, envp, NULL, NULL, 0);
    assert_string_equal(r.path, "");
}

static void test_req_bad_query_refused(void **state)
{
    static const char *const bad[] = {"QUERY_STRING=a=%zz", "QUERY_STRING=a=1&a=2",
                                      "QUERY_STRING=a=%00"};
    arena_t *a = *state;
    static const char *const allowed[] = {"a", NULL};
    for (size_t i = 0; i < N(bad); i++) {
        char *envp[] = {(char *)bad[i], NULL};
        struct http_req r;
        struct cc_error err;
        http_req_init(&r, a, envp, NULL, NULL, 0);
        assert_true(r.query_bad);
        assert_int_equal(http_query_only(&r, allowed, &err), -1);
        assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
}

static void test_query_only(void **state)
{
    arena_t *a = *state;
    static const char *const allowed[] = {"challenge_id", "page", NULL};
    static const char *const none[] = {NULL};
    static const struct {
        const char *qs;
        const char *const *allowed;
        int ok;
        const char *shown; /* the sanitised key in the message */
    } cases[] = {
        {"QUERY_STRING=", allowed, 1, NULL},
        {"QUERY_STRING=challenge_id=1", allowed, 1, NULL},
        {"QUERY_STRING=page=2&challenge_id=1", allowed, 1, NULL},
        {"QUERY_STRING=", none, 1, NULL},
        {"QUERY_STRING=page=1", none, 0, "'page'"},
        {"QUERY_STRING=challenge_id=1&evil=1", allowed, 0, "'evil'"},
        {"QUERY_STRING=%3Cscript%3E=1", allowed, 0, "'?script?'"},
        {"QUERY_STRING=a%22b%0A=1", allowed, 0, "'a?b?'"},
        {"QUERY_STRING=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", allowed, 0,
         "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char *envp[] = {(char *)cases[i].qs, NULL};
        struct http_req r;
        struct cc_error err;
        err_clear(&err);
        http_req_init(&r, a, envp, NULL, NULL, 0);
        int rc = http_query_only(&r, cases[i].allowed, &err);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err_message(&err));
        } else {
            if (rc != -1 || err.code != ERR_INVALID_FIELD)
                fail_msg("case %zu accepted", i);
            if (strstr(err.message, cases[i].shown) == NULL)
                fail_msg("case %zu: message '%s' lacks %s", i, err.message, cases[i].shown);
        }
    }
}

static void test_query_helpers(void **state)
{
    arena_t *a = *state;
    char *envp[] = {"QUERY_STRING=page=3&per_page=&challenge_id=x&account_id=7", NULL};
    struct http_req r;
    struct cc_error err;
    int64_t v;
    http_req_init(&r, a, envp, NULL, NULL, 0);
    assert_int_equal(http_query_int(&r, "page", 1, 10, 1, &v, &err), 0);
    assert_int_equal(v, 3);
    assert_int_equal(http_query_int(&r, "per_page", 1, 100, 50, &v, &err), 0); /* empty: default */
    assert_int_equal(v, 50);
    assert_int_equal(http_query_int(&r, "absent", 1, 100, 9, &v, &err), 0);
    assert_int_equal(v, 9);
    assert_int_equal(http_query_int(&r, "page", 4, 10, 5, &v, &err), -1);
    assert_int_equal(http_query_id(&r, "challenge_id", false, &v, &err), -1);
    assert_int_equal(err.code, ERR_INVALID_FIELD);
    assert_int_equal(http_query_id(&r, "account_id", true, &v, &err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(http_query_id(&r, "nope", false, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(http_query_id(&r, "nope", true, &v, &err), -1);
    assert_non_null(strstr(err.message, "'nope' is required"));
}

/* ---- JSON bodies ------------------------------------------------------------------------ */

/* Builds a request with a body; cl NULL leaves CONTENT_LENGTH out. */
static void body_req(struct http_req *r, arena_t *a, char **envp, const char *ct, const char *cl,
                     struct body *b, size_t max_body)
{
    size_t i = 0;
    envp[i++] = "REQUEST_METHOD=POST";
    if (ct)
        envp[i++] = arena_printf(a, "CONTENT_TYPE=%s", ct);
    if (cl)
        envp[i++] = arena_printf(a, "CONTENT_LENGTH=%s", cl);
    envp[i] = NULL;
    http_req_init(r, a, envp, body_read, b, max_body);
}

static void test_body_json_table(void **state)
{
    static const struct {
        const char *ct;
        const char *cl; /* NULL: strlen(data) */
        const char *data;
        size_t max_body;
        bool allow_empty;
        enum cc_err want;
        bool reader_called;
    } cases[] = {
        {"application/json", NULL, "{\"challenge_id\": 1}", 1024, false, ERR_OK, true},
        {"application/json; charset=utf-8", NULL, "{}", 1024, false, ERR_OK, true},
        {"Application/JSON", NULL, "{}", 1024, false, ERR_OK, true},
        {"application/json ", NULL, "{}", 1024, false, ERR_OK, true},
        {"text/plain", NULL, "{}", 1024, false, ERR_UNSUPPORTED_MEDIA_TYPE, true},
        {"application/jsonp", NULL, "{}", 1024, false, ERR_UNSUPPORTED_MEDIA_TYPE, true},
        {"application/x-www-form-urlencoded", NULL, "a=1", 1024, false, ERR_UNSUPPORTED_MEDIA_TYPE,
         true},
        {NULL, NULL, "{}", 1024, false, ERR_UNSUPPORTED_MEDIA_TYPE, true},
        /* over the cap: refused before a byte is read */
        {"application/json", "1025", "{}", 1024, false, ERR_BODY_TOO_LARGE, false},
        {"application/json", "99999999999", "{}", 1024, false, ERR_BODY_TOO_LARGE, false},
        {"application/json", NULL, "{\"a\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", 16,
         false, ERR_BODY_TOO_LARGE, false},
        /* exactly at the cap is fine */
        {"application/json", NULL, "{\"a\":1234567890}", 16, false, ERR_OK, true},
        /* Content-Length that is not a number, negative or huge */
        {"application/json", "abc", "{}", 1024, false, ERR_BAD_REQUEST, false},
        {"application/json", "-1", "{}", 1024, false, ERR_BAD_REQUEST, false},
        {"application/json", " 2", "{}", 1024, false, ERR_BAD_REQUEST, false},
        {"application/json", "99999999999999999999", "{}", 1024, false, ERR_BAD_REQUEST, false},
        /* shorter than announced */
        {"application/json", "10", "{}", 1024, false, ERR_BAD_REQUEST, true},
        /* not an object, or not JSON */
        {"application/json", NULL, "[1,2]", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "42", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "\"s\"", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "null", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "{", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "{} {}", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "{'a':1}", 1024, false, ERR_INVALID_JSON, true},
        {"application/json", NULL, "{\"a\":1,\"a\":2}", 1024, false, ERR_INVALID_JSON, true},
        /* empty */
        {"application/json", "0", "", 1024, true, ERR_OK, false},
        {"application/json", "0", "", 1024, false, ERR_INVALID_JSON, false},
        {NULL, NULL, "", 1024, true, ERR_OK, false},
        {"text/plain", "", "", 1024, true, ERR_OK, false},
        {NULL, NULL, "", 1024, false, ERR_INVALID_JSON, false},
    };
    arena_t *a = *state;
    for (size_t i = 0; i < N(cases); i++) {
        char *envp[8];
        const char *cl = cases[i].cl;
        if (cl == NULL && cases[i].data[0])
            cl = arena_printf(a, "%zu", strlen(cases[i].data));
        struct body b = {cases[i].data, strlen(cases[i].data), 0, 3, 0, false};
        struct http_req r;
        struct cc_error err;
        err_clear(&err);
        body_req(&r, a, envp, cases[i].ct, cl, &b, cases[i].max_body);
        json_t *j = http_body_json(&r, cases[i].allow_empty, &err);
        enum cc_err got = j ? ERR_OK : err.code;
        if (got != cases[i].want)
            fail_msg("case %zu: got %s, want %s (%s)", i, err_code_str(got),
                     err_code_str(cases[i].want), err_message(&err));
        if ((b.calls > 0) != cases[i].reader_called)
            fail_msg("case %zu: reader called %d times", i, b.calls);
        if (j != NULL) {
            assert_true(json_is_object(j));
            json_decref(j);
        }
    }
}

static void test_body_read_once_in_chunks(void **state)
{
    arena_t *a = *state;
    static const char data[] = "{\"challenge_id\": \"17\", \"pad\": \"0123456789abcdef\"}";
    struct body b = {data, strlen(data), 0, 1, 0, false};
    char *envp[8];
    struct http_req r;
    struct cc_error err;
    body_req(&r, a, envp, "application/json", arena_printf(a, "%zu", strlen(data)), &b, 4096);
    json_t *j = http_body_json(&r, false, &err);
    assert_non_null(j);
    assert_int_equal(b.calls, (int)strlen(data)); /* one byte per call */
    int64_t id;
    assert_int_equal(http_json_id(j, "challenge_id", true, &id, &err), 0);
    assert_int_equal(id, 17);
    json_decref(j);
    /* A second call parses the same body without reading again. */
    int calls = b.calls;
    j = http_body_json(&r, false, &err);
    assert_non_null(j);
    assert_int_equal(b.calls, calls);
    json_decref(j);
}

static void test_body_reader_error(void **state)
{
    arena_t *a = *state;
    struct body b = {"{\"a\"", 4, 0, 0, 0, true};
    char *envp[8];
    struct http_req r;
    struct cc_error err;
    body_req(&r, a, envp, "application/json", "100", &b, 4096);
    assert_null(http_body_json(&r, false, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    /* No reader at all is an empty body. */
    body_req(&r, a, envp, "application/json", "2", NULL, 4096);
    r.read = NULL;
    assert_null(http_body_json(&r, true, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
}

/* A NUL inside the body is not a JSON object. */
static void test_body_embedded_nul(void **state)
{
    arena_t *a = *state;
    static const char data[] = "{\"a\":1}\0{}";
    struct body b = {data, sizeof(data) - 1, 0, 0, 0, false};
    char *envp[8];
    struct http_req r;
    struct cc_error err;
    body_req(&r, a, envp, "application/json", arena_printf(a, "%zu", sizeof(data) - 1), &b, 4096);
    assert_null(http_body_json(&r, false, &err));
    assert_int_equal(err.code, ERR_INVALID_JSON);
}

/* ---- JSON ids ------------------------------------------------------------------------------ */

static void test_json_id_table(void **state)
{
    static const struct {
        const char *json; /* the value of "challenge_id", or NULL for absent */
        bool required;
        int ok;
        int64_t want;
    } cases[] = {
        {"1", true, 1, 1},
        {"2147483647", true, 1, 2147483647},
        {"\"42\"", true, 1, 42},
        {"\"007\"", true, 1, 7},
        {NULL, false, 1, 0},
        {"null", false, 1, 0},
        {NULL, true, 0, 0},
        {"null", true, 0, 0},
        {"0", true, 0, 0},
        {"-1", true, 0, 0},
        {"2147483648", true, 0, 0},
        {"9223372036854775807", true, 0, 0},
        {"1.0", true, 0, 0},
        {"1.5", true, 0, 0},
        {"1e3", true, 0, 0},
        {"true", true, 0, 0},
        {"false", true, 0, 0},
        {"\"\"", true, 0, 0},
        {"\"0\"", true, 0, 0},
        {"\"-3\"", true, 0, 0},
        {"\" 1\"", true, 0, 0},
        {"\"1\\u00002\"", true, 0, 0}, /* embedded NUL must not read as "1" */
        {"\"2147483648\"", true, 0, 0},
        {"[1]", true, 0, 0},
        {"{\"id\":1}", true, 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char doc[128];
        if (cases[i].json)
            snprintf(doc, sizeof(doc), "{\"challenge_id\": %s}", cases[i].json);
        else
            snprintf(doc, sizeof(doc), "{\"other\": 1}");
        json_error_t jerr;
        json_t *obj = json_loads(doc, JSON_ALLOW_NUL, &jerr);
        if (obj == NULL)
            fail_msg("case %zu: test JSON '%s' does not parse: %s", i, doc, jerr.text);
        struct cc_error err;
        err_clear(&err);
        int64_t out = -5;
        int rc = http_json_id(obj, "challenge_id", cases[i].required, &out, &err);
        json_decref(obj);
        if (cases[i].ok ? (rc != 0 || out != cases[i].want) : rc != -1)
            fail_msg("case %zu %s: rc %d out %lld", i, doc, rc, (long long)out);
        if (!cases[i].ok) {
            assert_int_equal(err.code, ERR_INVALID_FIELD);
            assert_non_null(strstr(err.message, "'challenge_id'"));
        }
    }
}

/* ---- responses ------------------------------------------------------------------------------ */

static json_t *parse_resp(struct http_resp *w)
{
    json_error_t jerr;
    json_t *doc = json_loads(sb_str(&w->body), JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        fail_msg("response is not JSON: %s (%s)", sb_str(&w->body), jerr.text);
    return doc;
}

static void test_reply_error_envelope(void **state)
{
    arena_t *a = *state;
    static const struct {
        enum cc_err code;
        const char *message; /* NULL: the default */
        int retry_after;
    } cases[] = {
        {ERR_COOLDOWN, NULL, 120},
        {ERR_CAPACITY_FULL, NULL, 30},
        {ERR_INVALID_FIELD, "'challenge_id' must be a whole number.", 0},
        {ERR_INTERNAL, NULL, 0},
        {ERR_IMAGE_MISSING, "Image \"<b>web</b>\" \\ is missing.\n", 0},
        {ERR_NOT_FOUND, "caf\xc3\xa9", 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct cc_error err;
        if (cases[i].message)
            err_set(&err, cases[i].code, "%s", cases[i].message);
        else
            err_set(&err, cases[i].code, NULL);
        err.retry_after = cases[i].retry_after;
        struct http_resp w;
        http_resp_init(&w, a);
        http_reply_error(&w, &err);
        assert_int_equal(w.status, err_status(cases[i].code));
        assert_string_equal(w.content_type, "application/json");
        assert_int_equal(w.retry_after, cases[i].retry_after);
        /* ASCII only on the wire (JSON_ENSURE_ASCII), one line. */
        for (const char *p = sb_str(&w.body); *p; p++)
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        json_t *doc = parse_resp(&w);
        assert_true(json_is_false(json_object_get(doc, "success")));
        assert_string_equal(json_string_value(json_object_get(doc, "code")),
                            err_code_str(cases[i].code));
        assert_string_equal(json_string_value(json_object_get(doc, "message")),
                            cases[i].message ? cases[i].message
                                             : err_default_message(cases[i].code));
        json_t *ra = json_object_get(doc, "retry_after");
        if (cases[i].retry_after > 0) {
            assert_true(json_is_integer(ra));
            assert_int_equal(json_integer_value(ra), cases[i].retry_after);
            assert_int_equal(json_object_size(doc), 4);
        } else {
            assert_null(ra);
            assert_int_equal(json_object_size(doc), 3);
        }
        json_decref(doc);
    }
}

static void test_reply_json_envelope(void **state)
{
    arena_t *a = *state;
    struct http_resp w;
    http_resp_init(&w, a);
    assert_int_equal(w.status, 200);
    http_reply_json(&w, 201, json_pack("{s:i}", "id", 9));
    assert_int_equal(w.status, 201);
    json_t *doc = parse_resp(&w);
    assert_true(json_is_true(json_object_get(doc, "success")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "data"), "id")), 9);
    json_decref(doc);
    /* NULL data is an empty object. */
    http_resp_init(&w, a);
    http_reply_json(&w, 200, NULL);
    doc = parse_resp(&w);
    assert_true(json_is_object(json_object_get(doc, "data")));
    assert_int_equal(json_object_size(json_object_get(doc, "data")), 0);
    json_decref(doc);
}

static void test_reply_html_and_redirect(void **state)
{
    arena_t *a = *state;
    struct http_resp w;
    http_resp_init(&w, a);
    http_reply_html(&w, 200, "<p>hi</p>", 9);
    assert_string_equal(sb_str(&w.body), "<p>hi</p>");
    assert_non_null(strstr(w.content_type, "text/html"));
    http_resp_init(&w, a);
    http_redirect(&w, "/admin/containers");
    assert_int_equal(w.status, 303);
    assert_string_equal(w.location, "/admin/containers");
}

static void test_status_lines(void **state)
{
    /* Every status in the error table has its own reason phrase. */
    for (int i = 0; i < ERR__MAX; i++) {
        int st = err_status((enum cc_err)i);
        char want[8];
        snprintf(want, sizeof(want), "%d ", st);
        assert_true(strncmp(http_status_line(st), want, strlen(want)) == 0);
    }
    assert_string_equal(http_status_line(303), "303 See Other");
    assert_string_equal(http_status_line(999), "500 Internal Server Error");
}

/* ---- ops: the port list format --------------------------------------------------------------- */

static void test_parse_ports_good(void **state)
{
    static const struct {
        const char *spec;
        size_t n;
        struct backend_port want[3];
    } cases[] = {
        {"80/http,1337/tcp", 2, {{80, PROTO_HTTP, 0}, {1337, PROTO_TCP, 0}}},
        {" 80/http ", 1, {{80, PROTO_HTTP, 0}}},
        {"80/http , 1337/tcp", 2, {{80, PROTO_HTTP, 0}, {1337, PROTO_TCP, 0}}},
        {"1/tcp", 1, {{1, PROTO_TCP, 0}}},
        {"65535/tcp", 1, {{65535, PROTO_TCP, 0}}},
        {"8080/http,8081/http,22/tcp",
         3,
         {{8080, PROTO_HTTP, 0}, {8081, PROTO_HTTP, 0}, {22, PROTO_TCP, 0}}},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct backend_port p[BACKEND_MAX_PORTS];
        size_t n = 99;
        if (ops_parse_ports(cases[i].spec, p, BACKEND_MAX_PORTS, &n) != 0 || n != cases[i].n)
            fail_msg("case %zu '%s': n %zu", i, cases[i].spec, n);
        for (size_t j = 0; j < n; j++) {
            assert_int_equal(p[j].internal, cases[i].want[j].internal);
            assert_int_equal(p[j].proto, cases[i].want[j].proto);
            assert_int_equal(p[j].host_port, 0);
        }
    }
}

static void test_parse_ports_bad(void **state)
{
    static const char *const cases[] = {
        "",
        "   ",
        "80",
        "80/",
        "80/udp",
        "80/HTTP",
        "80/httpx",
        "80/tcp/tcp",
        "0/tcp",
        "-80/tcp",
        "70000/tcp",
        "65536/tcp",
        "99999999999999999999/tcp",
        "80/http,",
        "80/http, ",
        ",80/http",
        "80/http,,81/tcp",
        "80/http;81/tcp",
        "80 /tcp",
        "http/80",
        "0x50/tcp",
        "80/tcp:31000",
        "1/tcp,2/tcp,3/tcp,4/tcp,5/tcp,6/tcp,7/tcp,8/tcp,9/tcp", /* over BACKEND_MAX_PORTS */
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct backend_port p[BACKEND_MAX_PORTS];
        size_t n;
        if (ops_parse_ports(cases[i], p, BACKEND_MAX_PORTS, &n) != -1)
            fail_msg("case %zu '%s' accepted", i, cases[i]);
    }
    /* Exactly BACKEND_MAX_PORTS is fine. */
    struct backend_port p[BACKEND_MAX_PORTS];
    size_t n;
    assert_int_equal(ops_parse_ports("1/tcp,2/tcp,3/tcp,4/tcp,5/tcp,6/tcp,7/tcp,8/tcp", p,
                                     BACKEND_MAX_PORTS, &n),
                     0);
    assert_int_equal(n, BACKEND_MAX_PORTS);
}

/* One internal port listed twice would publish only one of its two reserved
 * host ports (the engine keys bindings by "<port>/tcp"): refused. */
static void test_parse_ports_duplicate_refused(void **state)
{
    struct backend_port p[BACKEND_MAX_PORTS];
    size_t n;
    assert_int_equal(ops_parse_ports("80/http,80/tcp", p, BACKEND_MAX_PORTS, &n), -1);
    assert_int_equal(ops_parse_ports("80/tcp,1337/tcp,80/tcp", p, BACKEND_MAX_PORTS, &n), -1);
}

static void test_stored_ports_round_trip(void **state)
{
    arena_t *a = *state;
    struct backend_port in[] = {
        {80, PROTO_HTTP, 31234}, {1337, PROTO_TCP, 31235}, {22, PROTO_TCP, 0}};
    const char *s = ops_format_ports(a, in, N(in));
    assert_string_equal(s, "80/http:31234,1337/tcp:31235,22/tcp:0");
    struct backend_port out[BACKEND_MAX_PORTS];
    size_t n;
    assert_int_equal(ops_parse_stored_ports(s, out, BACKEND_MAX_PORTS, &n), 0);
    assert_int_equal(n, N(in));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].internal, in[i].internal);
        assert_int_equal(out[i].proto, in[i].proto);
        assert_int_equal(out[i].host_port, in[i].host_port);
    }
    assert_string_equal(ops_format_ports(a, in, 0), "");
    assert_int_equal(ops_parse_stored_ports("", out, BACKEND_MAX_PORTS, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ops_parse_stored_ports(NULL, out, BACKEND_MAX_PORTS, &n), 0);
    assert_int_equal(n, 0);
}

static void test_stored_ports_bad(void **state)
{
    static const char *const cases[] = {
        "80/http", /* no host port */
        "80/http:",
        "80/http:x",
        "80/http:-1",
        "80/http:65536",
        "80/http:31000;81/tcp:31001",
        "80/http:31000 ",
        "80/udp:31000",
        "0/tcp:31000",
        ":31000",
        "1/tcp:1,2/tcp:2,3/tcp:3,4/tcp:4,5/tcp:5,6/tcp:6,7/tcp:7,8/tcp:8,9/tcp:9",
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct backend_port p[BACKEND_MAX_PORTS];
        size_t n;
        if (ops_parse_stored_ports(cases[i], p, BACKEND_MAX_PORTS, &n) != -1)
            fail_msg("case %zu '%s' accepted", i, cases[i]);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_query_good),
        T(test_parse_query_bad),
        T(test_parse_query_caps),
        T(test_valid_id_table),
        T(test_valid_int_table),
        T(test_req_init),
        T(test_req_init_methods),
        T(test_req_init_empty_env),
        T(test_req_init_long_path_dropped),
        T(test_req_bad_query_refused),
        T(test_query_only),
        T(test_query_helpers),
        T(test_body_json_table),
        T(test_body_read_once_in_chunks),
        T(test_body_reader_error),
        T(test_body_embedded_nul),
        T(test_json_id_table),
        T(test_reply_error_envelope),
        T(test_reply_json_envelope),
        T(test_reply_html_and_redirect),
        T(test_status_lines),
        T(test_parse_ports_good),
        T(test_parse_ports_bad),
        T(test_parse_ports_duplicate_refused),
        T(test_stored_ports_round_trip),
        T(test_stored_ports_bad),
    };
#undef T
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}

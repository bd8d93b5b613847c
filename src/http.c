/* http.c: request parsing, bounded validators and JSON responses (http.h).
 *
 * Must not: read identity from client headers, echo raw input into errors
 * beyond a short sanitised field name, or allocate outside the arena (jansson
 * values excepted: they are decref'd before the handler returns). */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static enum http_method method_parse(const char *m)
{
    static const struct {
        const char *name;
        enum http_method m;
    } t[] = {{"GET", M_GET},       {"POST", M_POST}, {"PATCH", M_PATCH},
             {"DELETE", M_DELETE}, {"PUT", M_PUT},   {"HEAD", M_HEAD}};
    for (size_t i = 0; m && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(m, t[i].name) == 0)
            return t[i].m;
    return M_OTHER;
}

const char *http_param(const struct http_req *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; r->envp && r->envp[i]; i++)
        if (strncmp(r->envp[i], name, n) == 0 && r->envp[i][n] == '=')
            return r->envp[i] + n + 1;
    return NULL;
}

void http_req_init(struct http_req *r, arena_t *a, char *const *envp, http_read_fn read,
                   void *read_ctx, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    r->arena = a;
    r->envp = envp;
    r->read = read;
    r->read_ctx = read_ctx;
    r->max_body = max_body;
    r->method_str = http_param(r, "REQUEST_METHOD");
    r->method = method_parse(r->method_str);
    const char *path = http_param(r, "DOCUMENT_URI");
    r->path = path && strlen(path) < HTTP_MAX_PATH ? path : "";
    const char *ct = http_param(r, "CONTENT_TYPE");
    r->content_type = ct ? ct : "";
    const char *qs = http_param(r, "QUERY_STRING");
    if (qs && *qs && http_parse_query(a, qs, r->query, HTTP_MAX_PARAMS, &r->nquery) < 0)
        r->query_bad = true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into the arena; -1 on a bad escape or a NUL byte. */
static char *decode(arena_t *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return NULL;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return NULL;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0)
            return NULL;
        *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

int http_parse_query(arena_t *a, const char *qs, struct http_kv *out, size_t cap, size_t *n)
{
    *n = 0;
    size_t len = strlen(qs);
    if (len > HTTP_MAX_QUERY)
        return -1;
    const char *p = qs, *end = qs + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *kend = eq ? eq : stop;
            if (*n >= cap)
                return -1;
            char *k = decode(a, p, (size_t)(kend - p));
            char *v = eq ? decode(a, eq + 1, (size_t)(stop - eq - 1)) : arena_strdup(a, "");
            if (k == NULL || v == NULL || *k == '\0')
                return -1;
            for (size_t i = 0; i < *n; i++)
                if (strcmp(out[i].key, k) == 0)
                    return -1; /* a repeated key is ambiguous: refuse it */
            out[*n].key = k;
            out[*n].value = v;
            (*n)++;
        }
        p = stop + (amp ? 1 : 0);
    }
    return 0;
}

const char *http_query(const struct http_req *r, const char *key)
{
    for (size_t i = 0; i < r->nquery; i++)
        if (strcmp(r->query[i].key, key) == 0)
            return r->query[i].value;
    return NULL;
}

int http_valid_int(const char *field, const char *s, int64_t min, int64_t max, int64_t *out,
                   struct cc_error *err)
{
    size_t n = s ? strlen(s) : 0;
    bool neg = n > 0 && s[0] == '-';
    if (n == 0 || n > 19 + (neg ? 1 : 0))
        goto bad;
    for (size_t i = neg ? 1 : 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            goto bad;
    if (neg && n == 1)
        goto bad;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno != 0 || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    return err_set(err, ERR_INVALID_FIELD, "'%s' must be a whole number from %lld to %lld.", field,
                   (long long)min, (long long)max);
}

int http_valid_id(const char *field, const char *s, int64_t *out, struct cc_error *err)
{
    return http_valid_int(field, s, 1, INT32_MAX, out, err);
}

int http_query_id(const struct http_req *r, const char *key, bool required, int64_t *out,
                  struct cc_error *err)
{
    const char *v = http_query(r, key);
    if (v == NULL) {
        *out = 0;
        return required ? err_set(err, ERR_INVALID_FIELD, "'%s' is required.", key) : 0;
    }
    return http_valid_id(key, v, out, err);
}

int http_query_int(const struct http_req *r, const char *key, int64_t min, int64_t max,
                   int64_t dflt, int64_t *out, struct cc_error *err)
{
    const char *v = http_query(r, key);
    if (v == NULL || *v == '\0') {
        *out = dflt;
        return 0;
    }
    return http_valid_int(key, v, min, max, out, err);
}

int http_query_only(const struct http_req *r, const char *const *allowed, struct cc_error *err)
{
    if (r->query_bad)
        return err_set(err, ERR_BAD_REQUEST, "The query string is malformed or too long.");
    for (size_t i = 0; i < r->nquery; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++)
            ok = strcmp(allowed[j], r->query[i].key) == 0;
        if (!ok) {
            char name[33];
            size_t k;
            for (k = 0; k < 32 && r->query[i].key[k]; k++)
                name[k] = isalnum((unsigned char)r->query[i].key[k]) || r->query[i].key[k] == '_'
                              ? r->query[i].key[k]
                              : '?';
            name[k] = '\0';
            return err_set(err, ERR_INVALID_FIELD, "Unknown query parameter '%s'.", name);
        }
    }
    return 0;
}

json_t *http_parse_json(const char *buf, size_t len, struct cc_error *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL || !json_is_object(v)) {
        json_decref(v);
        err_set(err, ERR_INVALID_JSON, NULL);
        return NULL;
    }
    return v;
}

static bool is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
        return false;
    char next = ct[sizeof(want) - 1];
    return next == '\0' || next == ';' || next == ' ';
}

/* Read the whole body, refusing more than max_body bytes. */
static int read_body(struct http_req *r, struct cc_error *err)
{
    if (r->body_read)
        return 0;
    r->body_read = true;
    const char *cl = http_param(r, "CONTENT_LENGTH");
    int64_t want = 0;
    if (cl && *cl && http_valid_int("Content-Length", cl, 0, INT64_MAX / 2, &want, err) < 0)
        return err_set(err, ERR_BAD_REQUEST, "Bad Content-Length.");
    if ((size_t)want > r->max_body)
        return err_set(err, ERR_BODY_TOO_LARGE, "The body is larger than %zu bytes.", r->max_body);
    char *buf = arena_alloc(r->arena, (size_t)want + 1);
    size_t got = 0;
    while (got < (size_t)want && r->read) {
        long n = r->read(r->read_ctx, buf + got, (size_t)want - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)want)
        return err_set(err, ERR_BAD_REQUEST, "The body is shorter than its Content-Length.");
    r->body = buf;
    r->body_len = got;
    return 0;
}

json_t *http_body_json(struct http_req *r, bool allow_empty, struct cc_error *err)
{
    if (read_body(r, err) < 0)
        return NULL;
    if (r->body_len == 0) {
        if (allow_empty)
            return json_object();
        err_set(err, ERR_INVALID_JSON, "A JSON body is required.");
        return NULL;
    }
    if (!is_json_type(r->content_type)) {
        err_set(err, ERR_UNSUPPORTED_MEDIA_TYPE, NULL);
        return NULL;
    }
    return http_parse_json(r->body, r->body_len, err);
}

int http_body_form(struct http_req *r, struct http_kv *out, size_t cap, size_t *n,
                   struct cc_error *err)
{
    static const char want[] = "application/x-www-form-urlencoded";
    *n = 0;
    if (read_body(r, err) < 0)
        return -1;
    if (r->body_len == 0)
        return 0;
    if (strncasecmp(r->content_type, want, sizeof(want) - 1) != 0)
        return err_set(err, ERR_UNSUPPORTED_MEDIA_TYPE, "Send the form as %s.", want);
    if (memchr(r->body, '\0', r->body_len) != NULL ||
        http_parse_query(r->arena, r->body, out, cap, n) < 0)
        return err_set(err, ERR_BAD_REQUEST, "The form is malformed or too long.");
    return 0;
}

const char *http_kv_get(const struct http_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

int http_json_id(json_t *obj, const char *field, bool required, int64_t *out,
                 struct cc_error *err)
{
    json_t *v = json_object_get(obj, field);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return required ? err_set(err, ERR_INVALID_FIELD, "'%s' is required.", field) : 0;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n >= 1 && n <= INT32_MAX) {
            *out = n;
            return 0;
        }
    } else if (json_is_string(v) && json_string_length(v) == strlen(json_string_value(v))) {
        return http_valid_id(field, json_string_value(v), out, err);
    }
    return err_set(err, ERR_INVALID_FIELD, "'%s' must be a whole number from 1 to %d.", field,
                   INT32_MAX);
}

void http_resp_init(struct http_resp *w, arena_t *a)
{
    memset(w, 0, sizeof(*w));
    w->status = 200;
    w->content_type = "application/json";
    sb_init(&w->body, a);
}

static void put_json(struct http_resp *w, json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s != NULL) {
        sb_puts(&w->body, s);
        free(s);
    }
    json_decref(doc);
}

void http_reply_json(struct http_resp *w, int status, json_t *data)
{
    w->status = status;
    w->content_type = "application/json";
    put_json(w, json_pack("{s:b, s:o}", "success", 1, "data", data ? data : json_object()));
}

void http_reply_error(struct http_resp *w, const struct cc_error *err)
{
    w->status = err_status(err->code);
    w->content_type = "application/json";
    w->retry_after = err->retry_after;
    /* A 500 shows nothing internal: the specific message stays in the log. */
    const char *msg = err->code == ERR_INTERNAL ? err_default_message(err->code) : err_message(err);
    json_t *doc = json_pack("{s:b, s:s, s:s}", "success", 0, "code", err_code_str(err->code),
                            "message", msg);
    if (err->retry_after > 0)
        json_object_set_new(doc, "retry_after", json_integer(err->retry_after));
    put_json(w, doc);
}

void http_reply_html(struct http_resp *w, int status, const char *html, size_t len)
{
    w->status = status;
    w->content_type = "text/html; charset=utf-8";
    sb_putn(&w->body, html, len);
}

void http_redirect(struct http_resp *w, const char *location)
{
    w->status = 303;
    w->location = location;
    w->content_type = "text/plain; charset=utf-8";
    sb_puts(&w->body, "See Other\n");
}

const char *http_status_line(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 303: return "303 See Other";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 413: return "413 Payload Too Large";
    case 415: return "415 Unsupported Media Type";
    case 429: return "429 Too Many Requests";
    case 502: return "502 Bad Gateway";
    case 503: return "503 Service Unavailable";
    default: return "500 Internal Server Error";
    }
}

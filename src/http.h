/* http.h: the request as the app sees it, bounded validators, the response.
 *
 * The request is built from FastCGI parameters (REQUEST_METHOD, DOCUMENT_URI,
 * QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH, CTFD_*), so any FastCGI client
 * can drive the app. Every query and JSON field a handler reads goes through a
 * validator here first. Must not: trust client headers (HTTP_*) for identity,
 * or build JSON by pasting strings. */
#ifndef CC_HTTP_H
#define CC_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "errors.h"

#define HTTP_MAX_QUERY 4096
#define HTTP_MAX_PARAMS 32
#define HTTP_MAX_PATH 1024

enum http_method { M_GET, M_POST, M_PATCH, M_DELETE, M_PUT, M_HEAD, M_OTHER };

struct http_kv {
    const char *key;
    const char *value;
};

/* Reads up to n body bytes; returns bytes read, 0 at the end, -1 on error. */
typedef long (*http_read_fn)(void *ctx, char *buf, size_t n);

struct http_req {
    arena_t *arena;
    char *const *envp;
    enum http_method method;
    const char *method_str;
    const char *path;
    const char *content_type;
    size_t nquery;
    struct http_kv query[HTTP_MAX_PARAMS];
    bool query_bad;          /* malformed or over the caps */
    const char *body;
    size_t body_len;
    bool body_read;
    http_read_fn read;
    void *read_ctx;
    size_t max_body;
};

struct http_resp {
    int status;
    const char *content_type;
    const char *location;    /* for 303 */
    int retry_after;         /* seconds; 0 = no header */
    strbuf_t body;
    const char *upstream; /* X-CC-Upstream for nginx's route lookups (api_route.c) */
    const char *accel;    /* X-Accel-Redirect: nginx's internal redirect (api_route.c) */
};

/* Build a request from FastCGI parameters. Never fails: problems are
 * reported by the validators and http_body_json. */
void http_req_init(struct http_req *r, arena_t *a, char *const *envp, http_read_fn read,
                   void *read_ctx, size_t max_body);
const char *http_param(const struct http_req *r, const char *name);
/* Parse a query string into kv pairs (percent-decoded, bounded). Returns 0 or
 * -1 when malformed or over the caps. Exposed for the fuzz target. */
int http_parse_query(arena_t *a, const char *qs, struct http_kv *out, size_t cap, size_t *n);
/* The decoded value of a query key; NULL if absent. */
const char *http_query(const struct http_req *r, const char *key);

/* Validators: 0 if valid, else -1 with err = ERR_INVALID_FIELD naming the field. */
int http_valid_id(const char *field, const char *s, int64_t *out, struct cc_error *err);
int http_valid_int(const char *field, const char *s, int64_t min, int64_t max, int64_t *out,
                   struct cc_error *err);
/* Query helpers: absent -> *out = dflt (required=false) or error. */
int http_query_id(const struct http_req *r, const char *key, bool required, int64_t *out,
                  struct cc_error *err);
int http_query_int(const struct http_req *r, const char *key, int64_t min, int64_t max,
                   int64_t dflt, int64_t *out, struct cc_error *err);
/* Only these keys may appear in the query; an unknown key is INVALID_FIELD. */
int http_query_only(const struct http_req *r, const char *const *allowed, struct cc_error *err);

/* Read the body (once, capped) and parse a JSON object. An empty body gives an
 * empty object when allow_empty. Caller json_decref()s the result. */
json_t *http_body_json(struct http_req *r, bool allow_empty, struct cc_error *err);
/* Parse a JSON object from bytes (exposed for the fuzz target). */
json_t *http_parse_json(const char *buf, size_t len, struct cc_error *err);
/* Read the body (once, capped) as application/x-www-form-urlencoded into kv
 * pairs (percent-decoded, bounded like a query string). An empty body gives
 * no pairs. */
int http_body_form(struct http_req *r, struct http_kv *out, size_t cap, size_t *n,
                   struct cc_error *err);
/* The value of key among kv pairs; NULL if absent. */
const char *http_kv_get(const struct http_kv *kv, size_t n, const char *key);
/* A field of a JSON object as an id (integer, or a string of digits). */
int http_json_id(json_t *obj, const char *field, bool required, int64_t *out,
                 struct cc_error *err);

/* Responses. data is stolen (decref'd) by http_reply_json. */
void http_resp_init(struct http_resp *w, arena_t *a);
void http_reply_json(struct http_resp *w, int status, json_t *data);
void http_reply_error(struct http_resp *w, const struct cc_error *err);
void http_reply_html(struct http_resp *w, int status, const char *html, size_t len);
void http_redirect(struct http_resp *w, const char *location);
/* The status line's reason text ("200 OK"). */
const char *http_status_line(int status);

#endif

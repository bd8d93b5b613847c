/* curlx.h: the one libcurl helper. A struct curlx holds one reused CURL easy
 * handle (so the connection to the engine is kept) configured for one
 * endpoint: unix:///path (a unix socket, HTTP) or tcp://host:port (HTTPS with
 * client certificate when TLS files are given, else HTTP).
 *
 * It speaks JSON in and out and translates transport failures (cannot
 * connect, timeout, TLS) into ERR_ENGINE_UNAVAILABLE (temporary) with a short
 * reason that never carries a request body. It knows nothing about Docker:
 * callers give paths and read statuses. One per process, created after fork;
 * not thread-safe. curl_global_init() is main's job, once, before fork:
 * curlx_open never calls it. */
#ifndef CC_CURLX_H
#define CC_CURLX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "arena.h"
#include "errors.h"

/* A reply larger than this fails the request (an engine never needs more). */
#define CURLX_MAX_REPLY ((size_t)4 << 20)

struct curlx;

/* What came back from one request that reached the server. */
struct curlx_reply {
    long status;        /* HTTP status */
    const char *body;   /* NUL-terminated, in the arena ("" when empty) */
    size_t len;
    json_t *json;       /* parsed body when asked and the body is JSON, else NULL;
                           the caller json_decref()s it */
    bool maybe_applied; /* on a transport failure: the server may have acted
                           (timeout after sending), so clean up by name */
};

/* endpoint: "unix:///path" or "tcp://host:port" ("[v6]:port" too). ca, cert,
 * key: PEM files for TLS (NULL or "" for none; any set means https). timeout_s
 * bounds each whole request; connecting is bounded by min(timeout_s, 10).
 * Returns NULL with err set (ERR_INTERNAL for a bad endpoint). */
struct curlx *curlx_open(const char *endpoint, const char *ca, const char *cert,
                         const char *key, long timeout_s, struct cc_error *err);
void curlx_close(struct curlx *cx);

/* The host a tcp:// endpoint names (without brackets), or NULL for unix://. */
const char *curlx_tcp_host(const struct curlx *cx);

/* One request: method "GET", "POST", "DELETE", ...; path starts with '/'
 * (already URL-encoded); body may be NULL (a POST then sends an empty body).
 * Returns 0 when any HTTP reply arrived (check out->status), -1 with err set
 * on a transport failure or a reply over CURLX_MAX_REPLY. The serialized
 * body is wiped before it is freed (it may hold a flag). */
int curlx_request(struct curlx *cx, arena_t *a, const char *method, const char *path,
                  const json_t *body, bool want_json, struct curlx_reply *out,
                  struct cc_error *err);

/* The same with extra request headers ("Name: value", NULL-terminated), for
 * one request only; they are wiped after it (a token or a cookie). */
int curlx_request_headers(struct curlx *cx, arena_t *a, const char *method, const char *path,
                          const json_t *body, bool want_json, const char *const *extra,
                          struct curlx_reply *out, struct cc_error *err);
/* Percent-encode s for a URL query value or path segment (RFC 3986
 * unreserved characters stay). */
char *curlx_urlencode(arena_t *a, const char *s);

#endif

/* ---- streaming copy (ctfd-containers --sync-images) ------------------------- */

/* What a copy moved, and what the destination answered. */
struct curlx_copy_result {
    long src_status;    /* HTTP status of the GET (0 if it never answered) */
    long dst_status;    /* HTTP status of the POST */
    uint64_t bytes;     /* body bytes that went from the GET into the POST */
    const char *reply;  /* the POST's reply body (arena, at most 64 KiB), or "" */
};

/* Stream GET src_path on src into POST dst_path on dst (body sent chunked,
 * with content_type) through a bounded buffer: never more than 1 MiB of the
 * body is held in memory, whatever its size. No overall timeout (an image
 * may be large); a side that moves nothing for 60 s fails the copy. Returns
 * 0 when both requests completed (check the statuses), -1 with err on a
 * transport failure of either side. */
int curlx_copy(struct curlx *src, const char *src_path, struct curlx *dst,
               const char *dst_path, const char *content_type, arena_t *a,
               struct curlx_copy_result *out, struct cc_error *err);

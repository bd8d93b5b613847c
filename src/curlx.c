/* curlx.c: one reused libcurl easy handle per process for the engine API (see
 * curlx.h). It must not call curl_global_init (main does, once, before fork),
 * log or echo a request body (it may hold a flag), or know any engine's
 * paths. Reply bodies go to the caller's arena, capped at CURLX_MAX_REPLY. */
#include "curlx.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct curlx {
    CURL *curl;
    struct curl_slist *headers;
    char *base;      /* "http://localhost" or "http[s]://host:port" */
    char *tcp_host;  /* NULL for a unix socket */
    char *unix_path; /* NULL for tcp */
    long timeout_s;
    char errbuf[CURL_ERROR_SIZE]; /* libcurl's detail (e.g. OpenSSL's reason); never a body */
};

/* Where a reply body goes while it arrives. */
struct curlx_sink {
    strbuf_t sb;
    bool over; /* the reply passed CURLX_MAX_REPLY */
};

static size_t curlx_write(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct curlx_sink *s = userdata;
    size_t n = size * nmemb;
    if (s->sb.len + n > CURLX_MAX_REPLY) {
        s->over = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    sb_putn(&s->sb, data, n);
    return n;
}

static bool curlx_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* "host:port" or "[v6]:port" -> host (malloc'd, no brackets); NULL if malformed. */
static char *curlx_parse_hostport(const char *hp)
{
    const char *host = hp, *end, *colon;
    if (hp[0] == '[') {
        host = hp + 1;
        end = strchr(host, ']');
        if (end == NULL || end[1] != ':')
            return NULL;
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        end = colon;
    }
    if (colon == NULL || end == host || strpbrk(hp, "/@?#") != NULL)
        return NULL;
    char *stop = NULL;
    long port = strtol(colon + 1, &stop, 10);
    if (colon[1] == '\0' || *stop != '\0' || port < 1 || port > 65535)
        return NULL;
    return strndup(host, (size_t)(end - host));
}

/* Fill base, tcp_host / unix_path from the endpoint; -1 with err if malformed. */
static int curlx_parse_endpoint(struct curlx *cx, const char *endpoint, bool tls,
                                struct cc_error *err)
{
    if (endpoint != NULL && strncmp(endpoint, "unix://", 7) == 0 && endpoint[7] == '/') {
        cx->unix_path = strdup(endpoint + 7);
        cx->base = strdup("http://localhost");
        return cx->unix_path && cx->base ? 0 : err_set(err, ERR_INTERNAL, "out of memory");
    }
    if (endpoint != NULL && strncmp(endpoint, "tcp://", 6) == 0) {
        cx->tcp_host = curlx_parse_hostport(endpoint + 6);
        if (cx->tcp_host != NULL) {
            size_t n = strlen(endpoint) + 8;
            cx->base = malloc(n);
            if (cx->base == NULL)
                return err_set(err, ERR_INTERNAL, "out of memory");
            snprintf(cx->base, n, "%s://%s", tls ? "https" : "http", endpoint + 6);
            return 0;
        }
    }
    return err_set(err, ERR_INTERNAL,
                   "docker_endpoint must be unix:///path or tcp://host:port");
}

/* Options that hold for every request on this handle. */
static int curlx_setup(struct curlx *cx, const char *ca, const char *cert, const char *key,
                       struct cc_error *err)
{
    CURL *c = cx->curl;
    long connect_s = cx->timeout_s < 10 ? cx->timeout_s : 10;
    cx->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h = cx->headers ? curl_slist_append(cx->headers, "Expect:") : NULL;
    if (h == NULL)
        return err_set(err, ERR_INTERNAL, "out of memory");
    cx->headers = h;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cx->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, cx->headers) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_s) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT, cx->timeout_s) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CURLX_MAX_REPLY) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curlx_write) != CURLE_OK;
    if (cx->unix_path != NULL)
        bad |= curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, cx->unix_path) != CURLE_OK;
    if (cx->tcp_host != NULL && curlx_set(ca))
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, ca) != CURLE_OK;
    if (cx->tcp_host != NULL && curlx_set(cert))
        bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, cert) != CURLE_OK;
    if (cx->tcp_host != NULL && curlx_set(key))
        bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, key) != CURLE_OK;
    return bad ? err_set(err, ERR_INTERNAL, "libcurl refused an option") : 0;
}

struct curlx *curlx_open(const char *endpoint, const char *ca, const char *cert,
                         const char *key, long timeout_s, struct cc_error *err)
{
    struct curlx *cx = calloc(1, sizeof(*cx));
    if (cx == NULL) {
        err_set(err, ERR_INTERNAL, "out of memory");
        return NULL;
    }
    cx->timeout_s = timeout_s > 0 ? timeout_s : 30;
    bool tls = curlx_set(ca) || curlx_set(cert) || curlx_set(key);
    if (curlx_parse_endpoint(cx, endpoint, tls, err) < 0)
        goto fail;
    cx->curl = curl_easy_init();
    if (cx->curl == NULL) {
        err_set(err, ERR_INTERNAL, "libcurl could not create a handle");
        goto fail;
    }
    if (curlx_setup(cx, ca, cert, key, err) < 0)
        goto fail;
    return cx;
fail:
    curlx_close(cx);
    return NULL;
}

void curlx_close(struct curlx *cx)
{
    if (cx == NULL)
        return;
    if (cx->curl != NULL)
        curl_easy_cleanup(cx->curl);
    curl_slist_free_all(cx->headers);
    free(cx->base);
    free(cx->tcp_host);
    free(cx->unix_path);
    free(cx);
}

const char *curlx_tcp_host(const struct curlx *cx)
{
    return cx->tcp_host;
}

/* The method for the next perform. POSTFIELDS turns the handle into a POST,
 * HTTPGET turns it back; CUSTOMREQUEST renames the verb (DELETE, PUT). */
static void curlx_set_method(CURL *c, const char *method, const char *payload, size_t len)
{
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ||
                                                        strcmp(method, "GET") == 0
                                                    ? NULL
                                                    : method);
}

/* A transport failure, in the error table's words: no body, no endpoint path. */
static int curlx_fail(const struct curlx *cx, CURLcode rc, const struct curlx_sink *s,
                      struct curlx_reply *out, struct cc_error *err)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "engine unreachable: %s",
                       curl_easy_strerror(rc));
    case CURLE_OPERATION_TIMEDOUT:
        out->maybe_applied = true;
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "engine did not answer within %ld s",
                       cx->timeout_s);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return err_set(err, ERR_ENGINE_UNAVAILABLE, "engine TLS failed: %s",
                       curl_easy_strerror(rc));
    default:
        break;
    }
    out->maybe_applied = true;
    if (s->over || rc == CURLE_FILESIZE_EXCEEDED)
        return err_set(err, ERR_INTERNAL, "engine reply larger than %zu bytes",
                       CURLX_MAX_REPLY);
    /* With TLS 1.3 a refused client certificate shows up only as a failed
     * send or receive: libcurl's error buffer carries OpenSSL's reason. */
    return err_set(err, ERR_ENGINE_UNAVAILABLE, "engine connection failed: %s%s%.120s",
                   curl_easy_strerror(rc), cx->errbuf[0] ? ": " : "", cx->errbuf);
}

static int curlx_request_plain(struct curlx *cx, arena_t *a, const char *method,
                               const char *path, const json_t *body, bool want_json,
                               struct curlx_reply *out, struct cc_error *err);

int curlx_request(struct curlx *cx, arena_t *a, const char *method, const char *path,
                  const json_t *body, bool want_json, struct curlx_reply *out,
                  struct cc_error *err)
{
    return curlx_request_headers(cx, a, method, path, body, want_json, NULL, out, err);
}

/* Wipe and free a list of extra headers (they may carry a token or a cookie). */
static void curlx_free_secret_headers(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p != NULL; p = p->next)
        if (p->data != NULL)
            explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

/* This request's headers: the handle's own plus `extra` (NULL-terminated). */
static struct curl_slist *curlx_headers_for(const char *const *extra)
{
    struct curl_slist *h = NULL;
    static const char *const base[] = {"Content-Type: application/json", "Expect:", NULL};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *list = pass == 0 ? base : extra;
        for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
            struct curl_slist *n = curl_slist_append(h, list[i]);
            if (n == NULL) {
                curlx_free_secret_headers(h);
                return NULL;
            }
            h = n;
        }
    }
    return h;
}

int curlx_request_headers(struct curlx *cx, arena_t *a, const char *method, const char *path,
                          const json_t *body, bool want_json, const char *const *extra,
                          struct curlx_reply *out, struct cc_error *err)
{
    struct curl_slist *h = NULL;
    if (extra != NULL) {
        h = curlx_headers_for(extra);
        if (h == NULL)
            return err_set(err, ERR_INTERNAL, "out of memory");
        curl_easy_setopt(cx->curl, CURLOPT_HTTPHEADER, h);
    }
    int rc = curlx_request_plain(cx, a, method, path, body, want_json, out, err);
    if (h != NULL) {
        curl_easy_setopt(cx->curl, CURLOPT_HTTPHEADER, cx->headers);
        curlx_free_secret_headers(h);
    }
    return rc;
}

static int curlx_request_plain(struct curlx *cx, arena_t *a, const char *method,
                               const char *path, const json_t *body, bool want_json,
                               struct curlx_reply *out, struct cc_error *err)
{
    memset(out, 0, sizeof(*out));
    char *payload = NULL;
    size_t plen = 0;
    if (body != NULL) {
        payload = json_dumps(body, JSON_COMPACT);
        if (payload == NULL)
            return err_set(err, ERR_INTERNAL, "cannot encode the engine request");
        plen = strlen(payload);
    }
    struct curlx_sink sink = {.over = false};
    sb_init(&sink.sb, a);
    curlx_set_method(cx->curl, method, payload ? payload : "", plen);
    curl_easy_setopt(cx->curl, CURLOPT_URL, arena_printf(a, "%s%s", cx->base, path));
    curl_easy_setopt(cx->curl, CURLOPT_WRITEDATA, &sink);
    cx->errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(cx->curl);
    /* Forget the payload: it may carry a flag, and the handle outlives it. */
    curl_easy_setopt(cx->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(cx->curl, CURLOPT_WRITEDATA, NULL);
    if (payload != NULL) {
        explicit_bzero(payload, plen);
        free(payload);
    }
    if (rc != CURLE_OK)
        return curlx_fail(cx, rc, &sink, out, err);
    curl_easy_getinfo(cx->curl, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = sb_str(&sink.sb);
    out->len = sink.sb.len;
    if (want_json && sink.sb.len > 0)
        out->json = json_loadb(sink.sb.data, sink.sb.len, 0, NULL);
    return 0;
}

char *curlx_urlencode(arena_t *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = arena_alloc(a, n * 3 + 1), *p = out;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}

/* ---- streaming copy (ctfd-containers --sync-images) ----------------------------
 * Two duplicated easy handles on one multi handle: the GET's write callback
 * fills a ring buffer and pauses when it is full; the POST's read callback
 * drains it and pauses when it is empty. The loop below unpauses each side
 * when the other has made room or data, so memory stays at the ring's size. */

#define CURLX_RING ((size_t)1 << 20)
#define CURLX_COPY_REPLY_MAX ((size_t)64 << 10)

struct curlx_ring {
    char *buf;
    size_t head, used;         /* read position, bytes held */
    bool src_done, src_failed; /* the GET finished / answered with an error */
    bool src_paused, dst_paused;
    CURL *src;
    uint64_t moved;
    strbuf_t reply;     /* the POST's reply (bounded) */
    strbuf_t src_error; /* a failed GET's body (bounded) */
};

static size_t curlx_ring_in(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct curlx_ring *r = userdata;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(r->src, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* an error body: keep a little of it, never feed it on */
        r->src_failed = true;
        if (r->src_error.len + n <= 4096)
            sb_putn(&r->src_error, data, n);
        return n;
    }
    if (n > CURLX_RING)
        return 0; /* cannot happen with libcurl's chunk sizes; fail rather than overflow */
    if (CURLX_RING - r->used < n) {
        r->src_paused = true;
        return CURL_WRITEFUNC_PAUSE; /* libcurl hands the same bytes again later */
    }
    size_t tail = (r->head + r->used) % CURLX_RING;
    size_t first = n < CURLX_RING - tail ? n : CURLX_RING - tail;
    memcpy(r->buf + tail, data, first);
    memcpy(r->buf, data + first, n - first);
    r->used += n;
    return n;
}

static size_t curlx_ring_out(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct curlx_ring *r = userdata;
    size_t want = size * nmemb;
    if (r->src_failed)
        return CURL_READFUNC_ABORT;
    if (r->used == 0) {
        if (r->src_done)
            return 0; /* end of the body */
        r->dst_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = want < r->used ? want : r->used;
    size_t first = n < CURLX_RING - r->head ? n : CURLX_RING - r->head;
    memcpy(data, r->buf + r->head, first);
    memcpy(data + first, r->buf, n - first);
    r->head = (r->head + n) % CURLX_RING;
    r->used -= n;
    r->moved += n;
    return n;
}

static size_t curlx_reply_in(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct curlx_ring *r = userdata;
    size_t n = size * nmemb;
    if (r->reply.len + n <= CURLX_COPY_REPLY_MAX)
        sb_putn(&r->reply, data, n);
    return n;
}

/* A handle like cx's (endpoint, TLS, socket) for one long transfer. */
static CURL *curlx_copy_handle(struct curlx *cx, const char *path, arena_t *a)
{
    CURL *c = curl_easy_duphandle(cx->curl);
    if (c == NULL)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, arena_printf(a, "%s%s", cx->base, path));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    return c;
}

/* Unpause a side that can move again (never from inside a callback). */
static void curlx_copy_unpause(struct curlx_ring *r, CURL *dst)
{
    if (r->src_paused && CURLX_RING - r->used >= CURLX_RING / 2) {
        r->src_paused = false;
        curl_easy_pause(r->src, CURLPAUSE_CONT);
    }
    if (r->dst_paused && (r->used > 0 || r->src_done || r->src_failed)) {
        r->dst_paused = false;
        curl_easy_pause(dst, CURLPAUSE_CONT);
    }
}

/* Run both transfers to their end; the first failure of each side is kept. */
static void curlx_copy_run(CURLM *m, struct curlx_ring *r, CURL *dst, CURLcode *src_rc,
                           CURLcode *dst_rc)
{
    int running = 2;
    while (running > 0) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            if (msg->easy_handle == r->src) {
                *src_rc = msg->data.result;
                r->src_done = true;
                if (msg->data.result != CURLE_OK)
                    r->src_failed = true;
            } else {
                *dst_rc = msg->data.result;
            }
        }
        curlx_copy_unpause(r, dst);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
}

int curlx_copy(struct curlx *src, const char *src_path, struct curlx *dst, const char *dst_path,
               const char *content_type, arena_t *a, struct curlx_copy_result *out,
               struct cc_error *err)
{
    memset(out, 0, sizeof(*out));
    out->reply = "";
    int rc = -1;
    struct curlx_ring r = {.buf = malloc(CURLX_RING)};
    sb_init(&r.reply, a);
    sb_init(&r.src_error, a);
    CURLM *m = curl_multi_init();
    CURL *get = curlx_copy_handle(src, src_path, a);
    CURL *post = curlx_copy_handle(dst, dst_path, a);
    struct curl_slist *h =
        curl_slist_append(NULL, arena_printf(a, "Content-Type: %s", content_type));
    struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
    if (r.buf == NULL || m == NULL || get == NULL || post == NULL || h2 == NULL) {
        err_set(err, ERR_INTERNAL, "out of memory");
        goto done;
    }
    h = h2;
    r.src = get;
    curl_easy_setopt(get, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(get, CURLOPT_WRITEFUNCTION, curlx_ring_in);
    curl_easy_setopt(get, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(post, CURLOPT_POST, 1L);
    curl_easy_setopt(post, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(post, CURLOPT_READFUNCTION, curlx_ring_out);
    curl_easy_setopt(post, CURLOPT_READDATA, &r);
    curl_easy_setopt(post, CURLOPT_WRITEFUNCTION, curlx_reply_in);
    curl_easy_setopt(post, CURLOPT_WRITEDATA, &r);
    curl_multi_add_handle(m, get);
    curl_multi_add_handle(m, post);
    CURLcode src_rc = CURLE_OK, dst_rc = CURLE_OK;
    curlx_copy_run(m, &r, post, &src_rc, &dst_rc);
    curl_easy_getinfo(get, CURLINFO_RESPONSE_CODE, &out->src_status);
    curl_easy_getinfo(post, CURLINFO_RESPONSE_CODE, &out->dst_status);
    out->bytes = r.moved;
    out->reply = out->src_status == 200 ? sb_str(&r.reply) : sb_str(&r.src_error);
    rc = 0;
    if (src_rc != CURLE_OK && out->src_status == 0)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "source engine: %s", curl_easy_strerror(src_rc));
    else if (dst_rc != CURLE_OK && out->src_status == 200)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "destination engine: %s",
                     curl_easy_strerror(dst_rc));
    else if (src_rc != CURLE_OK && out->src_status == 200)
        rc = err_set(err, ERR_ENGINE_UNAVAILABLE, "source engine stopped sending: %s",
                     curl_easy_strerror(src_rc));
done:
    if (m != NULL) {
        if (get != NULL)
            curl_multi_remove_handle(m, get);
        if (post != NULL)
            curl_multi_remove_handle(m, post);
        curl_multi_cleanup(m);
    }
    if (get != NULL)
        curl_easy_cleanup(get);
    if (post != NULL)
        curl_easy_cleanup(post);
    curl_slist_free_all(h);
    free(r.buf);
    return rc;
}

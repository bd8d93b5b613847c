/* images.c: --sync-images (see images.h). For each node: which images does
 * it lack (GET /images/NAME/json), then one GET /images/get?names=... on the
 * source streamed into POST /images/load on the node (curlx_copy: a 1 MiB
 * ring buffer, whatever the tarball's size), then a check that the node now
 * has them. One line per node; a failed node does not stop the others.
 *
 * It must not delete anything, and must not print an engine reply beyond a
 * short, single-line reason. */
#include "images.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "arena.h"
#include "config.h"
#include "curlx.h"

#define IMAGES_API "/v1.41"
#define IMAGES_MAX_ENDPOINTS 256

int images_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > 255 || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && strchr("._-/:@", c) == NULL)
            return 0;
    }
    return 1;
}

static double images_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct curlx *images_open(const struct cc_config *cfg, const char *endpoint,
                                 struct cc_error *e)
{
    return curlx_open(endpoint, cfg->docker_tls_ca, cfg->docker_tls_cert, cfg->docker_tls_key,
                      (long)cfg->docker_timeout_seconds, e);
}

/* 1 the engine has the image, 0 it lacks it, -1 with e. */
static int images_has(struct curlx *cx, arena_t *a, const char *image, struct cc_error *e)
{
    struct curlx_reply r;
    const char *path = arena_printf(a, IMAGES_API "/images/%s/json", curlx_urlencode(a, image));
    if (curlx_request(cx, a, "GET", path, NULL, false, &r, e) < 0)
        return -1;
    if (r.status == 200)
        return 1;
    if (r.status == 404)
        return 0;
    return err_set(e, ERR_ENGINE_UNAVAILABLE, "the engine answered HTTP %ld about %.120s", r.status,
                   image);
}

/* The first error a load reply reports, in one short line, or NULL. The reply
 * is a stream of JSON objects: {"stream": ...} or {"errorDetail": ..., "error": ...}. */
static const char *images_load_error(arena_t *a, const char *reply)
{
    const char *p = reply != NULL ? reply : "";
    while (*p != '\0') {
        json_error_t je;
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        if (j == NULL)
            break;
        const char *msg = json_string_value(json_object_get(j, "error"));
        char *copy = msg != NULL ? arena_printf(a, "%.160s", msg) : NULL;
        json_decref(j);
        if (copy != NULL) {
            for (char *q = copy; *q; q++)
                if (iscntrl((unsigned char)*q))
                    *q = ' ';
            return copy;
        }
        p += je.position;
        while (*p != '\0' && isspace((unsigned char)*p))
            p++;
    }
    return NULL;
}

/* The images the node lacks, as a names=...&names=... query; *missing counts them. */
static int images_missing(struct curlx *node, arena_t *a, const char *const *images, size_t n,
                          strbuf_t *query, size_t *missing, struct cc_error *e)
{
    *missing = 0;
    for (size_t i = 0; i < n; i++) {
        int has = images_has(node, a, images[i], e);
        if (has < 0)
            return -1;
        if (has == 0) {
            sb_printf(query, "%snames=%s", *missing ? "&" : "", curlx_urlencode(a, images[i]));
            (*missing)++;
        }
    }
    return 0;
}

/* One node: 0 done (line on out), -1 failed (line on err). */
static int images_node(const struct cc_config *cfg, struct curlx *src, const char *endpoint,
                       const char *const *images, size_t n, FILE *out, FILE *errf)
{
    arena_t *a = arena_new(16384);
    struct cc_error e;
    err_clear(&e);
    double t0 = images_now();
    struct curlx *node = images_open(cfg, endpoint, &e);
    strbuf_t query;
    sb_init(&query, a);
    size_t missing = 0;
    int rc = node != NULL ? images_missing(node, a, images, n, &query, &missing, &e) : -1;
    struct curlx_copy_result cr = {0};
    if (rc == 0 && missing > 0) {
        const char *get = arena_printf(a, IMAGES_API "/images/get?%s", sb_str(&query));
        rc = curlx_copy(src, get, node, IMAGES_API "/images/load?quiet=1", "application/x-tar", a,
                        &cr, &e);
        const char *why = rc == 0 ? images_load_error(a, cr.reply) : NULL;
        if (rc == 0 && cr.src_status != 200)
            rc = err_set(&e, ERR_INTERNAL, "the source engine answered HTTP %ld to the save",
                         cr.src_status);
        else if (rc == 0 && (cr.dst_status != 200 || why != NULL))
            rc = err_set(&e, ERR_INTERNAL, "the node refused the load (HTTP %ld): %s",
                         cr.dst_status, why != NULL ? why : "no reason given");
        /* Trust the node, not the reply: every image must be there now. */
        size_t still = 0;
        strbuf_t again;
        sb_init(&again, a);
        if (rc == 0 && images_missing(node, a, images, n, &again, &still, &e) == 0 && still > 0)
            rc = err_set(&e, ERR_INTERNAL, "%zu image(s) still missing after the load", still);
        else if (rc == 0 && e.code != ERR_OK)
            rc = -1;
    }
    double took = images_now() - t0;
    if (rc < 0)
        fprintf(errf, "node %s: FAILED: %s\n", endpoint, err_message(&e));
    else if (missing == 0)
        fprintf(out, "node %s: has all %zu image(s)\n", endpoint, n);
    else
        fprintf(out, "node %s: copied %zu of %zu image(s), %.1f MB streamed, in %.2f s\n", endpoint,
                missing, n, (double)cr.bytes / 1e6, took);
    fflush(out);
    fflush(errf);
    curlx_close(node);
    arena_free(a);
    return rc;
}

/* "a, b,c" -> endpoints (trimmed, in the arena); returns how many. */
static size_t images_split(arena_t *a, const char *list, const char **out, size_t max)
{
    size_t n = 0;
    const char *p = list != NULL ? list : "";
    while (*p != '\0' && n < max) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && isspace((unsigned char)p[trimmed - 1]))
            trimmed--;
        if (trimmed > 0)
            out[n++] = arena_strndup(a, p, trimmed);
        p += len;
    }
    return n;
}

/* Every image must be on the source before any node is touched. */
static int images_check_source(struct curlx *src, const char *const *images, size_t n, FILE *errf)
{
    arena_t *a = arena_new(4096);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct cc_error e;
        err_clear(&e);
        int has = images_has(src, a, images[i], &e);
        if (has < 0) {
            fprintf(errf, "sync-images: the source engine: %s\n", err_message(&e));
            bad = 1;
            break;
        }
        if (has == 0) {
            fprintf(errf,
                    "sync-images: image %s is not on the source engine (build or load "
                    "it there first)\n",
                    images[i]);
            bad = 1;
        }
    }
    arena_free(a);
    return bad ? -1 : 0;
}

int images_sync(const struct cc_config *cfg, const char *const *images, size_t n, FILE *out,
                FILE *errf)
{
    arena_t *a = arena_new(8192);
    const char *nodes[IMAGES_MAX_ENDPOINTS];
    size_t nn = images_split(a, cfg->swarm_node_endpoints, nodes, IMAGES_MAX_ENDPOINTS);
    const char *source = cfg->swarm_endpoint[0] ? cfg->swarm_endpoint : cfg->docker_endpoint;
    struct cc_error e;
    err_clear(&e);
    struct curlx *src = nn > 0 ? images_open(cfg, source, &e) : NULL;
    int failed = -1;
    if (nn == 0)
        fprintf(errf, "sync-images: swarm_node_endpoints is empty: no node to copy to\n");
    else if (src == NULL)
        fprintf(errf, "sync-images: source %s: %s\n", source, err_message(&e));
    else if (n == 0)
        fprintf(errf, "sync-images: no image to copy (no challenge names one)\n");
    else if (images_check_source(src, images, n, errf) == 0) {
        fprintf(out, "sync-images: %zu image(s) from %s onto %zu node(s)\n", n, source, nn);
        failed = 0;
        for (size_t i = 0; i < nn; i++)
            if (images_node(cfg, src, nodes[i], images, n, out, errf) < 0)
                failed++;
        fprintf(out, "sync-images: %zu node(s) ready, %d failed\n", nn - (size_t)failed, failed);
    }
    curlx_close(src);
    arena_free(a);
    return failed;
}

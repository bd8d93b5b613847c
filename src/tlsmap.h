/* tlsmap.h: the nginx stream map of TLS routes (SNI name -> upstream), kept
 * up to date by the reaper: NAME.route_domain (the first tcp port) and
 * NAME-PORT.route_domain (each tcp port) -> route_upstream_host:host_port.
 *
 * Written atomically (a temporary file, mode 0640, then rename) only when it changes,
 * then nginx is told to reload (SIGHUP to the master in
 * tls_reload_pid_file), at most once per tls_reload_min_interval_ms: changes
 * that come in between wait for the next pass (debounced). Why a map and a
 * reload: docs/decisions/0015-tls-routes-by-map-and-reload.md.
 * Must not: write outside tls_routes_file's directory, or signal any pid but
 * the one in the pid file. */
#ifndef CC_TLSMAP_H
#define CC_TLSMAP_H

#include <stdint.h>

#include "ops.h"

struct tlsmap_state {
    char *written;       /* the content last written (malloc'd), NULL before the first */
    int64_t reloaded_ms; /* monotonic time of the last write + reload */
    int64_t reloads;     /* how many, for the log and tests */
};

/* The map text for these rows (each line "NAME.DOMAIN HOST:PORT;"). */
const char *tlsmap_render(arena_t *a, const struct cc_config *cfg, const struct route_row *rows,
                          size_t n);
/* One pass: write and reload if the map changed and the interval allows.
 * 1 written, 0 nothing to do (or waiting), -1 on failure (logged). */
int tlsmap_sync(struct app *app, arena_t *a, struct tlsmap_state *st, int64_t now_ms);
void tlsmap_free(struct tlsmap_state *st);

#endif

/* ops.h: container operations shared by the APIs and the reaper: stopping a
 * live container (claim, remove, end the row) and the port list format.
 *
 * Sits between the handlers and store/backend; knows no HTTP. */
#ifndef CC_OPS_H
#define CC_OPS_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "flag.h"
#include "store.h"

/* Long-lived per process. */
struct app {
    const struct cc_config *cfg;
    struct store *store;
    struct backend *backend;
    const struct flag_keys *keys;
};

/* End a live container: claim it (CAS to stopping), remove the engine object
 * (idempotent), end the row with end_state. A row still starting is ended at
 * once: its starter sees that and removes what it created. Ending a row that
 * another process already ended is success. */
int ops_stop(struct app *app, arena_t *a, const struct instance *inst, const char *end_state,
             const char *reason, int64_t now, struct cc_error *err);

/* "80/http,1337/tcp" -> ports (host_port 0). -1 on a bad spec. */
int ops_parse_ports(const char *spec, struct backend_port *ports, size_t cap, size_t *n);
/* ports with host ports <-> "80/http:31234,1337/tcp:31235" (as stored). */
const char *ops_format_ports(arena_t *a, const struct backend_port *ports, size_t n);
int ops_parse_stored_ports(const char *s, struct backend_port *ports, size_t cap, size_t *n);

#endif

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
    struct backend_set backends; /* opened lazily, by name (backend_get) */
    const struct flag_keys *keys;
};

/* The backend a container's row recorded (inst->backend), or NULL with err. */
struct backend *ops_backend(struct app *app, const char *name, struct cc_error *err);
/* After an extend committed: tell the row's backend (whale renews its own
 * timer). A failure is logged, never undoes the extend. */
void ops_engine_extend(struct app *app, arena_t *a, const struct instance *inst);

/* End a live container: claim it (CAS to stopping), remove the engine object
 * (idempotent), end the row with end_state. A row still starting is ended at
 * once: its starter sees that and removes what it created. Ending a row that
 * another process already ended is success. */
int ops_stop(struct app *app, arena_t *a, const struct instance *inst, const char *end_state,
             const char *reason, int64_t now, struct cc_error *err);

/* The renewal limit of a container's challenge (its own, else the app's);
 * inst must come from store_get_instance or store_list (they join it in). */
int64_t ops_max_renewals(const struct cc_config *cfg, const struct instance *inst);
/* Is it an unclaimed warm pool container (see pool.h)? Admins' actions by id
 * (extend, stop, flag reveal) do not see those. */
bool ops_is_pool(const struct instance *inst);
/* A live container by id (not a warm pool one), or CONTAINER_NOT_FOUND. */
int ops_get_live(struct app *app, arena_t *a, int64_t id, struct instance *inst,
                 struct cc_error *err);
/* An admin's extend (admin API and admin page): the renewal limit applies,
 * the account's cooldown does not; writes the audit event. inst is updated. */
int ops_admin_extend(struct app *app, arena_t *a, int64_t id, int64_t actor, const char *detail,
                     int64_t now, struct instance *inst, struct cc_error *err);

/* Stop every live container the filter selects (its page/per_page are used as
 * the batch size), for the admin API and the admin page alike. */
void ops_stop_all(struct app *app, arena_t *a, struct instance_filter *f, int64_t now,
                  int64_t *stopped, int64_t *failed);
/* Decrypt a container's flag into out (FLAG_MAX_LEN + 1 bytes): 0, or -1 with
 * CONTAINER_NOT_FOUND or INTERNAL (a flag the current key cannot open). The
 * caller writes the audit event and wipes out. */
int ops_reveal_flag(struct app *app, arena_t *a, int64_t id, struct instance *inst, char *out,
                    size_t outlen, struct cc_error *err);
/* An audit event by an admin (actor) about a container (inst may be NULL);
 * a failure to write it is logged, never fatal to the action. */
void ops_audit(struct app *app, const char *kind, int64_t actor, const struct instance *inst,
               const char *detail, int64_t now);

/* "80/http,1337/tcp" -> ports (host_port 0). -1 on a bad spec. */
int ops_parse_ports(const char *spec, struct backend_port *ports, size_t cap, size_t *n);
/* ports with host ports <-> "80/http:31234,1337/tcp:31235" (as stored). */
const char *ops_format_ports(arena_t *a, const struct backend_port *ports, size_t n);
int ops_parse_stored_ports(const char *s, struct backend_port *ports, size_t cap, size_t *n);

#endif

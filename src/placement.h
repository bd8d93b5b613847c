/* placement.h: placement constraints for the swarm backend, as a challenge
 * (docker_challenge.placement) or the configuration (swarm_placement) writes
 * them: a comma-separated list of KEY==VALUE or KEY!=VALUE, where KEY is
 * node.labels.NAME, engine.labels.NAME, node.role, node.hostname, node.id,
 * node.platform.os or node.platform.arch, e.g. "node.labels.zone==a".
 *
 * Pure: no I/O, no allocation beyond the caller's arena. The parser is the
 * edge for a value an organiser typed; anything else is refused with a reason. */
#ifndef CC_PLACEMENT_H
#define CC_PLACEMENT_H

#include <stddef.h>

#include "arena.h"

#define PLACEMENT_MAX 8        /* constraints in one list */
#define PLACEMENT_MAX_TEXT 255 /* the column's width */

struct placement {
    size_t n;
    const char *items[PLACEMENT_MAX]; /* normalised "KEY==VALUE" (no blanks), in the arena */
};

/* Parse text (NULL or blank: no constraint) into out. Returns 0, or -1 with a
 * short reason in why (why may be NULL). */
int placement_parse(arena_t *a, const char *text, struct placement *out, char *why, size_t whylen);

#endif

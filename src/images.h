/* images.h: `ctfd-containers --sync-images`: copy challenge images from one
 * engine (the swarm manager) onto every node engine that lacks them, with no
 * registry: the engine's save endpoint streamed into each node's load
 * endpoint through libcurl, never held whole in memory.
 *
 * It must not remove or overwrite anything on a node (load only adds), and
 * must say per node what it did or why it failed. */
#ifndef CC_IMAGES_H
#define CC_IMAGES_H

#include <stddef.h>
#include <stdio.h>

struct cc_config;

/* Is this an image reference we pass to the engine (1 to 255 characters of
 * A-Z a-z 0-9 . _ - / : @, not starting with '-')? */
int images_name_ok(const char *name);

/* Copy images[0..n) from the source engine (swarm_endpoint, else
 * docker_endpoint) to each of swarm_node_endpoints, one line per node on
 * out, errors on err. Returns the number of nodes that failed (0 = all
 * good), or -1 when nothing could be tried (no nodes, a bad endpoint, an
 * image the source lacks). */
int images_sync(const struct cc_config *cfg, const char *const *images, size_t n, FILE *out,
                FILE *err);

#endif

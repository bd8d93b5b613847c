/* worker.h: one pre-forked worker: accept FastCGI requests, route, answer. */
#ifndef CC_WORKER_H
#define CC_WORKER_H

#include "config.h"
#include "flag.h"

/* Runs until SIGTERM (finishes the request in flight). Returns the exit code. */
int worker_run(const struct cc_config *cfg, int listen_fd, const struct flag_keys *keys);

#endif

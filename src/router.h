/* router.h: the route table: method + path -> handler. */
#ifndef CC_ROUTER_H
#define CC_ROUTER_H

#include "api.h"

/* Route the request in c (path, method) and run its handler; answers 404 for
 * an unknown path and 405 (naming the allowed methods) for a wrong method. */
void router_dispatch(struct ctx *c);

#endif

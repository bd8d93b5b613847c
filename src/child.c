/* child.c: see child.h. Shared by worker.c and reaper.c so both children
 * start and stop the same way. Must not: touch the listening socket. */
#include "child.h"

#include <signal.h>
#include <string.h>

#include "log.h"

void child_signals(void (*on_term)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term; /* no SA_RESTART: accept() and nanosleep() return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int child_open(struct app *app, const struct cc_config *cfg, const struct flag_keys *keys,
               const char *role)
{
    struct cc_error err = {0};
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    app->keys = keys;
    app->store = store_open(cfg, &err);
    /* Backends open lazily, by name, on first use (switch, canary, fallback). */
    backend_set_init(&app->backends, cfg, app->store);
    if (app->store == NULL) {
        log_error("%s: cannot start: %s", role, err_message(&err));
        child_close(app);
        return -1;
    }
    return 0;
}

void child_close(struct app *app)
{
    backend_set_close(&app->backends);
    store_close(app->store);
    app->store = NULL;
}

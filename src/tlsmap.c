/* tlsmap.c: see tlsmap.h. */
#include "tlsmap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

const char *tlsmap_render(arena_t *a, const struct cc_config *cfg, const struct route_row *rows,
                          size_t n)
{
    strbuf_t sb;
    sb_init(&sb, a);
    sb_printf(&sb, "# written by ctfd-containers (tls_routes_file): SNI name -> upstream\n");
    for (size_t i = 0; i < n && cfg->route_domain[0]; i++) {
        struct backend_port ports[BACKEND_MAX_PORTS];
        size_t np = 0;
        if (ops_parse_stored_ports(rows[i].ports, ports, BACKEND_MAX_PORTS, &np) < 0)
            continue;
        bool first = true;
        for (size_t k = 0; k < np; k++) {
            if (ports[k].proto != PROTO_TCP || ports[k].host_port <= 0)
                continue;
            if (first)
                sb_printf(&sb, "%s.%s %s:%d;\n", rows[i].route, cfg->route_domain,
                          cfg->route_upstream_host, ports[k].host_port);
            sb_printf(&sb, "%s-%d.%s %s:%d;\n", rows[i].route, ports[k].internal, cfg->route_domain,
                      cfg->route_upstream_host, ports[k].host_port);
            first = false;
        }
    }
    return sb_str(&sb);
}

static int write_atomically(const char *path, const char *text)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    /* The names are the containers' only secret: not for every local user. nginx's
     * master (root) reads its configuration. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* SIGHUP to the nginx master named in the pid file: a graceful reload. */
static void reload_nginx(const char *pid_file)
{
    if (pid_file == NULL || pid_file[0] == '\0')
        return;
    FILE *f = fopen(pid_file, "re");
    long pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid <= 1 || kill((pid_t)pid, SIGHUP) < 0)
        log_warn("tls routes: cannot signal nginx (pid file %s): %s", pid_file,
                 pid <= 1 ? "no pid" : strerror(errno));
}

int tlsmap_sync(struct app *app, arena_t *a, struct tlsmap_state *st, int64_t now_ms)
{
    const struct cc_config *cfg = app->cfg;
    if (cfg->tls_routes_file[0] == '\0')
        return 0;
    if (st->written != NULL && now_ms - st->reloaded_ms < cfg->tls_reload_min_interval_ms)
        return 0; /* debounced: the next pass picks the changes up */
    struct route_row *rows;
    size_t n;
    struct cc_error err = {0};
    if (store_routes_running(app->store, a, &rows, &n, &err) < 0)
        return -1;
    const char *text = tlsmap_render(a, cfg, rows, n);
    if (st->written != NULL && strcmp(st->written, text) == 0)
        return 0;
    if (write_atomically(cfg->tls_routes_file, text) < 0) {
        log_error("tls routes: cannot write %s: %s", cfg->tls_routes_file, strerror(errno));
        return -1;
    }
    free(st->written);
    st->written = strdup(text);
    st->reloaded_ms = now_ms;
    st->reloads++;
    reload_nginx(cfg->tls_reload_pid_file);
    log_info("tls routes: %zu running container(s) mapped; nginx reload %lld", n,
             (long long)st->reloads);
    return 1;
}

void tlsmap_free(struct tlsmap_state *st)
{
    free(st->written);
    st->written = NULL;
}

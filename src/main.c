/* main.c: arguments, config, and the master: it opens the FastCGI socket,
 * forks the workers and the reaper, respawns a child that dies (with
 * backoff), stops gracefully on SIGTERM and replaces the workers one by one
 * on SIGHUP without closing the socket.
 *
 * Must not: serve requests itself, or hold a database connection or curl
 * handle across fork (children open their own). */
#include <curl/curl.h>
#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <grp.h>
#include <mysql.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "backend.h"
#include "flag.h"
#include "images.h"
#include "log.h"
#include "reaper.h"
#include "store.h"
#include "worker.h"

extern char **environ;

#define MAX_CHILDREN 520 /* 256 workers + reaper, twice during a reload */
enum role { R_NONE, R_WORKER, R_REAPER };

struct child {
    pid_t pid;
    enum role role;
    time_t started;
    time_t respawn_at; /* when a dead slot may be refilled */
    int backoff;       /* seconds */
    bool retiring;     /* replaced on SIGHUP: do not refill */
};

static struct child kids[MAX_CHILDREN];
static struct cc_config cfg_store[2];
static struct cc_config *cfg;
static struct flag_keys keys;
static int listen_fd = -1;

static void usage(FILE *out)
{
    fputs("usage: ctfd-containers -c FILE [--check-config | --migrate | --reconcile-once]\n"
          "       ctfd-containers -c FILE --sync-images [IMAGE...]\n"
          "       ctfd-containers --version\n"
          "  -c FILE           configuration file (key = value); CTFD_CONTAINERS_<KEY> overrides\n"
          "  --check-config    print the effective configuration (secrets masked); exit 0 or 2\n"
          "  --migrate         create or upgrade our container_* tables, then exit\n"
          "  --reconcile-once  run one reconciliation pass, print its report, exit\n"
          "  --config-doc      print the table of every option (Markdown)\n"
          "  --sync-images     copy images (default: every challenge's) from the swarm manager\n"
          "                    onto each of swarm_node_endpoints that lacks them; exit 1 if a\n"
          "                    node failed\n",
          out);
}

/* Refuse to steal a socket another running instance answers on. */
static int open_socket(const struct cc_config *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->listen);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(probe);
        log_error("listen: %s: another process answers on this socket", c->listen);
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(c->listen);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    mode_t old = umask(0177);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(fd, 512) < 0 || chmod(c->listen, (mode_t)c->listen_mode) < 0) {
        log_error("listen: %s: %s", c->listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    struct passwd *pw = c->listen_owner[0] ? getpwnam(c->listen_owner) : NULL;
    struct group *gr = c->listen_group[0] ? getgrnam(c->listen_group) : NULL;
    if ((c->listen_owner[0] && !pw) || (c->listen_group[0] && !gr)) {
        log_error("listen: unknown listen_owner or listen_group");
        close(fd);
        return -1;
    }
    if (pw)
        uid = pw->pw_uid;
    if (gr)
        gid = gr->gr_gid;
    if ((pw || gr) && chown(c->listen, uid, gid) < 0) {
        log_error("listen: chown %s: %s", c->listen, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static pid_t spawn(enum role role)
{
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* A master that dies, even by SIGKILL, takes its children with it: they
     * get SIGTERM (blocked until child_signals installs the handler), finish
     * the request in flight and exit, so a restarted master can take the
     * socket. The check covers a master that died before the prctl. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master_pid)
        _exit(0);
    int rc = role == R_WORKER ? worker_run(cfg, listen_fd, &keys) : reaper_run(cfg, &keys);
    curl_global_cleanup();
    mysql_library_end();
    exit(rc);
}

static void fill(struct child *k, enum role role)
{
    pid_t pid = spawn(role);
    if (pid < 0) {
        log_error("fork failed: %s", strerror(errno));
        k->respawn_at = time(NULL) + 1;
        return;
    }
    k->pid = pid;
    k->role = role;
    k->started = time(NULL);
    k->retiring = false;
}

static struct child *slot_free(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (kids[i].role == R_NONE)
            return &kids[i];
    return NULL;
}

static void start_children(void)
{
    for (int i = 0; i < cfg->workers; i++)
        fill(slot_free(), R_WORKER);
    fill(slot_free(), R_REAPER);
}

/* A child died: refill its slot, at once if it lived a while, else with a
 * backoff that doubles up to 30 s (a crash loop must not spin). */
static void child_died(struct child *k, int status)
{
    const char *what = k->role == R_WORKER ? "worker" : "reaper";
    if (WIFSIGNALED(status))
        log_warn("%s %d killed by signal %d", what, (int)k->pid, WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        log_warn("%s %d exited with status %d", what, (int)k->pid, WEXITSTATUS(status));
    k->pid = 0;
    if (k->retiring) {
        k->role = R_NONE;
        return;
    }
    time_t now = time(NULL);
    k->backoff = now - k->started < 2 ? (k->backoff ? k->backoff * 2 : 1) : 0;
    if (k->backoff > 30)
        k->backoff = 30;
    k->respawn_at = now + k->backoff;
    if (k->backoff)
        log_warn("%s respawns in %d s", what, k->backoff);
}

static void reap_children(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < MAX_CHILDREN; i++)
            if (kids[i].pid == pid) {
                child_died(&kids[i], status);
                break;
            }
}

static void refill(void)
{
    time_t now = time(NULL);
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (kids[i].role != R_NONE && kids[i].pid == 0 && now >= kids[i].respawn_at) {
            fill(&kids[i], kids[i].role);
            if (kids[i].pid > 0)
                log_info("%s respawned as %d", kids[i].role == R_WORKER ? "worker" : "reaper",
                         (int)kids[i].pid);
        }
}

static int live_children(void)
{
    int n = 0;
    for (int i = 0; i < MAX_CHILDREN; i++)
        n += kids[i].pid > 0;
    return n;
}

/* SIGTERM: children finish what they do; after 10 s whatever is left is killed. */
static void shutdown_all(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (kids[i].pid > 0)
            kill(kids[i].pid, SIGTERM);
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
    time_t deadline = time(NULL) + 9;
    while (live_children() > 0 && time(NULL) < deadline) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (int i = 0; i < MAX_CHILDREN; i++)
                if (kids[i].pid == pid)
                    kids[i].pid = 0;
        nanosleep(&tick, NULL);
    }
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (kids[i].pid > 0) {
            log_warn("child %d did not stop in time: killed", (int)kids[i].pid);
            kill(kids[i].pid, SIGKILL);
        }
    while (waitpid(-1, NULL, 0) > 0)
        ;
}

/* The schema must be current before serving: --migrate makes it so. */
static int check_schema(const struct cc_config *c)
{
    struct cc_error err = {0};
    struct store *s = store_open(c, &err);
    int64_t v = 0;
    int pending = 0;
    int rc = s ? store_schema_pending(s, &v, &pending, &err) : -1;
    store_close(s);
    if (rc < 0) {
        log_error("database %s unreachable: %s", c->database_name, err_message(&err));
        return -1;
    }
    if (pending > 0) {
        log_error("schema version %lld, this build needs %d (%d file(s) to apply): run "
                  "ctfd-containers -c FILE --migrate", (long long)v, store_latest_version(),
                  pending);
        return -1;
    }
    return 0;
}

/* A backend this build lacks must stop start-up, not crash-loop the workers. */
static int check_backend(const struct cc_config *c)
{
    struct cc_error err = {0};
    const char *names[2] = {c->backend, c->fallback_backend};
    for (int i = 0; i < 2; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            continue;
        struct backend *b = backend_open(names[i], c, &err);
        if (b == NULL) {
            log_error("%s: %s", i == 0 ? "backend" : "fallback_backend", err_message(&err));
            return -1;
        }
        backend_close(b);
    }
    return 0;
}

/* A setting only a restart applies (the socket is bound, the pid file and the
 * keys were read): keep the running value, so that shutdown removes the
 * socket and pid file it made rather than paths it never touched. */
static void keep_running(char **next, char **running, const char *key)
{
    if (strcmp(*next, *running) == 0)
        return;
    log_warn("reload: %s cannot change without a restart; still %s", key, *running);
    char *t = *next;
    *next = *running;
    *running = t; /* freed with the old configuration */
}

/* SIGHUP: load and check the new configuration; if good, start each new
 * child before retiring an old one, so some worker always accepts. */
static void reload(const char *path)
{
    struct cc_config *next = cfg == &cfg_store[0] ? &cfg_store[1] : &cfg_store[0];
    char err[512];
    if (config_load(next, path, environ, err, sizeof(err)) < 0) {
        log_error("reload refused, keeping the running configuration: %s", err);
        config_free(next);
        return;
    }
    /* The same checks as at start-up: a database or backend the new workers
     * cannot open would retire every working worker for a crash loop. */
    if (check_schema(next) < 0 || check_backend(next) < 0) {
        log_error("reload refused, keeping the running configuration (see above)");
        config_free(next);
        return;
    }
    keep_running(&next->listen, &cfg->listen, "listen");
    keep_running(&next->pid_file, &cfg->pid_file, "pid_file");
    keep_running(&next->flag_key_file, &cfg->flag_key_file, "flag_key_file");
    struct cc_config *old = cfg;
    cfg = next;
    log_init("master", (enum log_level)log_level_parse(cfg->log_level));
    int nold = 0;
    pid_t olds[MAX_CHILDREN];
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (kids[i].role != R_NONE) {
            kids[i].retiring = true;
            if (kids[i].pid > 0)
                olds[nold++] = kids[i].pid;
            else
                kids[i].role = R_NONE;
        }
    for (int i = 0; i < cfg->workers || i < nold; i++) {
        if (i < cfg->workers)
            fill(slot_free(), R_WORKER);
        if (i < nold)
            kill(olds[i], SIGTERM);
    }
    fill(slot_free(), R_REAPER);
    config_free(old);
    log_info("reload: configuration applied; %d children (workers and reaper) replaced", nold);
}

static int master(const char *path)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((listen_fd = open_socket(cfg)) < 0)
        return 1;
    FCGX_Init();
    if (cfg->pid_file[0]) {
        FILE *f = fopen(cfg->pid_file, "we");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    start_children();
    log_info("master %d: %lld workers and a reaper on %s", (int)getpid(),
             (long long)cfg->workers, cfg->listen);
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 250 * 1000000};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP)
            reload(path);
        reap_children();
        refill();
    }
    log_info("master: stopping");
    close(listen_fd);
    shutdown_all();
    unlink(cfg->listen);
    if (cfg->pid_file[0])
        unlink(cfg->pid_file);
    log_info("master: stopped");
    return 0;
}

static int one_shot(const char *what)
{
    struct cc_error err = {0};
    struct store *s = store_open(cfg, &err);
    int rc = 1;
    if (strcmp(what, "migrate") == 0) {
        rc = s && store_migrate(s, stdout, &err) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "ctfd-containers: migrate failed: %s\n", err_message(&err));
    } else {
        struct app app = {.cfg = cfg, .store = s, .keys = &keys};
        backend_set_init(&app.backends, cfg, s);
        arena_t *a = arena_new(65536);
        struct reconcile_report rep = {0};
        if (s && reaper_expire(&app, a, time(NULL), &rep) == 0 &&
            reaper_reconcile(&app, a, time(NULL), &rep) == 0) {
            reaper_save_report(&app, &rep, time(NULL));
            rc = 0;
        }
        reaper_print(&rep, stdout);
        if (rc)
            fprintf(stderr, "ctfd-containers: reconcile failed: %s\n",
                    err.code != ERR_OK ? err_message(&err)
                                       : "the engine or the database did not answer (see the log)");
        arena_free(a);
        backend_set_close(&app.backends);
    }
    store_close(s);
    return rc;
}

/* --sync-images: the images named, else every challenge's (from the database). */
static int sync_images(char **names, int count)
{
    arena_t *a = arena_new(16384);
    const char **images = (const char **)names;
    size_t n = (size_t)count;
    int rc = 0;
    for (int i = 0; i < count; i++)
        if (!images_name_ok(names[i])) {
            fprintf(stderr, "ctfd-containers: sync-images: '%.80s' is not an image name\n",
                    names[i]);
            rc = 2;
        }
    if (rc == 0 && count == 0) {
        struct cc_error err = {0};
        struct store *s = store_open(cfg, &err);
        if (s == NULL || store_challenge_images(s, a, &images, &n, &err) < 0) {
            fprintf(stderr, "ctfd-containers: sync-images: cannot read the challenges' images: "
                            "%s\n", err_message(&err));
            rc = 1;
        }
        store_close(s);
    }
    if (rc == 0)
        rc = images_sync(cfg, images, n, stdout, stderr) == 0 ? 0 : 1;
    arena_free(a);
    return rc;
}

int main(int argc, char **argv)
{
    enum { O_CHECK = 256, O_MIGRATE, O_VERSION, O_RECONCILE, O_DOC, O_SYNC };
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, O_CHECK},
        {"migrate", no_argument, NULL, O_MIGRATE}, {"version", no_argument, NULL, O_VERSION},
        {"reconcile-once", no_argument, NULL, O_RECONCILE},
        {"config-doc", no_argument, NULL, O_DOC}, {"help", no_argument, NULL, 'h'},
        {"sync-images", no_argument, NULL, O_SYNC},
        {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int mode = 0, o;
    while ((o = getopt_long(argc, argv, "c:h", longs, NULL)) != -1) {
        if (o == 'c')
            path = optarg;
        else if (o == 'h')
            return usage(stdout), 0;
        else if (o == O_VERSION)
            return puts("ctfd-containers " PACKAGE_VERSION), 0;
        else if (o == O_DOC)
            return config_print_doc(stdout), 0;
        else if (o >= O_CHECK)
            mode = o;
        else
            return usage(stderr), 2;
    }
    if (optind != argc && mode != O_SYNC)
        return usage(stderr), 2;
    char err[512];
    cfg = &cfg_store[0];
    if (config_load(cfg, path, environ, err, sizeof(err)) < 0) {
        fprintf(stderr, "ctfd-containers: configuration: %s\n", err);
        return 2;
    }
    log_init("master", (enum log_level)log_level_parse(cfg->log_level));
    if (mode == O_CHECK)
        return config_print(cfg, stdout), config_free(cfg), 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mysql_library_init(0, NULL, NULL);
    int rc;
    if (mode == O_MIGRATE) {
        rc = one_shot("migrate");
    } else if (mode == O_SYNC) {
        rc = sync_images(argv + optind, argc - optind);
    } else if (flag_keys_load(cfg->flag_key_file, &keys, err, sizeof(err)) < 0) {
        fprintf(stderr, "ctfd-containers: flag_key_file: %s\n", err);
        rc = 2;
    } else if (mode == O_RECONCILE) {
        rc = one_shot("reconcile");
    } else {
        rc = check_schema(cfg) < 0 || check_backend(cfg) < 0 ? 1 : master(path);
    }
    flag_wipe(&keys, sizeof(keys));
    config_free(cfg);
    curl_global_cleanup();
    mysql_library_end();
    return rc;
}

/* loadgen.c: a small HTTP load generator for `make bench` (benchmarks/run).
 *
 * Two modes, one thread, epoll, one TCP connection per request (HTTP/1.0,
 * the server closes: the same cost for every route measured):
 *   open loop   -r RATE: a request is sent every 1/RATE s whatever happens to
 *               the ones before it (a slow server gets more requests in flight,
 *               it is not given time to catch up); latency is counted from the
 *               moment the request was due, so a late send counts against it.
 *   closed loop -c CONC: CONC requests in flight; each answer sends the next.
 * "{u}" in the path or a header is replaced by the next id of -u LO:HI in turn
 * (one player after another). Prints one JSON object: counts by status, and
 * latency percentiles (ms) of the requests sent after the warm-up.
 *
 *   loadgen -p PORT [-a 127.0.0.1] -d SECONDS (-r RATE | -c CONC) [-w WARMUP]
 *           [-u LO:HI] [-m METHOD] [-H 'Name: value']... [-o FILE] PATH
 * -o FILE also writes every latency (ms, one a line) for the caller to merge runs.
 *
 * Must not: be used against hosts other than the benchmark's own loopback
 * servers; it has no back-off. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 4096
#define MAX_HEADERS 16
#define MAX_SAMPLES (1 << 22)

struct conn {
    int fd;
    double due; /* when the request was due (open) or sent (closed) */
    size_t sent;
    char head[16];
    size_t head_len;
    char req[2048];
    size_t req_len;
    int counted; /* due after the warm-up */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

/* Copy s into out, replacing "{u}" with u. */
static size_t subst(char *out, size_t cap, const char *s, long u)
{
    size_t n = 0;
    while (*s && n + 24 < cap) {
        if (strncmp(s, "{u}", 3) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%ld", u);
            s += 3;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return v[i >= n ? n - 1 : i];
}

/* Everything a run shares. */
struct gen {
    struct sockaddr_in sa;
    int ep;
    struct conn *conns;
    const char *addr, *method, *path;
    const char *headers[MAX_HEADERS];
    int nheaders;
    long ulo, uhi, next_u;
    double t_measure, t_end;
    long errors, dropped, inflight;
};

/* Start one request on a free slot; due: when it was due (open) or sent (closed). */
static void launch(struct gen *g, double due)
{
    int slot = -1;
    for (int k = 0; k < MAX_INFLIGHT; k++)
        if (g->conns[k].fd < 0) {
            slot = k;
            break;
        }
    if (slot < 0) {
        g->dropped++;
        return;
    }
    struct conn *c = &g->conns[slot];
    char p[1024], h[512];
    long u = g->next_u;
    g->next_u = g->next_u >= g->uhi ? g->ulo : g->next_u + 1;
    subst(p, sizeof(p), g->path, u);
    int n =
        snprintf(c->req, sizeof(c->req), "%s %s HTTP/1.0\r\nHost: %s\r\n", g->method, p, g->addr);
    for (int j = 0; j < g->nheaders && n < (int)sizeof(c->req); j++) {
        subst(h, sizeof(h), g->headers[j], u);
        n += snprintf(c->req + n, sizeof(c->req) - (size_t)n, "%s\r\n", h);
    }
    if (n >= (int)sizeof(c->req) - 2)
        die("request too long");
    n += snprintf(c->req + n, sizeof(c->req) - (size_t)n, "\r\n");
    c->req_len = (size_t)n;
    c->sent = c->head_len = 0;
    c->due = due;
    c->counted = due >= g->t_measure && due < g->t_end;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&g->sa, sizeof(g->sa)) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        if (c->counted)
            g->errors++;
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot};
    epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev);
    g->inflight++;
}

int main(int argc, char **argv)
{
    struct gen g = {.addr = "127.0.0.1", .method = "GET"};
    int port = 0, conc = 0, opt;
    double rate = 0, duration = 5, warmup = 0.5;
    const char *usage = "usage: loadgen -p PORT -d S (-r RATE | -c CONC) [-w S] [-u LO:HI] "
                        "[-m METHOD] [-H 'Name: value']... [-o FILE] PATH";
    const char *samples_path = NULL;
    while ((opt = getopt(argc, argv, "a:p:d:r:c:w:u:m:H:o:")) != -1) {
        switch (opt) {
        case 'a':
            g.addr = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'm':
            g.method = optarg;
            break;
        case 'o':
            samples_path = optarg;
            break;
        case 'u':
            if (sscanf(optarg, "%ld:%ld", &g.ulo, &g.uhi) != 2 || g.uhi < g.ulo)
                die("-u wants LO:HI");
            break;
        case 'H':
            if (g.nheaders == MAX_HEADERS)
                die("too many -H");
            g.headers[g.nheaders++] = optarg;
            break;
        default:
            die(usage);
        }
    }
    if (optind != argc - 1 || port <= 0 || duration <= 0 || (rate <= 0) == (conc <= 0) ||
        conc > MAX_INFLIGHT)
        die(usage);
    g.path = argv[optind];
    g.next_u = g.ulo;
    g.sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, g.addr, &g.sa.sin_addr) != 1)
        die("-a wants an IPv4 address");
    g.ep = epoll_create1(0);
    if (g.ep < 0)
        die("epoll_create1");
    g.conns = calloc(MAX_INFLIGHT, sizeof(*g.conns));
    double *lat = malloc(MAX_SAMPLES * sizeof(double));
    if (!g.conns || !lat)
        die("out of memory");
    for (int i = 0; i < MAX_INFLIGHT; i++)
        g.conns[i].fd = -1;
    static long statuses[600];
    size_t nlat = 0;

    double t0 = now_s(), next_due = t0;
    g.t_measure = t0 + warmup;
    g.t_end = g.t_measure + duration;
    for (int i = 0; i < conc; i++)
        launch(&g, now_s());

    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        while (rate > 0 && next_due <= t && next_due < g.t_end) {
            launch(&g, next_due);
            next_due += 1.0 / rate;
        }
        /* After the end, let what is in flight finish (at most 10 s more). */
        if (t >= g.t_end && (g.inflight == 0 || t > g.t_end + 10))
            break;
        int timeout_ms = 100;
        if (rate > 0 && next_due < g.t_end) {
            double wait = (next_due - now_s()) * 1e3;
            timeout_ms = wait < 0 ? 0 : (int)wait;
        }
        int n = epoll_wait(g.ep, evs, 256, timeout_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = &g.conns[evs[i].data.u32];
            if (c->fd < 0)
                continue;
            int done = 0, failed = 0;
            if (c->sent < c->req_len && (evs[i].events & EPOLLOUT)) {
                ssize_t w = send(c->fd, c->req + c->sent, c->req_len - c->sent, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN)
                    failed = 1;
                else if (w > 0 && (c->sent += (size_t)w) == c->req_len) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                             .data.u32 = evs[i].data.u32};
                    epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!failed && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                char buf[16384];
                for (;;) {
                    ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                    if (r > 0) {
                        size_t take = sizeof(c->head) - 1 - c->head_len;
                        if (take > (size_t)r)
                            take = (size_t)r;
                        memcpy(c->head + c->head_len, buf, take);
                        c->head_len += take;
                        continue;
                    }
                    if (r == 0)
                        done = 1;
                    else if (errno != EAGAIN)
                        failed = 1;
                    break;
                }
            }
            if (!done && !failed)
                continue;
            double t_done = now_s();
            epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            g.inflight--;
            c->head[c->head_len] = '\0';
            int st = 0;
            if (done && sscanf(c->head, "HTTP/%*d.%*d %d", &st) == 1 && st > 0 && st < 600) {
                if (c->counted) {
                    statuses[st]++;
                    if (nlat < MAX_SAMPLES)
                        lat[nlat++] = (t_done - c->due) * 1e3;
                }
            } else if (c->counted) {
                g.errors++;
            }
            if (conc > 0 && t_done < g.t_end)
                launch(&g, t_done);
        }
    }
    qsort(lat, nlat, sizeof(double), cmp_double);
    if (samples_path != NULL) {
        FILE *f = fopen(samples_path, "w");
        if (f == NULL)
            die("cannot write the -o file");
        for (size_t i = 0; i < nlat; i++)
            fprintf(f, "%.4f\n", lat[i]);
        if (fclose(f) != 0)
            die("cannot write the -o file");
    }
    double sum = 0;
    for (size_t i = 0; i < nlat; i++)
        sum += lat[i];
    long ok = 0;
    for (int s = 200; s < 300; s++)
        ok += statuses[s];
    printf("{\"mode\":\"%s\",\"rate\":%g,\"concurrency\":%d,\"duration_s\":%g,\"n\":%zu,"
           "\"ok\":%ld,\"errors\":%ld,\"dropped\":%ld,\"throughput_rps\":%.1f,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f,"
           "\"statuses\":{",
           rate > 0 ? "open" : "closed", rate, conc, duration, nlat, ok, g.errors, g.dropped,
           (double)nlat / duration, pct(lat, nlat, 50), pct(lat, nlat, 90), pct(lat, nlat, 99),
           nlat ? lat[nlat - 1] : 0.0, nlat ? sum / (double)nlat : 0.0);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (statuses[s]) {
            printf("%s\"%d\":%ld", first ? "" : ",", s, statuses[s]);
            first = 0;
        }
    printf("}}\n");
    free(g.conns);
    free(lat);
    close(g.ep);
    return 0;
}

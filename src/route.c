/* route.c: see route.h. */
#include "route.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

static const char route_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int route_generate(char *out, size_t outlen)
{
    unsigned char raw[ROUTE_LEN];
    if (out == NULL || outlen < ROUTE_LEN + 1)
        return -1;
    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return -1;
    /* 32 divides 256: the low five bits of a uniform byte are uniform. */
    for (size_t i = 0; i < ROUTE_LEN; i++)
        out[i] = route_alphabet[raw[i] & 31];
    out[ROUTE_LEN] = '\0';
    memset(raw, 0, sizeof(raw));
    return 0;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* "123" -> 123 within 1..65535 and without a leading zero; -1 otherwise. */
static int parse_port(const char *s, size_t n)
{
    if (n == 0 || n > 5 || s[0] == '0')
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* The first label: NAME or NAME-PORT. */
static int parse_label(const char *s, size_t n, char *name, size_t namelen, int *port)
{
    const char *dash = memchr(s, '-', n);
    size_t nl = dash ? (size_t)(dash - s) : n;
    if (nl < ROUTE_NAME_MIN || nl > ROUTE_NAME_MAX || namelen < nl + 1)
        return -1;
    for (size_t i = 0; i < nl; i++)
        if (!is_lower_alnum(s[i]))
            return -1;
    *port = 0;
    if (dash != NULL && (*port = parse_port(dash + 1, n - nl - 1)) < 0)
        return -1;
    memcpy(name, s, nl);
    name[nl] = '\0';
    return 0;
}

int route_parse_host(const char *host, const char *domain, char *name, size_t namelen, int *port)
{
    if (host == NULL || domain == NULL || name == NULL || port == NULL || domain[0] == '\0')
        return -1;
    size_t n = strnlen(host, ROUTE_HOST_MAX + 8);
    const char *colon = memchr(host, ':', n);
    if (colon != NULL) { /* Host: name:port (the port of the URL, not a container's) */
        if (parse_port(colon + 1, n - (size_t)(colon - host) - 1) < 0)
            return -1;
        n = (size_t)(colon - host);
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    size_t dl = strlen(domain);
    if (n > ROUTE_HOST_MAX || n < dl + 2 || host[n - dl - 1] != '.' ||
        strncasecmp(host + n - dl, domain, dl) != 0)
        return -1;
    return parse_label(host, n - dl - 1, name, namelen, port);
}

bool route_domain_valid(const char *domain)
{
    size_t n = domain ? strlen(domain) : 0;
    if (n == 0 || n > ROUTE_DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = domain[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || domain[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_lower_alnum(c) || (c == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
        if (label > 63)
            return false;
    }
    return true;
}

/* Docker's default capability set: what an ordinary container has anyway. */
static const char *const caps_allowed[] = {
    "CHOWN",      "DAC_OVERRIDE", "FOWNER",      "FSETID",           "KILL",
    "SETGID",     "SETUID",       "SETPCAP",     "NET_BIND_SERVICE", "NET_RAW",
    "SYS_CHROOT", "MKNOD",        "AUDIT_WRITE", "SETFCAP",          NULL,
};

static bool cap_known(const char *s, size_t n)
{
    if (n > 4 && strncasecmp(s, "CAP_", 4) == 0) {
        s += 4;
        n -= 4;
    }
    for (size_t i = 0; caps_allowed[i] != NULL; i++)
        if (strlen(caps_allowed[i]) == n && strncasecmp(caps_allowed[i], s, n) == 0)
            return true;
    return false;
}

bool route_list_next(const char **p, const char **item, size_t *len)
{
    const char *q = *p != NULL ? *p : "";
    for (;;) {
        while (*q == ',' || isspace((unsigned char)*q))
            q++;
        if (*q == '\0') {
            *p = q;
            return false;
        }
        const char *start = q;
        while (*q != '\0' && *q != ',')
            q++;
        const char *end = q;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        if (end > start) {
            *p = q;
            *item = start;
            *len = (size_t)(end - start);
            return true;
        }
    }
}

bool route_caps_allowed(const char *list, char *bad, size_t badlen)
{
    const char *p = list, *start;
    size_t n;
    if (bad != NULL && badlen > 0)
        bad[0] = '\0';
    while (route_list_next(&p, &start, &n)) {
        if (!cap_known(start, n)) {
            if (bad != NULL && badlen > 0) {
                size_t k = n < badlen - 1 ? n : badlen - 1;
                for (size_t i = 0; i < k; i++)
                    bad[i] = isprint((unsigned char)start[i]) ? start[i] : '?';
                bad[k] = '\0';
            }
            return false;
        }
    }
    return true;
}

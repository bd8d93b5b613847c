/* route.h: route names, the random unguessable names under which a live
 * container is reached through nginx (https://NAME.route_domain/ and TLS with
 * SNI NAME.route_domain), the strict parser of a Host or SNI name, and the
 * capability allow-list of the hardening defaults.
 *
 * Pure except route_generate (OpenSSL's CSPRNG). Must not: accept anything
 * but lowercase letters and digits in a name, log names it rejects verbatim,
 * or derive a name from an id (names must not be guessable). */
#ifndef CC_ROUTE_H
#define CC_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_LEN 20      /* generated names: 20 base32 characters, 100 bits */
#define ROUTE_NAME_MIN 16 /* what the parser accepts as a name */
#define ROUTE_NAME_MAX 32
#define ROUTE_HOST_MAX 253 /* a DNS name */
#define ROUTE_DOMAIN_MAX 200

/* A fresh name: ROUTE_LEN characters of a-z and 2-7 from RAND_bytes, NUL
 * terminated (out must hold ROUTE_LEN + 1 bytes). 0, or -1 if the CSPRNG fails. */
int route_generate(char *out, size_t outlen);

/* Parse a Host header or an SNI name: "NAME.DOMAIN" or "NAME-PORT.DOMAIN",
 * with an optional ":port" suffix of a Host header ignored, and one trailing
 * dot allowed. NAME is 16 to 32 of [a-z0-9]; PORT (a container port, 1 to
 * 65535, no leading zero) picks one port of a container with several;
 * DOMAIN must equal `domain` (compared without case: DNS names are caseless,
 * but the name itself must be lowercase). name receives the NAME (NUL
 * terminated, ROUTE_NAME_MAX + 1 bytes), *port the PORT or 0. Returns 0, or
 * -1 for anything else. */
int route_parse_host(const char *host, const char *domain, char *name, size_t namelen, int *port);

/* Is `domain` acceptable as route_domain: 1 to ROUTE_DOMAIN_MAX bytes of
 * dot-separated labels of [a-z0-9-], no label empty or starting or ending
 * with '-'? */
bool route_domain_valid(const char *domain);

/* Comma-separated lists ("CHOWN, SETUID"): the next item without its blanks,
 * skipping empty ones. *p advances; false at the end of the list. */
bool route_list_next(const char **p, const char **item, size_t *len);

/* Hardening: is every capability of the comma-separated list (blanks allowed,
 * an optional CAP_ prefix, any case) on the allow-list (Docker's default set
 * minus nothing dangerous: never SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE,
 * ALL, ...)? On refusal, bad receives the first refused name (for messages
 * to organisers). NULL or "" is allowed (no capability). */
bool route_caps_allowed(const char *list, char *bad, size_t badlen);

#endif

/* fuzz_route.c: libFuzzer target for the route host-name parser.
 *
 * Feeds any bytes (as a NUL-terminated string) to route_parse_host against a
 * fixed domain, and to route_domain_valid and route_caps_allowed. An accepted
 * host must give a name of 16 to 32 lowercase letters and digits and a port
 * of 0 or 1..65535, and the name must appear at the start of the input.
 * Built with clang -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus
 * replay with tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_route: check failed: %s\n", #cond);                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_host(const char *s, const char *domain)
{
    char name[ROUTE_NAME_MAX + 1];
    int port = -7;
    if (route_parse_host(s, domain, name, sizeof(name), &port) != 0)
        return;
    size_t n = strlen(name);
    FUZZ_CHECK(n >= ROUTE_NAME_MIN && n <= ROUTE_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9'));
    FUZZ_CHECK(port >= 0 && port <= 65535);
    FUZZ_CHECK(strncmp(s, name, n) == 0);
    FUZZ_CHECK(s[n] == '.' || s[n] == '-');
    /* A buffer one byte too small for the name is refused, never overrun. */
    char small[ROUTE_NAME_MIN];
    int p2;
    FUZZ_CHECK(route_parse_host(s, domain, small, sizeof(small), &p2) == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    check_host(s, "containers.example.org");
    check_host(s, "c.test");
    if (route_domain_valid(s)) {
        FUZZ_CHECK(strlen(s) >= 1 && strlen(s) <= ROUTE_DOMAIN_MAX);
        FUZZ_CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen(s));
    }
    char bad[32];
    if (!route_caps_allowed(s, bad, sizeof(bad)))
        FUZZ_CHECK(strlen(bad) < sizeof(bad));
    free(s);
    return 0;
}

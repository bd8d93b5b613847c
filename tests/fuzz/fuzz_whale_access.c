/* fuzz_whale_access.c: libFuzzer target for ctfd-whale's access string, the
 * one piece of ctfd-whale's answers the whale backend parses by hand
 * ("nc HOST PORT" or an <a href="http://HOST[:PORT]/"> link).
 *
 * Any bytes (NUL-terminated, fresh arena per input): an accepted string must
 * give one port in 1..65535, a non-empty host without blanks, quotes, '/' or
 * ':' for a link, and the protocol its form says. Built with clang
 * -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus replay with
 * tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_whale_access: check failed: %s\n", #cond);                       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    arena_t *a = arena_new(4096);
    struct backend_started out;
    memset(&out, 0, sizeof(out));
    if (whale_parse_access(a, s, &out) == 0) {
        FUZZ_CHECK(out.own_ports && out.nports == 1);
        FUZZ_CHECK(out.host != NULL && out.host[0] != '\0' && strlen(out.host) < 256);
        FUZZ_CHECK(out.ports[0].host_port >= 1 && out.ports[0].host_port <= 65535);
        FUZZ_CHECK(strpbrk(out.host, " \t\r\n") == NULL);
        if (out.ports[0].proto == PROTO_HTTP)
            FUZZ_CHECK(strpbrk(out.host, "\"/:") == NULL);
    }
    arena_free(a);
    free(s);
    return 0;
}

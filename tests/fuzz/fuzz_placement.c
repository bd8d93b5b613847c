/* fuzz_placement.c: libFuzzer target for swarm placement constraints
 * (placement_parse: docker_challenge.placement and swarm_placement).
 *
 * Checks: a refusal gives a reason; an accepted list has at most 8 items,
 * each of the grammar's shape (KEY==VALUE or KEY!=VALUE, no blanks, only
 * [A-Za-z0-9._-] around the operator), and parsing its normalised form
 * again gives the same items. Built with clang -fsanitize=fuzzer
 * (scripts/build-fuzzers) or as a corpus replay with tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "placement.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_placement: check failed: %s\n", #cond);                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int item_ok(const char *s)
{
    const char *op = strstr(s, "==");
    const char *ne = strstr(s, "!=");
    if (op == NULL || (ne != NULL && ne < op))
        op = ne;
    if (op == NULL || op == s || op[2] == '\0')
        return 0;
    for (const char *p = s; *p; p++) {
        if (p == op || p == op + 1)
            continue;
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    arena_t *a = arena_new(4096);
    struct placement p, again;
    char why[160] = "";
    if (placement_parse(a, text, &p, why, sizeof(why)) < 0) {
        FUZZ_CHECK(why[0] != '\0');
    } else {
        FUZZ_CHECK(p.n <= PLACEMENT_MAX);
        strbuf_t sb;
        sb_init(&sb, a);
        for (size_t i = 0; i < p.n; i++) {
            FUZZ_CHECK(item_ok(p.items[i]));
            sb_printf(&sb, "%s%s", i ? "," : "", p.items[i]);
        }
        if (sb.len <= PLACEMENT_MAX_TEXT) {
            FUZZ_CHECK(placement_parse(a, sb_str(&sb), &again, why, sizeof(why)) == 0);
            FUZZ_CHECK(again.n == p.n);
            for (size_t i = 0; i < p.n; i++)
                FUZZ_CHECK(strcmp(again.items[i], p.items[i]) == 0);
        }
    }
    arena_free(a);
    free(text);
    return 0;
}

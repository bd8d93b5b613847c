/* fuzz_flag_template.c: libFuzzer target for flag templates.
 *
 * Feeds any bytes to flag_template_check and, when it accepts, to
 * flag_generate: every accepted template must generate, the flag must fit
 * FLAG_MAX_LEN and be printable ASCII, and a refused one must not generate.
 * Built with clang -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus
 * replay with tests/fuzz/replay_main.c. It must not print flags. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* assert() vanishes under NDEBUG; a fuzz finding must never. */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_flag_template: check failed: %s\n", #cond);            \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tmpl = malloc(size + 1);
    char err[256], out[FLAG_MAX_LEN + 1];
    double bits = 0;
    FUZZ_CHECK(tmpl != NULL);
    memcpy(tmpl, data, size);
    tmpl[size] = '\0';
    err[0] = '\0';
    if (flag_template_check(tmpl, &bits, err, sizeof(err)) == 0) {
        FUZZ_CHECK(bits >= FLAG_MIN_BITS);
        FUZZ_CHECK(flag_generate(tmpl, out, sizeof(out)) == 0);
        size_t len = strlen(out);
        FUZZ_CHECK(len <= FLAG_MAX_LEN);
        for (size_t i = 0; i < len; i++)
            FUZZ_CHECK(out[i] >= 0x20 && out[i] <= 0x7e && out[i] != '<' && out[i] != '>');
    } else {
        /* A reason is always given, on one line, and generation agrees. */
        FUZZ_CHECK(strncmp(err, "flag template: ", 15) == 0);
        FUZZ_CHECK(strchr(err, '\n') == NULL);
        FUZZ_CHECK(flag_generate(tmpl, out, sizeof(out)) == -1);
    }
    free(tmpl);
    return 0;
}

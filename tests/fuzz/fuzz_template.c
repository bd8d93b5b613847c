/* fuzz_template.c: libFuzzer target for the template engine (src/template.c).
 *
 * The input is split at NUL bytes: the first piece is the template, the next
 * ones are values. A fixed context sets a, b, c (escaped values), n (an
 * integer), t and f (flags), r (raw: a fragment the engine rendered itself
 * from a value, the one allowed use of tpl_set_raw), and a list items of up
 * to three items (x, a shadowed in one, a nested list sub). Checks:
 *   - tpl_check() and tpl_render() agree on the syntax; an error leaves the
 *     output as it was and says something;
 *   - the output is valid UTF-8 with no NUL byte;
 *   - none of < > " ' ` = appears in the output unless the template itself
 *     has it (values are always escaped, raw included);
 *   - a template without "{{" renders as itself;
 *   - {{a}} alone escapes every value: none of those characters at all.
 * Built with clang -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus
 * replay with tests/fuzz/replay_main.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* assert() vanishes under NDEBUG; a fuzz finding must never. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_template: check failed: %s\n", #cond);                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NVALUES 6

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * written apart from the engine's own decoder on purpose. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], len = c < 0x80         ? 1
                                 : (c >> 5) == 6  ? 2
                                 : (c >> 4) == 14 ? 3
                                 : (c >> 3) == 30 ? 4
                                                  : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void check_output(const strbuf_t *out, const char *tpl)
{
    const char *s = out->len > 0 ? out->data : "";
    FUZZ_CHECK(strlen(s) == out->len); /* no NUL inside */
    FUZZ_CHECK(utf8_valid((const unsigned char *)s, out->len));
    for (const char *special = "<>\"'`="; *special != '\0'; special++)
        if (strchr(tpl, *special) == NULL)
            FUZZ_CHECK(memchr(s, *special, out->len) == NULL);
    if (strstr(tpl, "{{") == NULL)
        FUZZ_CHECK(strcmp(s, tpl) == 0);
}

static struct tpl_ctx *make_ctx(arena_t *a, char *const *v, size_t size)
{
    struct tpl_ctx *c = tpl_ctx_new(a);
    tpl_set(c, "a", v[1]);
    tpl_set(c, "b", v[2]);
    tpl_set(c, "c", v[3]);
    tpl_set_int(c, "n", (int64_t)size - 1000);
    tpl_set_flag(c, "t", true);
    tpl_set_flag(c, "f", false);
    /* The raw value is a fragment the engine rendered from a value. */
    strbuf_t frag;
    sb_init(&frag, a);
    struct tpl_ctx *fc = tpl_ctx_new(a);
    tpl_set(fc, "v", v[2]);
    FUZZ_CHECK(tpl_render(fc, "{{v}}[{{v}}]", &frag, NULL, 0) == 0);
    tpl_set_raw(c, "r", sb_str(&frag));
    for (int i = 4; i < NVALUES + 1 && v[i] != NULL; i++) {
        struct tpl_ctx *it = tpl_add_item(c, "items");
        tpl_set(it, "x", v[i]);
        if (i == 5)
            tpl_set(it, "a", v[i]);
        if (i == 6)
            tpl_set(tpl_add_item(it, "sub"), "x", v[1]);
    }
    return c;
}

/* {{a}} alone: every value comes out with no special character left. */
static void check_escape_only(arena_t *a, const char *value)
{
    struct tpl_ctx *c = tpl_ctx_new(a);
    tpl_set(c, "a", value);
    strbuf_t out;
    sb_init(&out, a);
    FUZZ_CHECK(tpl_render(c, "{{a}}", &out, NULL, 0) == 0);
    FUZZ_CHECK(strcspn(sb_str(&out), "<>\"'`=") == out.len);
    FUZZ_CHECK(out.len >= strlen(value)); /* a bad byte (1-3) becomes 3 bytes, never fewer */
    check_output(&out, "{{a}}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    /* v[0] the template, v[1..] values; missing values are "" (a..c) or absent. */
    char *v[NVALUES + 1] = {buf, "", "", "", NULL, NULL, NULL};
    char *p = buf, *end = buf + size;
    for (int i = 1; i <= NVALUES && (p += strlen(p)) < end; i++)
        v[i] = ++p;

    arena_t *a = arena_new(4096);
    struct tpl_ctx *c = make_ctx(a, v, size);
    strbuf_t out;
    sb_init(&out, a);
    char err[256];
    int checked = tpl_check(v[0], err, sizeof(err));
    FUZZ_CHECK(checked == 0 || (checked == -1 && err[0] != '\0'));
    int rc = tpl_render(c, v[0], &out, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(checked == 0);
        check_output(&out, v[0]);
    } else {
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
        FUZZ_CHECK(out.len == 0);
    }
    for (int i = 1; i <= 3; i++)
        check_escape_only(a, v[i]);
    arena_free(a);
    free(buf);
    return 0;
}
